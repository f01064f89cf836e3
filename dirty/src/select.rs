//! Choosing a dirty source by name, probing availability, and the
//! documented "best available" fallback.
//!
//! [`open`] / [`open_with`] take a name from [`crate::SOURCE_NAMES`]. A
//! source whose cargo feature is off answers `Unavailable` "not compiled
//! in (enable cargo feature ...)"; an unknown name gives `UnknownSource`,
//! whose message lists the valid names.
//!
//! [`open_best`] tries the names in [`crate::SOURCE_NAMES`] order —
//! `epml`, `spml`, `pagemap-scan`, `uffd`, `mprotect`, `soft-dirty`, then
//! `none` — and returns the first that opens, together with the refusals
//! met on the way so that the caller can log them. It skips `card`: that
//! source is only correct when the program calls the write barrier on
//! every pointer store, which a fallback cannot know (name it explicitly).

use crate::pml;
use crate::{DirtyError, DirtySource, SOURCE_NAMES};

/// Options for [`open_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// The kernel engine under the modelled PML sources (`epml`, `spml`).
    pub pml_engine: pml::Engine,
}

/// Open the source `name` with default options.
pub fn open(name: &str) -> Result<Box<dyn DirtySource>, DirtyError> {
    open_with(name, &OpenOptions::default())
}

#[allow(dead_code)]
fn not_compiled_in(source: &'static str) -> DirtyError {
    DirtyError::Unavailable {
        source,
        reason: format!("not compiled in (enable cargo feature `{source}` of oohgc-dirty)"),
    }
}

/// The `&'static str` spelling of a valid name, or `UnknownSource`.
fn canonical(name: &str) -> Result<&'static str, DirtyError> {
    SOURCE_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or_else(|| DirtyError::UnknownSource { name: name.into() })
}

/// Open the source `name` with `options`.
pub fn open_with(name: &str, options: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    let name = canonical(name)?;
    let _ = options;
    match name {
        "epml" => {
            #[cfg(feature = "epml")]
            return pml::open_source("epml", options.pml_engine);
            #[cfg(not(feature = "epml"))]
            return Err(not_compiled_in("epml"));
        }
        "spml" => {
            #[cfg(feature = "spml")]
            return pml::open_source("spml", options.pml_engine);
            #[cfg(not(feature = "spml"))]
            return Err(not_compiled_in("spml"));
        }
        "pagemap-scan" => {
            #[cfg(feature = "pagemap-scan")]
            return Ok(Box::new(crate::pagemap_scan::PagemapScanSource::open()?));
            #[cfg(not(feature = "pagemap-scan"))]
            return Err(not_compiled_in("pagemap-scan"));
        }
        "uffd" => {
            #[cfg(feature = "uffd")]
            return Ok(Box::new(crate::uffd::UffdSource::open()?));
            #[cfg(not(feature = "uffd"))]
            return Err(not_compiled_in("uffd"));
        }
        "mprotect" => {
            #[cfg(feature = "mprotect")]
            return Ok(Box::new(crate::mprotect::MprotectSource::open()?));
            #[cfg(not(feature = "mprotect"))]
            return Err(not_compiled_in("mprotect"));
        }
        "soft-dirty" => {
            #[cfg(feature = "soft-dirty")]
            return Ok(Box::new(crate::soft_dirty::SoftDirtySource::open()?));
            #[cfg(not(feature = "soft-dirty"))]
            return Err(not_compiled_in("soft-dirty"));
        }
        "card" => {
            #[cfg(feature = "card")]
            return Ok(Box::new(crate::card::CardSource::open()?));
            #[cfg(not(feature = "card"))]
            return Err(not_compiled_in("card"));
        }
        _ => Ok(Box::new(crate::none::NoneSource::new())),
    }
}

/// Whether `name` can be opened here, without keeping it open and without
/// process-wide side effects where avoidable (`mprotect` is not installed).
pub fn probe(name: &str) -> Result<(), DirtyError> {
    match canonical(name)? {
        "mprotect" => {
            #[cfg(feature = "mprotect")]
            return Ok(());
            #[cfg(not(feature = "mprotect"))]
            return Err(not_compiled_in("mprotect"));
        }
        "soft-dirty" => {
            #[cfg(feature = "soft-dirty")]
            return crate::soft_dirty::probe();
            #[cfg(not(feature = "soft-dirty"))]
            return Err(not_compiled_in("soft-dirty"));
        }
        "pagemap-scan" => {
            #[cfg(feature = "pagemap-scan")]
            return crate::pagemap_scan::WpAsync::new().map(drop);
            #[cfg(not(feature = "pagemap-scan"))]
            return Err(not_compiled_in("pagemap-scan"));
        }
        "uffd" => {
            #[cfg(feature = "uffd")]
            return crate::uffd::probe();
            #[cfg(not(feature = "uffd"))]
            return Err(not_compiled_in("uffd"));
        }
        other => open(other).map(drop),
    }
}

/// The first source of [`SOURCE_NAMES`] (minus `card`) that opens, and
/// the refusals met before it, in order. `none` always opens.
pub fn open_best() -> (Box<dyn DirtySource>, Vec<DirtyError>) {
    let mut refusals = Vec::new();
    for name in SOURCE_NAMES.iter().filter(|n| **n != "card") {
        match open(name) {
            Ok(source) => return (source, refusals),
            Err(e) => refusals.push(e),
        }
    }
    (Box::new(crate::none::NoneSource::new()), refusals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let e = open("soft_dirty").err().expect("must fail");
        assert_eq!(
            e,
            DirtyError::UnknownSource {
                name: "soft_dirty".into()
            }
        );
        let msg = e.to_string();
        for n in SOURCE_NAMES {
            assert!(msg.contains(n), "{msg} should list {n}");
        }
        assert!(probe("").is_err());
    }

    /// Run with `--no-default-features --features pagemap-scan` to check
    /// the message of a source whose feature is off.
    #[cfg(not(feature = "card"))]
    #[test]
    fn feature_off_says_not_compiled_in() {
        let e = open("card").err().expect("card is compiled out");
        assert_eq!(
            e.to_string(),
            "dirty source `card` is unavailable: not compiled in (enable cargo feature `card` of oohgc-dirty)"
        );
        assert_eq!(probe("card"), Err(e));
    }
}
