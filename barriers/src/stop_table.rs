//! The table of threads a stop is about ("targets"), shared between the
//! stopping thread and the suspend handlers, and the two words of the
//! handshake: the stop epoch and the acknowledgement counter.
//!
//! The handler finds its entry by thread id, so threads that never registered
//! take part like registered ones. Handler-written fields are atomics; the
//! rest (`state`) is touched only by the thread holding the world lock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

use crate::raw_table::{RawTable, ZeroValid};
use crate::registry::{RegisteredThread, MAX_TLS_RANGES};

/// Maximum number of threads one stop can handle.
pub const MAX_STOPPED_THREADS: usize = 8192;

/// Odd while a stop is in progress or the world is stopped, even while it
/// runs. Suspend handlers wait until it changes; threads leaving a blocking
/// region futex-wait on it while it is odd.
pub(crate) static EPOCH: AtomicU32 = AtomicU32::new(0);

/// Bumped by every acknowledging handler; the stopping thread futex-waits on it.
pub(crate) static ACK_WORD: AtomicU32 = AtomicU32::new(0);

/// Acknowledgements the stopper still expects. Each handler decrements it and
/// only the one that brings it to zero (or below, after an unexpected
/// acknowledgement) wakes the stopper: one cross-CPU wake-up per stop instead
/// of one per thread. It is only a wake-up hint: the stopper always re-checks
/// every target, and wakes by itself at the re-send deadline.
pub(crate) static ACKS_PENDING: AtomicI32 = AtomicI32::new(0);

/// Entries `[0, TARGET_COUNT)` of the table are this stop's targets.
pub(crate) static TARGET_COUNT: AtomicUsize = AtomicUsize::new(0);

static TARGETS: RawTable<Target> = RawTable::new(MAX_STOPPED_THREADS);

/// Where a target is in the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Status {
    /// Signalled, not yet acknowledged (zero: the state of a fresh entry).
    #[default]
    Signalled = 0,
    /// Suspended in its handler; registers spilled, sp recorded.
    Acked,
    /// In a blocking region: not signalled, stack still reported.
    Blocking,
    /// Exited while being stopped.
    Gone,
    /// Never acknowledged (blocks the signal): not stopped, not reported.
    GivenUp,
}

/// The stopping thread's private view of a target.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TargetState {
    pub status: Status,
    pub registered: bool,
    pub info: RegisteredThread,
    pub first_signal_ns: u64,
    pub status_checked: bool,
    pub stack: (usize, usize),
    pub tls: [(usize, usize); MAX_TLS_RANGES],
    pub tls_len: usize,
}

/// One thread of the current stop.
pub(crate) struct Target {
    /// Its thread id.
    pub tid: AtomicI32,
    /// The epoch it last acknowledged.
    pub acked_epoch: AtomicU32,
    /// Its stack pointer inside the suspend handler.
    pub sp: AtomicUsize,
    /// Its thread pointer (`%fs` base), to find its TLS.
    pub thread_pointer: AtomicUsize,
    state: UnsafeCell<TargetState>,
}

// SAFETY: the atomics are shared; `state` is only accessed by the thread that
// holds the world lock (see `state`/`state_mut`).
unsafe impl Sync for Target {}
// SAFETY: all fields are valid when zeroed (atomics, and a TargetState whose
// zero pattern is Status::Signalled / false / 0 — Status is a fieldless enum
// with discriminant 0 = Signalled).
unsafe impl ZeroValid for Target {}

impl Target {
    /// The stopper's view.
    ///
    /// # Safety
    /// The caller holds the world lock and no `state_mut` borrow is live.
    pub unsafe fn state(&self) -> &TargetState {
        // SAFETY: guaranteed by the caller (world lock held, no writer).
        unsafe { &*self.state.get() }
    }

    /// The stopper's view, mutably.
    ///
    /// # Safety
    /// The caller holds the world lock and no other borrow of the state is live.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn state_mut(&self) -> &mut TargetState {
        // SAFETY: guaranteed by the caller (world lock held, exclusive).
        unsafe { &mut *self.state.get() }
    }
}

/// The whole table (mapped on first use).
pub(crate) fn targets() -> &'static [Target] {
    TARGETS.entries()
}

/// The current targets.
pub(crate) fn current_targets() -> &'static [Target] {
    let count = TARGET_COUNT.load(Ordering::Acquire);
    &targets()[..count.min(MAX_STOPPED_THREADS)]
}

/// The entry for `tid` in the current stop (used by the suspend handler).
#[inline]
pub(crate) fn find(tid: i32) -> Option<&'static Target> {
    current_targets()
        .iter()
        .find(|t| t.tid.load(Ordering::Acquire) == tid)
}
