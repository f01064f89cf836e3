//! `fork()` support: a child process starts with only the forking thread.
//!
//! Before the fork, the forking thread takes every lock that some thread
//! may hold for a moment and that the child will need, in the one order
//! every other path respects: the collector-thread state, the libraries
//! lock (`dlopen`/`dlclose`), the heap's growth lock (the chunk hook runs
//! under it and takes the tracking lock), tracking, finalization, weak
//! references, user roots, statistics, the configuration, sweeps, and last
//! the heap lock. No lock is then inherited held by a thread that does not
//! exist in the child; all are released in the parent and in the child
//! afterwards.
//!
//! Not the cycle lock: a concurrent cycle holds it from start to end, and
//! waiting for it made every `fork()` stall for up to a whole cycle. The
//! locks above cover each moment a cycle touches shared state (its pauses
//! hold tracking, finalization, weak references and the heap; its sweep
//! the sweep lock), so a fork lands either between cycles or while one is
//! marking or precleaning. In the child that cycle is abandoned
//! (`collector::reset_after_fork`): its marking state is left behind, the
//! collector thread and the finalizer thread do not exist, and the dirty
//! source is detached (its kernel objects belong to the parent: see
//! `runtime::reset_after_fork`), so the child's collections run
//! stop-the-world, clearing every mark in their pause.

use std::cell::RefCell;
use std::sync::Once;

/// Everything held across a fork by the forking thread.
struct Held {
    _collector: crate::collector::ForkGuard,
    _libraries: crate::roots::LibrariesGuard,
    _growth: Growth,
    _tracking: std::sync::MutexGuard<'static, oohgc_dirty::raw_vec::RawVec<(usize, usize)>>,
    _finalize: crate::finalize::FinalizeGuard,
    _weak: std::sync::MutexGuard<'static, crate::weak::Table>,
    _roots: crate::roots::RootsGuard,
    _stats: std::sync::MutexGuard<'static, crate::stats::Totals>,
    _config: std::sync::MutexGuard<'static, crate::Config>,
    _sweeps: Sweeps,
    _heap: oohgc_allocator::HeapGuard,
}

/// The heap's sweep lock, released on drop.
struct Sweeps;

impl Sweeps {
    fn acquire() -> Sweeps {
        oohgc_allocator::fork_acquire_sweeps();
        Sweeps
    }
}

impl Drop for Sweeps {
    fn drop(&mut self) {
        oohgc_allocator::fork_release_sweeps();
    }
}

/// The heap's growth lock, released on drop.
struct Growth;

impl Growth {
    fn acquire() -> Growth {
        oohgc_allocator::fork_acquire();
        Growth
    }
}

impl Drop for Growth {
    fn drop(&mut self) {
        oohgc_allocator::fork_release();
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

static INSTALL: Once = Once::new();

/// Register the `pthread_atfork` handlers (once).
pub(crate) fn install_handlers() {
    INSTALL.call_once(|| {
        // SAFETY: registering three extern "C" functions with no captured state.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

extern "C" fn prepare() {
    // Fields are evaluated, so locks taken, in the order written.
    let held = Held {
        _collector: crate::collector::lock_for_fork(),
        _libraries: crate::roots::lock_libraries(),
        _growth: Growth::acquire(),
        _tracking: crate::runtime::lock_tracking(),
        _finalize: crate::finalize::lock_table(),
        _weak: crate::weak::lock_table(),
        _roots: crate::roots::lock_user_roots(),
        _stats: crate::stats::lock_totals(),
        _config: crate::runtime::lock_config(),
        _sweeps: Sweeps::acquire(),
        _heap: oohgc_allocator::lock(),
    };
    HELD.with(|h| *h.borrow_mut() = Some(held));
}

fn release() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn parent() {
    release();
}

extern "C" fn child() {
    release();
    crate::runtime::reset_after_fork();
}
