//! Threads this crate starts (fault handlers) announce themselves to the
//! embedding program through a hook, before they handle anything.
//!
//! A garbage collector that stops the world must never stop these threads:
//! a mutator blocked in a userfaultfd fault (a kernel write such as `read(2)`
//! into a write-protected page waits uninterruptibly) can only be released
//! by its handler thread, so stopping the handler would deadlock the stop.
//! The collector installs a hook that excludes the calling thread from
//! stop-the-world.
//!
//! Owns: the process-wide hook and `announce_current_thread`. Must not
//! touch: the threads themselves (each source starts and stops its own).

use std::sync::atomic::{AtomicUsize, Ordering};

static HOOK: AtomicUsize = AtomicUsize::new(0);

/// Set the function every service thread calls first, on itself. Set it
/// before opening a source; threads already running are not told.
pub fn set_service_thread_hook(hook: fn()) {
    HOOK.store(hook as usize, Ordering::Release);
}

/// Called by each service thread as it starts.
pub(crate) fn announce_current_thread() {
    let h = HOOK.load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: the only non-zero value ever stored is a `fn()`.
        let f: fn() = unsafe { std::mem::transmute::<usize, fn()>(h) };
        f();
    }
}
