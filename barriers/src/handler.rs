//! The suspend and restart signal handlers.
//!
//! Async-signal-safe only: atomics, raw syscalls (`gettid`, `futex`,
//! `rt_sigsuspend` — raw, because the program's `sigsuspend` may be
//! interposed to keep the collector's signals open). The suspend handler runs on the thread's normal stack (no
//! `SA_ONSTACK`), so the kernel's saved register context lies between the
//! stack pointer it records and the interrupted frames: scanning from that
//! stack pointer up covers every register of the interrupted code.
//!
//! Protocol (bdwgc's, with an epoch instead of a stop count):
//! 1. The stopper makes `EPOCH` odd, then signals each target.
//! 2. The handler reads `EPOCH`; even means the signal is stale (the world
//!    was restarted before it arrived): return. If this thread already
//!    acknowledged this epoch (a re-sent signal), return.
//! 3. It records its stack and thread pointers, stores the epoch as its
//!    acknowledgement and wakes the stopper.
//! 4. It waits in `sigsuspend` (everything blocked but the restart signal)
//!    until `EPOCH` changes. Restart signals that arrive at other times hit
//!    the empty restart handler and are ignored; one that arrives early stays
//!    pending (the restart signal is blocked in the handler) and ends the
//!    first `sigsuspend`, so none is lost.
//!
//! 5. Once restarted, it passes the restart signal on to its children in the
//!    restart forest (see `stop_table::restart_children`) and records that it
//!    did; the next stopper restarts directly any thread of the previous stop
//!    that has not (`stop_table::finish_previous_restart`) before reusing the
//!    table, so no thread can be left waiting for an old epoch.
//!
//! Restarts are not acknowledged: the stopper does not wait for resumed
//! threads (waiting costs whole scheduler slices with more runnable threads
//! than cores). A later stop copes with a thread still leaving its handler:
//! the new suspend signal stays pending until the handler returns.

use core::cell::Cell;
use core::sync::atomic::Ordering;

use crate::stop_table::{find, index_of, pass_restart_on, ACKS_PENDING, ACK_WORD, EPOCH};
use crate::sys;

thread_local! {
    /// Suspensions this thread acknowledged (const, no destructor: safe to
    /// touch in a signal handler).
    static SUSPENSIONS: Cell<u64> = const { Cell::new(0) };
    /// Suspend signals this thread's handler received, stale ones included.
    static SUSPEND_SIGNALS: Cell<u64> = const { Cell::new(0) };
}

/// How many suspend signals the calling thread has received (including stale
/// or duplicate ones that did not suspend it).
pub fn current_thread_suspend_signals() -> u64 {
    SUSPEND_SIGNALS.with(Cell::get)
}

/// How many times the calling thread has been suspended by `stop_world`.
/// (A thread inside a blocking region is not signalled, so this does not move.)
pub fn current_thread_suspensions() -> u64 {
    SUSPENSIONS.with(Cell::get)
}

pub(crate) extern "C" fn suspend_handler(
    _signal: i32,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let saved_errno = sys::errno();
    SUSPEND_SIGNALS.with(|c| c.set(c.get() + 1));
    suspend_until_restarted();
    sys::set_errno(saved_errno);
}

pub(crate) extern "C" fn restart_handler(
    _signal: i32,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // Only interrupts sigsuspend; the epoch says whether to resume.
}

#[inline(never)]
fn suspend_until_restarted() {
    let epoch = EPOCH.load(Ordering::SeqCst);
    if epoch & 1 == 0 {
        return;
    }
    let Some(target) = find(sys::gettid()) else {
        return;
    };
    if target.acked_epoch.load(Ordering::Acquire) == epoch {
        return;
    }
    // This frame is below the kernel's signal frame (saved registers) and
    // everything the interrupted code had on its stack.
    target.sp.store(sys::stack_pointer(), Ordering::Relaxed);
    target
        .thread_pointer
        .store(sys::thread_pointer(), Ordering::Relaxed);
    SUSPENSIONS.with(|c| c.set(c.get() + 1));
    // SeqCst: pairs with the restart's SeqCst epoch change and ack check.
    target.acked_epoch.store(epoch, Ordering::SeqCst);
    ACK_WORD.fetch_add(1, Ordering::SeqCst);
    if ACKS_PENDING.fetch_sub(1, Ordering::SeqCst) <= 1 {
        sys::futex_wake(&ACK_WORD, 1);
    }

    // SAFETY: an all-zero sigset_t is valid storage for sigfillset.
    let mut wait_mask: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: `wait_mask` is a valid sigset_t; both calls only set bits.
    unsafe {
        libc::sigfillset(&mut wait_mask);
        libc::sigdelset(&mut wait_mask, crate::signals::restart_signal());
    }
    while EPOCH.load(Ordering::SeqCst) == epoch {
        sys::sigsuspend_raw(&wait_mask);
    }
    pass_restart_on(index_of(target), epoch, crate::signals::restart_signal());
    target.resumed_epoch.store(epoch, Ordering::SeqCst);
}
