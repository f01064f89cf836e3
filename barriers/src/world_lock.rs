//! The world lock: one stop at a time.
//!
//! `stop_world` takes it and the `StoppedWorld` releases it on drop. A thread
//! waiting for it is an ordinary mutator: the holder stops it like any other
//! thread (it is suspended inside its futex wait and resumes waiting after the
//! restart), so two threads calling `stop_world` at once cannot deadlock: the
//! second simply stops the world after the first restarted it.
//!
//! A plain futex mutex (0 free, 1 locked, 2 locked with waiters): no
//! allocation, and usable from the allocator's slow path.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::sys;

static WORLD_LOCK: AtomicU32 = AtomicU32::new(0);

/// Takes the world lock, waiting as long as it takes.
pub(crate) fn acquire() {
    if WORLD_LOCK
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return;
    }
    while WORLD_LOCK.swap(2, Ordering::Acquire) != 0 {
        sys::futex_wait(&WORLD_LOCK, 2, None);
    }
}

/// Releases the world lock.
pub(crate) fn release() {
    if WORLD_LOCK.swap(0, Ordering::Release) == 2 {
        sys::futex_wake(&WORLD_LOCK, 1);
    }
}

/// Forgets any holder (in a fork child, where the holder does not exist).
pub(crate) fn reset() {
    WORLD_LOCK.store(0, Ordering::Relaxed);
}
