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

/// Thread id of the thread holding the world stopped (0: none).
pub(crate) static STOPPER_TID: AtomicI32 = AtomicI32::new(0);

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
    /// Consecutive late looks that found it asleep with a mask of its own
    /// blocking the suspend signal (see `stop::set_by_program`).
    pub blocked_looks: u8,
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
    /// The epoch after which it has left its wait and passed the restart on.
    pub resumed_epoch: AtomicU32,
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

/// Restarts propagate down a forest laid over the target table: targets 0
/// and 1 are roots, and target `i` passes the restart on to `2i + 2` and
/// `2i + 3`. The stopper signals only the roots and the targets whose parent
/// did not acknowledge (so it cannot pass anything on); every restarted
/// thread signals its children from its handler. With more runnable threads
/// than cores the stopper is often preempted by the first thread it wakes;
/// the woken threads then carry the restart on instead of waiting for it.
pub(crate) fn restart_children(index: usize) -> [usize; 2] {
    [2 * index + 2, 2 * index + 3]
}

/// The target that passes the restart on to target `index`, if any.
pub(crate) fn restart_parent(index: usize) -> Option<usize> {
    (index >= 2).then(|| (index - 2) / 2)
}

/// Sends the restart signal to the children of target `index` that
/// acknowledged `epoch` (async-signal-safe; used by the handler).
pub(crate) fn pass_restart_on(index: usize, epoch: u32, restart: i32) {
    let targets = current_targets();
    for child in restart_children(index) {
        if let Some(target) = targets.get(child) {
            if target.acked_epoch.load(Ordering::SeqCst) == epoch {
                // ESRCH only means the thread is gone.
                let _ = crate::sys::tgkill(target.tid.load(Ordering::Relaxed), restart);
            }
        }
    }
}

/// Restarts directly every target of the previous stop (epoch `epoch`) that
/// has not yet passed its restart on: its parent may not have run since the
/// restart, and the table is about to be reused, after which the parent
/// could no longer find it. Called by the next stopper before it resets the
/// table. Extra restart signals are harmless (the epoch decides).
pub(crate) fn finish_previous_restart(epoch: u32, restart: i32) {
    for target in current_targets() {
        if target.acked_epoch.load(Ordering::SeqCst) == epoch
            && target.resumed_epoch.load(Ordering::SeqCst) != epoch
        {
            let _ = crate::sys::tgkill(target.tid.load(Ordering::Relaxed), restart);
        }
    }
}

/// The position of `target` in the table.
pub(crate) fn index_of(target: &Target) -> usize {
    let base = targets().as_ptr() as usize;
    (target as *const Target as usize - base) / core::mem::size_of::<Target>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_forest_reaches_every_index_once() {
        let mut parents = [0usize; 200];
        for i in 0..200 {
            for child in restart_children(i) {
                if child < 200 {
                    parents[child] += 1;
                    assert_eq!(restart_parent(child), Some(i));
                }
            }
        }
        assert_eq!(parents[0], 0);
        assert_eq!(parents[1], 0);
        assert!(parents[2..].iter().all(|&n| n == 1));
        assert_eq!(restart_parent(0), None);
        assert_eq!(restart_parent(1), None);
    }
}
