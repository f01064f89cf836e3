//! The OoH page-modification-logging model: `epml` and `spml` sources.
//!
//! (Being built: this module currently only fixes the entry points that the
//! source selection in `select.rs` calls.)

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

/// Open the modelled source `name` (`"epml"` or `"spml"`) over `engine`.
pub fn open_source(name: &'static str, engine: Engine) -> Result<Box<dyn DirtySource>, DirtyError> {
    let _ = engine;
    Err(DirtyError::Unavailable {
        source: name,
        reason: "the PML model is not built yet".into(),
    })
}
