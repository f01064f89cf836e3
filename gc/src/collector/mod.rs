//! The collection cycle: stop-the-world and mostly-concurrent, the collector
//! thread, the trigger and pacing policy.
//!
//! **Stop-the-world cycle** (`none`, explicit `collect()`, out-of-memory):
//! stop the world; clear marks; mark from every root; process weak
//! references and finalizable objects; sweep; restart. A cycle triggered by
//! allocation runs on the collector thread and sweeps after the restart,
//! with allocate-black on until the sweep ends ([`Sweep::Background`]):
//! the pause is marking only, and on a second core the mutators do not
//! wait for the sweep. One that a caller waits for anyway (`collect()`,
//! out-of-memory) sweeps inside its pause ([`Sweep::InPause`]).
//!
//! **Concurrent cycle** (every other dirty source), on the collector thread
//! (Boehm, Demers & Shenker, PLDI'91):
//! 1. *arm* the dirty source over the heap, clear marks, then turn
//!    allocate-black on. (In that order: an object allocated black is never
//!    scanned before the final pause, so every write into it must come after
//!    the arm and dirty its page. Objects allocated between the arm and
//!    allocate-black are unmarked and are found like any other object. Why
//!    the marks are cleared after the arm: `STALE_ALLOCATE_BLACK` below.)
//! 2. initial mark: a short pause that reads every thread's stack, registers
//!    and TLS (they are not tracked by the dirty source) and marks what they
//!    point to; then mark concurrently from those, the static roots,
//!    `GcAllocator` blocks and user roots.
//! 3. precleaning: harvest, re-scan marked objects on dirty pages, drain;
//!    repeated while it pays (see [`MAX_PRECLEAN_ROUNDS`]).
//! 4. final pause: stop the world, harvest, re-scan the dirty parts of marked
//!    objects and every root (stacks, registers, TLS, statics), finish
//!    marking, clear weak references and queue finalizers, optionally verify,
//!    restart.
//! 5. sweep concurrently with allocate-black still on, then turn it off.
//!
//! Correctness argument for step 4: an object reachable at the final pause
//! is reachable through a chain of pointers from a root. Every pointer in
//! the chain either was in place when its holder was scanned (so its target
//! is marked), or was written after — after the arm, hence on a page the
//! final harvest reports — and the holder, being marked, is re-scanned on
//! that page. Roots are scanned entirely inside the pause.
//!
//! **Trigger and heap growth** (bdwgc's free-space divisor): a cycle starts
//! when `max(initial_heap, live / free_space_divisor)` bytes have been
//! allocated since the last one; the heap grows only as allocation between
//! cycles needs. **Pacing**: if mutators allocate [`PACING_BUDGETS`]
//! budgets' worth while a concurrent cycle runs, the thread that crossed the
//! line waits for the cycle's end (in a blocking region, so it does not
//! delay the pause) and the cycle runs one more precleaning round (which
//! re-scans what that thread dirtied) before its final pause.

mod concurrent;
mod pacer;
mod pause;
mod stop_the_world;

use concurrent::run_concurrent_locked;
pub use concurrent::{
    inject_preclean_harvest_failures, MAX_PRECLEAN_ROUNDS, PRECLEAN_ENOUGH_PAGES, PRECLEAN_PATIENCE,
};
pub use pacer::PACING_BUDGETS;
use pacer::{next_budget, HURRY};
pub(crate) use pacer::{on_budget_exceeded, on_out_of_memory};
pub use stop_the_world::{collect, try_collect};
use stop_the_world::{run_stw_locked, Sweep};

use crate::finalize;
use crate::mark::MarkStack;
use crate::mark_cache::MarkCache;
use crate::roots::Ranges;
use crate::runtime;
use crate::stats::{self, CycleReason, CycleStats};
use crate::util::lock;
use oohgc_allocator as heap;
use oohgc_dirty::raw_vec::RawVec;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// STALE_ALLOCATE_BLACK — why marks are cleared where they are.
//
// The allocation fast path reads the allocate-black flag with a relaxed
// load and stores the new object's mark byte a few instructions later. A
// thread preempted between the two can carry a stale "on" across the end of
// one cycle (flag off after its sweep) and into the next one, and store its
// mark *after* that cycle's `clear_marks`: the object is then black in the
// new cycle although nothing has scanned it. If it was marked before the
// dirty source was armed and the program then wrote a pointer into it, that
// write is in no dirty set and its target is lost.
//
// Closed by ordering, with no cost on the fast path:
// * Concurrent cycles arm the dirty source *before* `clear_marks`. A stale
//   mark store that lands before `clear_marks` is erased (the object is
//   white and found like any other). One that lands after it comes after
//   the arm; the program's writes into the object follow that store on the
//   same thread, so they come after the arm too (x86-64 keeps stores in
//   program order, and the arm's protection change is complete, TLB
//   shootdown included, before `clear_marks` starts): the object's page is
//   in the final dirty set and the object, being marked, is re-scanned
//   there — the rule for every object allocated black.
// * Stop-the-world cycles have no dirty set, so they clear the marks inside
//   the pause, where no allocation can complete. A thread stopped between
//   the load and the store stores its mark after the restart: a Background
//   sweep has allocate-black on by then anyway, and an in-pause sweep has
//   already run (the mark only keeps the object one cycle longer).

/// Everything a cycle needs, behind the cycle lock (one cycle at a time).
pub(super) struct Cycle {
    stack: Option<MarkStack>,
    mark_cache: Option<MarkCache>,
    statics: Ranges,
    /// The libraries generation `statics` was listed at.
    statics_generation: u64,
    dirty: RawVec<(usize, usize)>,
    count: u64,
}

/// A cycle's state before it starts.
pub(super) const FRESH_CYCLE: Cycle = Cycle {
    stack: None,
    mark_cache: None,
    statics: RawVec::new(),
    statics_generation: 0,
    dirty: RawVec::new(),
    count: 0,
};

pub(super) static CYCLE: Mutex<Cycle> = Mutex::new(FRESH_CYCLE);

/// A fork child's cycle state when the fork happened in the middle of a
/// concurrent cycle: [`CYCLE`] stays locked there by a collector thread
/// that does not exist in the child (see [`reset_after_fork`]).
pub(super) static CHILD_CYCLE: Mutex<Cycle> = Mutex::new(FRESH_CYCLE);

pub(super) static CYCLE_ABANDONED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The cycle state's lock: [`CYCLE`], or [`CHILD_CYCLE`] in a fork child
/// whose parent was mid-cycle.
pub(super) fn cycle_lock() -> &'static Mutex<Cycle> {
    if CYCLE_ABANDONED.load(std::sync::atomic::Ordering::Relaxed) {
        &CHILD_CYCLE
    } else {
        &CYCLE
    }
}

/// State shared with the collector thread.
pub(super) struct Shared {
    requested: bool,
    running: bool,
    completed: u64,
    thread_started: bool,
}

pub(super) static SHARED: Mutex<Shared> = Mutex::new(Shared {
    requested: false,
    running: false,
    completed: 0,
    thread_started: false,
});

pub(super) static WAKE_COLLECTOR: Condvar = Condvar::new();

pub(super) static CYCLE_DONE: Condvar = Condvar::new();

pub(super) fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Where the allocation counted against the next cycle's budget starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum BudgetFrom {
    /// The end of this cycle (a concurrent cycle's allocation was paced
    /// while it ran; a stop-the-world cycle that swept in its pause).
    End,
    /// This cycle's pause, where the counter was reset: what mutators
    /// allocate while a background sweep runs counts against the next
    /// budget, as it would have if the sweep had run in the pause.
    Pause,
}

/// Sweep, reset the budget, record statistics (after the world restarted).
pub(super) fn finish_cycle(
    c: &mut Cycle,
    cs: &mut CycleStats,
    cfg: &crate::Config,
    swept: Option<heap::SweepStats>,
    budget_from: BudgetFrom,
) {
    finalize::wake_finalizer();
    let sw = match swept {
        Some(sw) => sw,
        None => {
            let s0 = Instant::now();
            let sw = heap::sweep();
            heap::set_allocate_black(false);
            cs.sweep_ns = ns(s0.elapsed());
            sw
        }
    };
    cs.bytes_freed = sw.bytes_freed as u64;
    cs.live_bytes = sw.live_bytes as u64;
    cs.heap_size = heap::committed_bytes() as u64;
    if let Some(st) = c.stack.as_mut() {
        st.release_memory();
    }
    if budget_from == BudgetFrom::End {
        heap::reset_allocation_counter();
    }
    heap::set_budget(next_budget(cfg, sw.live_bytes));
    if cfg.find_leaks {
        crate::leaks::report_cycle(cs.cycle);
    }
    stats::record(cs, cfg.print_stats);
}

/// Start the collector thread (once).
pub(crate) fn spawn_collector_thread() {
    let mut sh = lock(&SHARED);
    if sh.thread_started {
        return;
    }
    sh.thread_started = true;
    drop(sh);
    // From `malloc`: the thread's handle, name and start packet are the
    // collector's own memory, not the program's (leak reports would show
    // them: nothing the stopped world holds points to them).
    runtime::with_system_allocator(|| {
        std::thread::Builder::new()
            .name("oohgc-collector".into())
            .spawn(collector_thread)
    })
    .unwrap_or_else(|e| crate::util::fatal(format_args!("cannot start the collector thread: {e}")));
}

pub(super) fn collector_thread() {
    runtime::become_internal_thread();
    loop {
        {
            let mut sh = lock(&SHARED);
            while !sh.requested {
                sh = WAKE_COLLECTOR.wait(sh).unwrap_or_else(|p| p.into_inner());
            }
            sh.requested = false;
            sh.running = true;
        }
        let cycle = lock(cycle_lock());
        if runtime::concurrent_ok() {
            run_concurrent_locked(cycle, CycleReason::Budget);
        } else {
            run_stw_locked(cycle, CycleReason::Budget, Sweep::Background);
        }
        let mut sh = lock(&SHARED);
        sh.running = false;
        sh.completed += 1;
        CYCLE_DONE.notify_all();
    }
}

/// In a fork child: the collector thread does not exist there (called after
/// the fork guards are released). If the fork happened while a concurrent
/// cycle was marking or precleaning, that cycle is abandoned: its state
/// stays behind a lock nobody will release, the child starts from fresh
/// state, and allocate-black goes off (the child's cycles run
/// stop-the-world and clear all marks in their pause; see `fork`).
pub(crate) fn reset_after_fork() {
    let mut sh = lock(&SHARED);
    sh.thread_started = false;
    sh.running = false;
    sh.requested = false;
    drop(sh);
    if matches!(CYCLE.try_lock(), Err(std::sync::TryLockError::WouldBlock)) {
        CYCLE_ABANDONED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    HURRY.store(false, std::sync::atomic::Ordering::Relaxed);
    heap::set_allocate_black(false);
    heap::reset_allocation_counter();
    let cfg = runtime::config();
    heap::set_budget(next_budget(&cfg, runtime::live_estimate()));
}

/// The collector-thread state, held across `fork()`. Not the cycle lock:
/// a concurrent cycle holds that from its start to its end, and a program
/// that forks often would stall for whole cycles. What a cycle holds only
/// for a moment (the pause's locks, a sweep's lock) the fork handler takes
/// itself; what is left is the marking state, which the child abandons.
pub(crate) struct ForkGuard {
    _shared: MutexGuard<'static, Shared>,
}

/// `fork` prepare handler: hold the collector-thread state.
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard {
        _shared: lock(&SHARED),
    }
}

/// Whether a cycle is requested or running on the collector thread (for
/// tests: a fork must not wait for it).
#[doc(hidden)]
pub fn cycle_in_progress() -> bool {
    let sh = lock(&SHARED);
    sh.running || sh.requested
}

/// Ask the collector thread to start a concurrent cycle now, without
/// waiting for it. Returns false when collection runs stop-the-world only
/// (dirty source `none`, or tracking unavailable) or is disabled.
pub fn start_cycle() -> bool {
    if runtime::DISABLED.load(std::sync::atomic::Ordering::Acquire) > 0 {
        return false;
    }
    runtime::start_collector_or_die();
    let mut sh = lock(&SHARED);
    if !sh.thread_started || !runtime::concurrent_ok() {
        return false;
    }
    if !sh.running {
        sh.requested = true;
        WAKE_COLLECTOR.notify_one();
    }
    true
}

/// Wait until at least `n` more concurrent cycles have completed (or return
/// at once in stop-the-world mode).
pub fn wait_for_cycles(n: u64) {
    let mut sh = lock(&SHARED);
    if !sh.thread_started || !runtime::concurrent_ok() {
        return;
    }
    let target = sh.completed + n;
    let _b = oohgc_barriers::enter_blocking();
    while sh.completed < target {
        if !sh.running && !sh.requested {
            sh.requested = true;
            WAKE_COLLECTOR.notify_one();
        }
        sh = CYCLE_DONE.wait(sh).unwrap_or_else(|p| p.into_inner());
    }
}
