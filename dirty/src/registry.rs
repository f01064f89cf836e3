//! The table of dirty sources: one row per source, with its name, its cargo
//! feature, what it can do ([`Capabilities`]) and how to open and probe it.
//! Everything that lists or chooses sources reads this table: the names
//! ([`crate::SOURCE_NAMES`]), opening by name ([`crate::open_with`]), the
//! "best available" fallback, the collector's default and CI's list of
//! sources to run the suite under (`oohgc-sources --ci`). A new source is
//! its own module plus one row here (and its cargo feature); tests check
//! that the crates' feature lists agree with the table.
//!
//! Owns: the rows ([`SOURCES`]) and their open/probe forwarding functions.
//! Must not touch: any source's mechanism: each row's functions forward
//! to the source's module.

use crate::select::OpenOptions;
use crate::{DirtyError, DirtySource};

/// What a source can and cannot see, for its users to decide with (never
/// by comparing names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// A system call writing a tracked page (`read(2)` into a buffer)
    /// succeeds and the page is reported. `false`: such a call fails with
    /// `EFAULT` while the page is armed (`mprotect`, unless the buffer is
    /// pinned: see [`Capabilities::kernel_writes_need_pins`]), or the write
    /// is not seen at all (`card`).
    pub sees_kernel_writes: bool,
    /// A system call writing a tracked page succeeds (and the page is
    /// reported) only if the caller pins the buffer around it
    /// (`mprotect::KernelWrite`); oohgc's interposed C library calls do.
    pub kernel_writes_need_pins: bool,
    /// Sound only if the program reports every pointer store itself (a
    /// software write barrier): never a default or a fallback.
    pub needs_barrier: bool,
    /// May be chosen without being named: as the compiled-in default or as
    /// a fallback when the default is unavailable.
    pub default_candidate: bool,
    /// Observes nothing: every tracked page is reported at every harvest.
    /// A collector gains nothing from running concurrently over it.
    pub tracks_nothing: bool,
}

/// One source's row.
#[derive(Clone, Copy)]
pub struct SourceInfo {
    /// The name [`crate::open`] takes.
    pub name: &'static str,
    /// The cargo feature of `oohgc-dirty` (and of `oohgc`) that compiles
    /// it in; empty for `none`, which is always there.
    pub cargo_feature: &'static str,
    /// Whether that feature is on in this build.
    pub compiled_in: bool,
    /// What it can do.
    pub capabilities: Capabilities,
    /// Open it (an error says why it is unavailable).
    pub open: fn(&OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError>,
    /// Whether it would open, without keeping it open and, where it can,
    /// without process-wide side effects.
    pub probe: fn() -> Result<(), DirtyError>,
}

impl std::fmt::Debug for SourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceInfo")
            .field("name", &self.name)
            .field("cargo_feature", &self.cargo_feature)
            .field("compiled_in", &self.compiled_in)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

/// Capabilities of a source that sees every write, kernel writes included,
/// and may be a default.
const SEES_ALL: Capabilities = Capabilities {
    sees_kernel_writes: true,
    kernel_writes_need_pins: false,
    needs_barrier: false,
    default_candidate: true,
    tracks_nothing: false,
};

/// Every source, in the documented order of preference for the default and
/// the fallback.
pub const SOURCES: [SourceInfo; 8] = [
    SourceInfo {
        name: "epml",
        cargo_feature: "epml",
        compiled_in: cfg!(feature = "epml"),
        capabilities: SEES_ALL,
        open: open_epml,
        probe: probe_by_opening_epml,
    },
    SourceInfo {
        name: "spml",
        cargo_feature: "spml",
        compiled_in: cfg!(feature = "spml"),
        capabilities: SEES_ALL,
        open: open_spml,
        probe: probe_by_opening_spml,
    },
    SourceInfo {
        name: "pagemap-scan",
        cargo_feature: "pagemap-scan",
        compiled_in: cfg!(feature = "pagemap-scan"),
        capabilities: SEES_ALL,
        open: open_pagemap_scan,
        probe: probe_pagemap_scan,
    },
    SourceInfo {
        name: "uffd",
        cargo_feature: "uffd",
        compiled_in: cfg!(feature = "uffd"),
        // Kernel writes block until the handler thread resolves them.
        capabilities: SEES_ALL,
        open: open_uffd,
        probe: probe_uffd,
    },
    SourceInfo {
        name: "mprotect",
        cargo_feature: "mprotect",
        compiled_in: cfg!(feature = "mprotect"),
        capabilities: Capabilities {
            sees_kernel_writes: false,
            kernel_writes_need_pins: true,
            ..SEES_ALL
        },
        open: open_mprotect,
        probe: probe_mprotect,
    },
    SourceInfo {
        name: "soft-dirty",
        cargo_feature: "soft-dirty",
        compiled_in: cfg!(feature = "soft-dirty"),
        capabilities: SEES_ALL,
        open: open_soft_dirty,
        probe: probe_soft_dirty,
    },
    SourceInfo {
        name: "card",
        cargo_feature: "card",
        compiled_in: cfg!(feature = "card"),
        capabilities: Capabilities {
            sees_kernel_writes: false,
            kernel_writes_need_pins: false,
            needs_barrier: true,
            default_candidate: false,
            tracks_nothing: false,
        },
        open: open_card,
        probe: probe_by_opening_card,
    },
    SourceInfo {
        name: "none",
        cargo_feature: "",
        compiled_in: true,
        capabilities: Capabilities {
            tracks_nothing: true,
            ..SEES_ALL
        },
        open: open_none,
        probe: probe_none,
    },
];

/// The names of [`SOURCES`], in order.
pub const fn names() -> [&'static str; SOURCES.len()] {
    let mut out = [""; SOURCES.len()];
    let mut i = 0;
    while i < SOURCES.len() {
        out[i] = SOURCES[i].name;
        i += 1;
    }
    out
}

/// The row of `name`, if it is a source's name.
pub fn info(name: &str) -> Option<&'static SourceInfo> {
    static TABLE: [SourceInfo; SOURCES.len()] = SOURCES;
    TABLE.iter().find(|s| s.name == name)
}

/// The capabilities of the source named `name` (the default, empty, for a
/// name that is not in the table).
pub fn capabilities_of(name: &str) -> Capabilities {
    info(name).map(|s| s.capabilities).unwrap_or_default()
}

#[allow(dead_code)]
fn not_compiled_in(source: &'static str) -> DirtyError {
    DirtyError::Unavailable {
        source,
        reason: format!("not compiled in (enable cargo feature `{source}` of oohgc-dirty)"),
    }
}

fn open_epml(o: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    let _ = o;
    #[cfg(feature = "epml")]
    return crate::pml::open_source("epml", o.pml_engine);
    #[cfg(not(feature = "epml"))]
    return Err(not_compiled_in("epml"));
}

fn open_spml(o: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    let _ = o;
    #[cfg(feature = "spml")]
    return crate::pml::open_source("spml", o.pml_engine);
    #[cfg(not(feature = "spml"))]
    return Err(not_compiled_in("spml"));
}

fn probe_by_opening_epml() -> Result<(), DirtyError> {
    open_epml(&OpenOptions::default()).map(drop)
}

fn probe_by_opening_spml() -> Result<(), DirtyError> {
    open_spml(&OpenOptions::default()).map(drop)
}

fn open_pagemap_scan(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    #[cfg(feature = "pagemap-scan")]
    return Ok(Box::new(crate::pagemap_scan::PagemapScanSource::open()?));
    #[cfg(not(feature = "pagemap-scan"))]
    return Err(not_compiled_in("pagemap-scan"));
}

fn probe_pagemap_scan() -> Result<(), DirtyError> {
    #[cfg(feature = "pagemap-scan")]
    return crate::pagemap_scan::WpAsync::new().map(drop);
    #[cfg(not(feature = "pagemap-scan"))]
    return Err(not_compiled_in("pagemap-scan"));
}

fn open_uffd(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    #[cfg(feature = "uffd")]
    return Ok(Box::new(crate::uffd::UffdSource::open()?));
    #[cfg(not(feature = "uffd"))]
    return Err(not_compiled_in("uffd"));
}

fn probe_uffd() -> Result<(), DirtyError> {
    #[cfg(feature = "uffd")]
    return crate::uffd::probe();
    #[cfg(not(feature = "uffd"))]
    return Err(not_compiled_in("uffd"));
}

fn open_mprotect(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    #[cfg(feature = "mprotect")]
    return Ok(Box::new(crate::mprotect::MprotectSource::open()?));
    #[cfg(not(feature = "mprotect"))]
    return Err(not_compiled_in("mprotect"));
}

/// Always opens where compiled in; probing must not install the
/// process-wide `SIGSEGV` handler.
fn probe_mprotect() -> Result<(), DirtyError> {
    #[cfg(feature = "mprotect")]
    return Ok(());
    #[cfg(not(feature = "mprotect"))]
    return Err(not_compiled_in("mprotect"));
}

fn open_soft_dirty(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    #[cfg(feature = "soft-dirty")]
    return Ok(Box::new(crate::soft_dirty::SoftDirtySource::open()?));
    #[cfg(not(feature = "soft-dirty"))]
    return Err(not_compiled_in("soft-dirty"));
}

fn probe_soft_dirty() -> Result<(), DirtyError> {
    #[cfg(feature = "soft-dirty")]
    return crate::soft_dirty::probe();
    #[cfg(not(feature = "soft-dirty"))]
    return Err(not_compiled_in("soft-dirty"));
}

fn open_card(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    #[cfg(feature = "card")]
    return Ok(Box::new(crate::card::CardSource::open()?));
    #[cfg(not(feature = "card"))]
    return Err(not_compiled_in("card"));
}

fn probe_by_opening_card() -> Result<(), DirtyError> {
    open_card(&OpenOptions::default()).map(drop)
}

fn open_none(_: &OpenOptions) -> Result<Box<dyn DirtySource>, DirtyError> {
    Ok(Box::new(crate::none::NoneSource::new()))
}

fn probe_none() -> Result<(), DirtyError> {
    Ok(())
}

/// The feature names (not `default`) of a Cargo manifest's `[features]`
/// table: for the tests that check a crate's features against [`SOURCES`].
#[doc(hidden)]
pub fn features_in_manifest(manifest: &str) -> Vec<&str> {
    let Some(start) = manifest.find("[features]") else {
        return Vec::new();
    };
    let rest = &manifest[start + "[features]".len()..];
    let table = &rest[..rest.find("\n[").unwrap_or(rest.len())];
    table
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| !k.is_empty() && *k != "default")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate's cargo features are exactly the table's, so that a row
    /// cannot be added without its feature or a feature without its row.
    #[test]
    fn cargo_features_match_the_table() {
        let mut listed = features_in_manifest(include_str!("../Cargo.toml"));
        listed.sort_unstable();
        let mut table: Vec<&str> = SOURCES
            .iter()
            .map(|s| s.cargo_feature)
            .filter(|f| !f.is_empty())
            .collect();
        table.sort_unstable();
        assert_eq!(
            listed, table,
            "oohgc-dirty's [features] and registry::SOURCES disagree"
        );
    }

    #[test]
    fn exactly_one_source_tracks_nothing_and_barrier_sources_are_never_defaults() {
        assert_eq!(
            SOURCES
                .iter()
                .filter(|s| s.capabilities.tracks_nothing)
                .count(),
            1
        );
        for s in &SOURCES {
            assert!(
                !(s.capabilities.needs_barrier && s.capabilities.default_candidate),
                "{s:?}"
            );
        }
        assert_eq!(capabilities_of("no-such-source"), Capabilities::default());
    }
}
