//! The OoH page-modification-logging model: the `epml` and `spml` sources.
//!
//! A software model of Intel PML and of both sides of the "Out of
//! Hypervisor" interface (Bitchebe & Tchana, SC'22), precise enough that a
//! real hypervisor could replace the model behind the same traits:
//!
//! * [`hardware`] — per vCPU: the 4 KiB PML buffer, the PML index, the
//!   VMCS fields, log-full events;
//! * [`host`] — the [`host::Hypervisor`] hypercall interface and the
//!   modelled hypervisor (log-full exits, context-switch flushes, the SPML
//!   ring, virtual IRQs);
//! * [`ring`] — the SPML ring in KVM's dirty-ring layout;
//! * [`spml`] and [`reverse_map`] — the SPML guest driver and its
//!   frame -> page reverse map over `/proc/self/pagemap`;
//! * [`epml`] — the EPML guest driver (guest-owned buffer, self-IPI);
//! * `driver` — the guest-driver role: the trait every decision in which
//!   EPML and SPML differ goes through ([`epml`] and [`spml`] implement it);
//! * [`model`] — the machine both designs share (tracked ranges, hold-back,
//!   the one observe path, the harvest's merge), fed by a kernel engine;
//!   `tracked` — its per-range state and [`PmlConfig`];
//! * [`cost`] — event counts and the unit-cost table (modelled time);
//! * `engine` — the kernel engines ([`Engine`]) under the model, over the
//!   substrate shared with the `uffd` and `pagemap-scan` sources
//!   (`crate::uffd_sys`, `crate::pagemap`);
//! * `source` — [`PmlSource`], the [`DirtySource`] over model and engine.
//!
//! Owns: `Engine`, `Mode`, `open_source` and the re-exports other crates
//! use (`PmlSource`, `PmlConfig`, the cost types). Must not touch: the
//! model's logic: each role is its own module (listed above).

pub mod cost;
mod driver;
mod engine;
pub mod epml;
pub mod hardware;
pub mod host;
pub mod model;
pub mod reverse_map;
pub mod ring;
mod source;
pub mod spml;
mod tracked;

pub use cost::{CostReport, Event, EventCounts, UnitCost};
pub use model::PmlConfig;
pub use source::PmlSource;

use crate::{DirtyError, DirtySource};

/// The kernel mechanism underneath the modelled PML hardware: where the
/// model's dirty-flag 0 -> 1 transitions come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// Userfaultfd write-protect in async mode + `PAGEMAP_SCAN`: transitions
    /// are observed in batches (at harvest and at modelled flush points).
    #[default]
    Async,
    /// Synchronous userfaultfd write-protect: one trap per first write, in
    /// exact order.
    Sync,
}

impl Engine {
    /// Parse an engine name (`async` or `sync`).
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "async" => Some(Engine::Async),
            "sync" => Some(Engine::Sync),
            _ => None,
        }
    }
    /// The engine's name.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Async => "async",
            Engine::Sync => "sync",
        }
    }
}

/// Which OoH design is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Extended PML: the CPU logs guest-virtual addresses into a
    /// guest-owned buffer and raises a self-IPI when it fills.
    Epml,
    /// Shadow PML: the hypervisor copies guest-physical addresses into a
    /// ring; the guest reverse-maps them.
    Spml,
}

impl Mode {
    /// The source name (`epml` / `spml`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Epml => "epml",
            Mode::Spml => "spml",
        }
    }
}

/// Open the modelled source `name` (`"epml"` or `"spml"`) over `engine`.
pub fn open_source(name: &'static str, engine: Engine) -> Result<Box<dyn DirtySource>, DirtyError> {
    let mode = match name {
        "epml" => Mode::Epml,
        "spml" => Mode::Spml,
        _ => {
            return Err(DirtyError::UnknownSource {
                name: format!("{name} (the PML model provides \"epml\" and \"spml\")"),
            })
        }
    };
    Ok(Box::new(PmlSource::open(
        mode,
        engine,
        PmlConfig::default(),
    )?))
}
