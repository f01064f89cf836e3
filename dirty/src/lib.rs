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
//!
//! | name | type | mechanism | sound for |
//! |---|---|---|---|
//! | `pagemap-scan` | `pagemap_scan::PagemapScanSource` | async userfaultfd write-protect + `PAGEMAP_SCAN` (Linux >= 6.7) | every write, kernel writes included |
//! | `uffd` | `uffd::UffdSource` | synchronous userfaultfd write-protect, handler thread | every write; kernel writes block until handled (EFAULT if user-mode-only) |
//! | `mprotect` | `mprotect::MprotectSource` | `PROT_READ` + `SIGSEGV` handler | program writes; kernel writes into buffers pinned with `mprotect::KernelWrite` (others fail with EFAULT) |
//! | `soft-dirty` | `soft_dirty::SoftDirtySource` | `clear_refs` + pagemap bit 55 | harvests with writers stopped; refused without `CONFIG_MEM_SOFT_DIRTY` |
//! | `card` | `card::CardSource` | card table + `card::write_barrier` | only programs that call the barrier after every pointer store |
//! | `none` | `none::NoneSource` | every page is dirty | everything (the baseline) |
//!
//! Measured costs (256 MiB, `cargo bench -p oohgc-dirty --bench sources`)
//! are in the report of each run; the bench prints them as a table.
//!
//! Owns: the crate's module list, the public re-exports and `SOURCE_NAMES`.
//! Must not touch: any source's mechanism: each lives in its own module;
//! nothing here depends on the rest of oohgc.

#![warn(missing_docs)]

pub mod contract;
pub mod cross_check;
pub mod pml;
pub mod raw_vec;
pub mod registry;
pub mod service_thread;

#[cfg(any(feature = "uffd", feature = "mprotect"))]
mod bitmap;
mod counters;
mod pagemap;
mod ranges;
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
pub use registry::Capabilities;
pub use select::{open, open_best, open_with, probe, sources_to_test, OpenOptions};
pub use service_thread::set_service_thread_hook;

/// Every source name [`open`] accepts, in the documented fallback order
/// for "the best available" (the rows of [`registry::SOURCES`]).
pub const SOURCE_NAMES: &[&str] = &registry::names();
