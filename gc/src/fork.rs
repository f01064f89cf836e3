//! `fork()` support: a child process starts with only the forking thread.
//!
//! Before the fork, the forking thread takes every lock of the collector and
//! of the heap, in the one order every other path respects: the cycle, the
//! libraries lock (`dlopen`/`dlclose`), the heap's growth lock (the chunk hook runs under it and takes the tracking
//! lock), tracking, finalization, weak references, user roots, statistics,
//! and last the heap lock. No lock is then inherited held by a thread that
//! does not exist in the child; all are released in the parent and in the
//! child afterwards.
//! A fork during a concurrent cycle therefore waits for the cycle to end. In
//! the child the collector thread and the finalizer thread do not exist, and
//! the dirty source's kernel objects belong to the parent: the child's
//! collections run stop-the-world (see `runtime::reset_after_fork`).

use std::cell::RefCell;
use std::sync::Once;

/// Everything held across a fork by the forking thread.
struct Held {
    _cycle: crate::collector::ForkGuard,
    _libraries: crate::roots::LibrariesGuard,
    _growth: Growth,
    _tracking: std::sync::MutexGuard<'static, oohgc_dirty::raw_vec::RawVec<(usize, usize)>>,
    _finalize: crate::finalize::FinalizeGuard,
    _weak: std::sync::MutexGuard<'static, crate::weak::Table>,
    _roots: crate::roots::RootsGuard,
    _stats: std::sync::MutexGuard<'static, crate::stats::Totals>,
    _heap: oohgc_allocator::HeapGuard,
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
        _cycle: crate::collector::lock_for_fork(),
        _libraries: crate::roots::lock_libraries(),
        _growth: Growth::acquire(),
        _tracking: crate::runtime::lock_tracking(),
        _finalize: crate::finalize::lock_table(),
        _weak: crate::weak::lock_table(),
        _roots: crate::roots::lock_user_roots(),
        _stats: crate::stats::lock_totals(),
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
