//! Choosing a dirty source by name, probing availability, and the
//! documented "best available" fallback.
//!
//! [`open`] / [`open_with`] take a name from [`crate::SOURCE_NAMES`]. A
//! source whose cargo feature is off answers `Unavailable` "not compiled
//! in (enable cargo feature ...)"; an unknown name gives `UnknownSource`,
//! whose message lists the valid names.
//!
//! [`open_best`] tries the default candidates in table order (see
//! `registry`: `epml`, `spml`, `pagemap-scan`, `uffd`, `mprotect`,
//! `soft-dirty`, then `none`) and returns the first that opens, together
//! with the refusals met on the way so that the caller can log them. It
//! skips sources that need a write barrier (`card`): those are only
//! correct when the program calls the barrier on every pointer store,
//! which a fallback cannot know (name them explicitly).
//!
//! Owns: `open`, `open_with`, `open_best`, `probe`, `sources_to_test` and
//! `OpenOptions`. Must not touch: how a source opens (the registry row's
//! functions do), any mechanism.

use crate::pml;
use crate::registry::{self, SOURCES};
use crate::{DirtyError, DirtySource};

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

/// The row of a valid name, or `UnknownSource`.
fn row(name: &str) -> Result<&'static registry::SourceInfo, DirtyError> {
    registry::info(name).ok_or_else(|| DirtyError::UnknownSource { name: name.into() })
}

/// Open the source `name` with `options`.
pub fn open_with(name: &str, options: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    (row(name)?.open)(options)
}

/// Whether `name` can be opened here, without keeping it open and without
/// process-wide side effects where avoidable (`mprotect` is not installed).
pub fn probe(name: &str) -> Result<(), DirtyError> {
    (row(name)?.probe)()
}

/// The first default candidate of [`crate::SOURCE_NAMES`] that opens (never a
/// source that needs a barrier), and the refusals met before it, in
/// order. `none` always opens.
pub fn open_best() -> (Box<dyn DirtySource>, Vec<DirtyError>) {
    let mut refusals = Vec::new();
    for s in SOURCES.iter().filter(|s| s.capabilities.default_candidate) {
        match (s.open)(&OpenOptions::default()) {
            Ok(source) => return (source, refusals),
            Err(e) => refusals.push(e),
        }
    }
    (Box::new(crate::none::NoneSource::new()), refusals)
}

/// The sources a test suite should run under on this machine besides its
/// default: every compiled-in source that opens here and can carry a
/// program on its own (not one that needs a barrier), in table order,
/// without `skip`. What `oohgc-sources --ci` prints for `.ci/run`.
pub fn sources_to_test(skip: &str) -> Vec<&'static str> {
    SOURCES
        .iter()
        .filter(|s| s.name != skip && s.compiled_in && !s.capabilities.needs_barrier)
        .filter(|s| (s.probe)().is_ok())
        .map(|s| s.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SOURCE_NAMES;

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
