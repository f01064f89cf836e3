//! The pacer: when a cycle starts (the allocation budget between cycles),
//! how much mutators may allocate while one runs, and when an allocating
//! thread waits for it. The heap only reports allocation (its budget hooks
//! call here).

use super::stop_the_world::{run_stw, run_stw_locked, Sweep};
use super::{cycle_lock, CYCLE_DONE, SHARED, WAKE_COLLECTOR};
use crate::roots::{self};
use crate::runtime;
use crate::stats::CycleReason;
use crate::util::lock;
use oohgc_allocator as heap;

/// Allocation allowed while a concurrent cycle runs, in budgets, before the
/// allocating thread waits for the cycle to finish.
pub const PACING_BUDGETS: usize = 2;

/// Set by a mutator that spent its pacing allowance: the running cycle runs
/// one more precleaning round and goes to the final pause.
pub(super) static HURRY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The allocation budget until the next cycle.
pub(super) fn next_budget(cfg: &crate::Config, live: usize) -> usize {
    (live / cfg.free_space_divisor).max(cfg.initial_heap)
}

/// What mutators may allocate while a cycle is requested or running before
/// the one that crosses it waits for the cycle's end (pacing).
pub(super) fn pacing_allowance(cfg: &crate::Config, live: usize) -> usize {
    PACING_BUDGETS * next_budget(cfg, live)
}

/// The allocation budget is spent (called on the allocating thread, no heap
/// lock held).
pub(crate) fn on_budget_exceeded() {
    let cfg = runtime::config();
    if !cfg.auto_collect
        || runtime::DISABLED.load(std::sync::atomic::Ordering::Acquire) > 0
        || runtime::current_thread_is_internal()
    {
        heap::reset_allocation_counter();
        heap::set_budget(next_budget(&cfg, runtime::live_estimate()));
        return;
    }
    runtime::start_collector_or_die();
    if !lock(&SHARED).thread_started {
        run_stw(CycleReason::Budget);
        return;
    }
    let mut sh = lock(&SHARED);
    if !sh.running && !sh.requested {
        sh.requested = true;
        WAKE_COLLECTOR.notify_one();
        // Pacing from the request on, not only once the cycle has begun:
        // a collector thread slow to get a core (a busy host) would
        // otherwise let mutators allocate without bound until it starts.
        heap::set_budget(
            heap::allocated_since_reset() + pacing_allowance(&cfg, runtime::live_estimate()),
        );
        return;
    }
    // A cycle is under way and the mutators spent their pacing allowance:
    // hurry the cycle to its final pause and wait for it (pacing) — unless
    // this thread is inside `dlopen`/`dlclose`: the cycle's final pause
    // waits for the libraries lock it holds.
    HURRY.store(true, std::sync::atomic::Ordering::Release);
    if roots::this_thread_holds_libraries_lock() {
        return;
    }
    let target = sh.completed + 1;
    let _b = oohgc_barriers::enter_blocking();
    while sh.completed < target && (sh.running || sh.requested) {
        sh = CYCLE_DONE.wait(sh).unwrap_or_else(|p| p.into_inner());
    }
}

/// An allocation failed at the heap limit: wait for a running cycle, then
/// collect in a pause; true = retry the allocation.
pub(crate) fn on_out_of_memory(_bytes: usize) -> bool {
    if runtime::DISABLED.load(std::sync::atomic::Ordering::Acquire) > 0
        || runtime::current_thread_is_internal()
    {
        return false;
    }
    if roots::this_thread_holds_libraries_lock() {
        // Inside `dlopen`/`dlclose`: a running cycle may be waiting for the
        // libraries lock this thread holds, so only collect if none runs.
        return match cycle_lock().try_lock() {
            Ok(g) => {
                run_stw_locked(g, CycleReason::OutOfMemory, Sweep::InPause);
                true
            }
            Err(_) => false,
        };
    }
    run_stw(CycleReason::OutOfMemory);
    true
}
