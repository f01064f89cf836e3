//! The heap lock: a reentrant futex mutex that never allocates, and the
//! public [`HeapGuard`] the collector holds around stop-the-world.
//!
//! Reentrancy lets the collector hold [`lock`] and still call `sweep`,
//! `stats`, ... which take the same lock internally.

use crate::os;
use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

thread_local! {
    /// Its address identifies the current thread (const init, no destructor: no allocation).
    static THREAD_TOKEN: Cell<u8> = const { Cell::new(0) };
}

fn thread_token() -> usize {
    THREAD_TOKEN.with(|t| t as *const Cell<u8> as usize)
}

/// Reentrant mutex: `state` 0 = free, 1 = held, 2 = held with waiters.
pub(crate) struct RawLock {
    state: AtomicU32,
    owner: AtomicUsize,
    depth: AtomicU32,
}

impl RawLock {
    pub(crate) const fn new() -> Self {
        RawLock {
            state: AtomicU32::new(0),
            owner: AtomicUsize::new(0),
            depth: AtomicU32::new(0),
        }
    }

    /// True when the calling thread holds the lock.
    pub(crate) fn held_by_me(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_token()
    }

    pub(crate) fn lock(&self) {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.acquire();
        self.owner.store(me, Ordering::Relaxed);
        self.depth.store(1, Ordering::Relaxed);
    }

    /// Takes the lock if that needs no waiting. True on success.
    pub(crate) fn try_lock(&self) -> bool {
        let me = thread_token();
        if self.owner.load(Ordering::Relaxed) == me {
            self.depth.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.owner.store(me, Ordering::Relaxed);
        self.depth.store(1, Ordering::Relaxed);
        true
    }

    fn acquire(&self) {
        for _ in 0..64 {
            if self
                .state
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            os::futex_wait(&self.state, 2);
        }
    }

    pub(crate) fn unlock(&self) {
        debug_assert!(self.held_by_me());
        if self.depth.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.owner.store(0, Ordering::Relaxed);
            if self.state.swap(0, Ordering::Release) == 2 {
                os::futex_wake_one(&self.state);
            }
        }
    }
}

/// The lock over every allocator critical section (span pool, span
/// (re)initialisation, large objects, sweeping, thread-cache hand-over).
pub(crate) static HEAP_LOCK: RawLock = RawLock::new();
/// Serialises heap growth, whose chunk hook runs without [`HEAP_LOCK`].
pub(crate) static GROWTH_LOCK: RawLock = RawLock::new();

/// Runs `f` with [`HEAP_LOCK`] held.
pub(crate) fn with_heap_lock<R>(f: impl FnOnce() -> R) -> R {
    HEAP_LOCK.lock();
    let r = f();
    HEAP_LOCK.unlock();
    r
}

/// Proof that the calling thread holds the heap lock (see [`lock`]). Not `Send`:
/// it must be dropped by the thread that took it.
pub struct HeapGuard {
    _not_send: PhantomData<*const ()>,
}

/// Takes the heap lock. While the guard lives no other thread is inside (or can
/// enter) an allocator critical section that takes a lock, so a thread stopped
/// by a signal never holds an allocator lock. Lock-free fast paths (thread-cache
/// pops and pushes, remote frees) may still be mid-way in stopped threads; every
/// function of this crate copes with that.
///
/// The holder may call every function of the crate. `free` also works (the
/// lock is reentrant). `alloc`/`realloc` work too but should be avoided: if
/// they need to grow the heap while another thread is growing it they fail
/// (null) rather than deadlock, growth then runs the chunk hook with the lock
/// held, and the collector's hooks are not called. Never call them while the
/// world is stopped.
pub fn lock() -> HeapGuard {
    HEAP_LOCK.lock();
    HeapGuard {
        _not_send: PhantomData,
    }
}

impl Drop for HeapGuard {
    fn drop(&mut self) {
        HEAP_LOCK.unlock();
    }
}

/// `fork()` support, before the fork: take the growth lock, so that the
/// child does not inherit it held by a thread that does not exist there.
/// Take it before any lock the chunk hook takes (the hook runs with the
/// growth lock held), and take the heap lock ([`lock()`]) after those. Call
/// [`fork_release`] after the fork, in the parent and in the child (the
/// forking thread owns the lock in both).
pub fn fork_acquire() {
    GROWTH_LOCK.lock();
}

/// Undo [`fork_acquire`] (parent and child).
pub fn fork_release() {
    GROWTH_LOCK.unlock();
}

#[cfg(test)]
mod tests {
    use super::RawLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn reentrant_and_exclusive() {
        static L: RawLock = RawLock::new();
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        L.lock();
        L.lock();
        assert!(L.held_by_me());
        assert!(L.try_lock());
        L.unlock();
        L.unlock();
        assert!(L.held_by_me());
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(!L.held_by_me());
                assert!(!L.try_lock(), "another thread holds it");
            });
        });
        L.unlock();
        assert!(!L.held_by_me());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20_000 {
                        L.lock();
                        // non-atomic read-modify-write under the lock
                        let v = COUNTER.load(Ordering::Relaxed);
                        COUNTER.store(v + 1, Ordering::Relaxed);
                        L.unlock();
                    }
                });
            }
        });
        assert_eq!(COUNTER.load(Ordering::Relaxed), 80_000);
    }
}
