//! `fork()` support: a child process starts with only the forking thread.
//!
//! Before the fork, the forking thread takes the cycle lock and the heap lock
//! (so no collection and no allocator critical section is half-way through
//! in another thread, whose locks the child would inherit held); both are
//! released in the parent and in the child afterwards. In the child the
//! collector thread does not exist: its state is reset so the next trigger
//! starts a new one.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static HELD: RefCell<Option<oohgc_allocator::HeapGuard>> = const { RefCell::new(None) };
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
    crate::collector::hold_cycle_lock_for_fork();
    let g = oohgc_allocator::lock();
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

extern "C" fn parent() {
    HELD.with(|h| drop(h.borrow_mut().take()));
    crate::collector::release_cycle_lock_after_fork();
}

extern "C" fn child() {
    HELD.with(|h| drop(h.borrow_mut().take()));
    crate::collector::release_cycle_lock_after_fork();
    crate::runtime::reset_after_fork();
}
