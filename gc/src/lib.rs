//! # oohgc
//!
//! A conservative, mostly-concurrent mark-sweep garbage collector for Rust,
//! in the tradition of the Boehm-Demers-Weiser collector, whose concurrent
//! re-scan is driven by page-modification logging (the "Out of Hypervisor"
//! EPML/SPML idea, modelled over the kernel's real write tracking) instead of
//! mprotect card marking.
//!
//! ```ignore
//! #[global_allocator]
//! static GC: oohgc::GcAllocator = oohgc::GcAllocator;
//!
//! struct Node { left: Option<Gc<Node>>, right: Option<Gc<Node>>, val: u64 }
//! let tree = Gc::new(Node { left: None, right: None, val: 1 });
//! oohgc::collect();
//! println!("{:?}", oohgc::stats().cycles);
//! ```
//!
//! No `Trace` derive and no root registration: stacks, registers,
//! thread-locals, statics and every `GcAllocator` block are scanned
//! conservatively. Modules: [`config`] (settings and `OOHGC_*` variables),
//! `collector` (the cycle: `stop_the_world`, `concurrent`, the shared `pause`, the `pacer`), `mark` (marking), `mark_cache` (the
//! marked-base cache), `roots` (root discovery), `finalize` and `weak`
//! (finalization, weak references), `verify` (the verifier), `leaks` (leak
//! reports), `alloc_sites` and `symbolize` (their allocation backtraces),
//! [`stats`](mod@stats) (statistics).

#![warn(missing_docs)]

mod alloc_sites;
mod collector;
pub mod config;
mod finalize;
mod fork;
mod gc_ptr;
mod global_alloc;
mod interpose;
mod leaks;
mod mark;
mod mark_cache;
mod parallel_mark;
mod raw_memory;
mod roots;
mod runtime;
pub mod stats;
mod symbolize;
mod util;
mod verify;
mod weak;

pub use collector::{
    collect, start_cycle, try_collect, wait_for_cycles, MAX_PRECLEAN_ROUNDS, PACING_BUDGETS,
    PRECLEAN_ENOUGH_PAGES, PRECLEAN_PATIENCE,
};
#[doc(hidden)]
pub use collector::{cycle_in_progress, inject_preclean_harvest_failures};
pub use config::{Config, ConfigError};
pub use finalize::{finalizer_panics, run_finalizers};
pub use gc_ptr::{alloc_noscan, Gc, NoPointers};
pub use global_alloc::GcAllocator;
pub use roots::{add_roots, remove_roots};
pub use stats::{
    heap_size, live_bytes, on_cycle, stats, CycleKind, CycleReason, CycleStats, PauseHistogram,
    Stats,
};
pub use weak::GcWeak;

/// (heap blocks with a recorded allocation site, distinct sites stored):
/// lets tests check that leak-backtrace entries go away with their blocks.
#[doc(hidden)]
pub use alloc_sites::recorded_counts as leak_backtrace_counts;

use std::fmt;

/// Why the collector could not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The stop-the-world signals could not be installed.
    Signals(String),
    /// The chosen dirty source is unavailable.
    DirtySource(String),
    /// A heap setting was refused.
    Heap(String),
    /// The setting can only change before the collector starts.
    AlreadyStarted,
    /// `GcAllocator` is not the program's global allocator (and
    /// `Config::require_global_allocator` is on).
    NoGlobalAllocator,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitError::Signals(s) => write!(f, "cannot install the stop-the-world signals: {s}"),
            InitError::DirtySource(s) => write!(f, "{s} (choose another with OOHGC_DIRTY)"),
            InitError::Heap(s) => write!(f, "{s}"),
            InitError::NoGlobalAllocator => {
                f.write_str(global_alloc::MISSING_MESSAGE.trim_start_matches("oohgc: "))
            }
            InitError::AlreadyStarted => write!(
                f,
                "the collector has already started: the dirty source, PML engine and signals can only be set before the first collection"
            ),
        }
    }
}

impl std::error::Error for InitError {}

/// Start the collector now (signals, dirty source, collector thread) with
/// the current configuration, reporting problems instead of exiting. Without
/// this call the collector starts at the first collection, and a problem
/// there ends the process with a clear message.
pub fn init() -> Result<(), InitError> {
    runtime::start_collector()
}

/// Name of the dirty source in use (after the collector started) or
/// configured.
pub fn dirty_source_name() -> &'static str {
    runtime::dirty_source().map_or_else(|| runtime::config().dirty_source, |s| s.name())
}

/// Stop automatic and explicit collections until the matching [`enable`].
/// Calls nest.
pub fn disable() {
    runtime::DISABLED.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Undo one [`disable`].
pub fn enable() {
    let prev = runtime::DISABLED.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    assert!(prev > 0, "oohgc::enable() without a matching disable()");
}

/// Record a pointer store for the `card` dirty source: call it after
/// storing a `Gc` (or any heap pointer) into memory that lives in the heap.
/// A no-op cost for every other source. The `card` source is only sound when
/// *every* pointer store of the program goes through this barrier.
#[inline]
pub fn write_barrier(slot: *const u8) {
    oohgc_dirty::card::write_barrier(slot as usize);
}

/// Run `f` in a blocking region: the collector does not wait for this
/// thread to stop while `f` runs (use it around long system calls); `f`
/// must not touch `Gc` objects it did not already hold.
///
/// Checked: a `Gc` allocated inside `f` (`Gc::new`, `alloc_noscan`, ...)
/// ends the process with a message naming the mistake (its only reference
/// would be in frames nobody scans, and a sweep could free it at once).
/// `Box`/`Vec`/`String` allocation inside `f` is fine: each leaves the
/// region while it runs (waiting for a running pause to end), and such
/// blocks are roots until freed.
/// Not checked: pointer stores into the heap from inside `f` (no cost-free
/// way to see them); they are the "must not touch" above.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    runtime::as_blocking_mutator(|| {
        let _g = oohgc_barriers::enter_blocking();
        f()
    })
}
