//! `oohgc-dirty`: dirty-page sources for any program, and the OoH PML model.
//!
//! The [`DirtySource`] contract (module [`contract`]) is met by every
//! backend: the kernel's own write tracking (`pagemap-scan`, `uffd`,
//! `mprotect`, `soft-dirty`), a software card table (`card`), the trivial
//! `none`, and the modelled OoH page-modification logging (`epml`, `spml`,
//! module `pml`). Nothing here depends on the rest of oohgc.

pub mod contract;
pub mod pml;
pub mod raw_vec;

pub use contract::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};

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
