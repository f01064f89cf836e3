//! `oohgc-dirty`: dirty-page sources for any program, and the OoH PML model.
//!
//! The [`DirtySource`] contract (module [`contract`]) is met by every
//! backend: the kernel's own write tracking (`pagemap-scan`, `uffd`,
//! `mprotect`, `soft-dirty`), a software card table (`card`), the trivial
//! `none`, and the modelled OoH page-modification logging (`epml`, `spml`,
//! module `pml`). Nothing here depends on the rest of oohgc.
//!
//! Pick a source by name with [`open`] (or [`open_best`]); each backend is
//! also public as its own type for programs that want its extra knobs.

#![warn(missing_docs)]

pub mod contract;
pub mod pml;
pub mod raw_vec;

#[cfg(any(feature = "uffd", feature = "mprotect"))]
mod bitmap;
mod counters;
mod ranges;
#[cfg(any(feature = "pagemap-scan", feature = "uffd"))]
mod uffd_sys;

#[cfg(feature = "card")]
pub mod card;
#[cfg(feature = "mprotect")]
pub mod mprotect;
pub mod none;
#[cfg(feature = "pagemap-scan")]
pub mod pagemap_scan;
pub mod select;
#[cfg(feature = "soft-dirty")]
pub mod soft_dirty;
#[cfg(feature = "uffd")]
pub mod uffd;

pub use contract::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};
pub use select::{open, open_best, open_with, probe, OpenOptions};

/// Every source name [`open`] accepts, in the documented fallback order
/// for "the best available".
pub const SOURCE_NAMES: &[&str] = &[
    "epml",
    "spml",
    "pagemap-scan",
    "uffd",
    "mprotect",
    "soft-dirty",
    "card",
    "none",
];
