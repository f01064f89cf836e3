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

use crate::mark::{HeapMarks, MarkStack, Marker};
use crate::mark_cache::MarkCache;
use crate::roots::{self, Ranges};
use crate::runtime::{self, lock};
use crate::stats::{self, CycleKind, CycleReason, CycleStats};
use crate::{finalize, verify, weak};
use oohgc_allocator as heap;
use oohgc_dirty::raw_vec::RawVec;
use oohgc_dirty::PageRange;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Allocation allowed while a concurrent cycle runs, in budgets, before the
/// allocating thread waits for the cycle to finish.
pub const PACING_BUDGETS: usize = 2;
/// At most this many precleaning rounds per cycle.
///
/// The rule: precleaning repeats until a round finds fewer than
/// [`PRECLEAN_ENOUGH_PAGES`] dirty pages, or the dirty set has not shrunk
/// for [`PRECLEAN_PATIENCE`] rounds in a row (mutators dirty pages as fast
/// as the collector re-scans them), or this many rounds ran; once a mutator
/// has spent its pacing allowance (and waits for the cycle), one more round
/// runs and then the final pause. Each round re-scans what the mutators dirtied
/// during the previous one, so while re-scanning a page takes less time
/// than the mutators take to dirty a new one, the dirty set shrinks
/// geometrically and the final pause re-scans only the last, short round's
/// pages.
pub const MAX_PRECLEAN_ROUNDS: u32 = 8;
/// Precleaning stops once a round finds fewer dirty pages than this: the
/// final pause will re-scan them faster than another round would.
pub const PRECLEAN_ENOUGH_PAGES: u64 = 256;
/// Rounds in a row without the dirty set shrinking after which precleaning
/// gives up (one such round is often noise: an allocation burst).
pub const PRECLEAN_PATIENCE: u32 = 2;

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
struct Cycle {
    stack: Option<MarkStack>,
    mark_cache: Option<MarkCache>,
    statics: Ranges,
    /// The libraries generation `statics` was listed at.
    statics_generation: u64,
    dirty: RawVec<(usize, usize)>,
    count: u64,
}

/// A cycle's state before it starts.
const FRESH_CYCLE: Cycle = Cycle {
    stack: None,
    mark_cache: None,
    statics: RawVec::new(),
    statics_generation: 0,
    dirty: RawVec::new(),
    count: 0,
};

static CYCLE: Mutex<Cycle> = Mutex::new(FRESH_CYCLE);
/// A fork child's cycle state when the fork happened in the middle of a
/// concurrent cycle: [`CYCLE`] stays locked there by a collector thread
/// that does not exist in the child (see [`reset_after_fork`]).
static CHILD_CYCLE: Mutex<Cycle> = Mutex::new(FRESH_CYCLE);
static CYCLE_ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The cycle state's lock: [`CYCLE`], or [`CHILD_CYCLE`] in a fork child
/// whose parent was mid-cycle.
fn cycle_lock() -> &'static Mutex<Cycle> {
    if CYCLE_ABANDONED.load(std::sync::atomic::Ordering::Relaxed) {
        &CHILD_CYCLE
    } else {
        &CYCLE
    }
}

/// State shared with the collector thread.
struct Shared {
    requested: bool,
    running: bool,
    completed: u64,
    thread_started: bool,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    requested: false,
    running: false,
    completed: 0,
    thread_started: false,
});
static WAKE_COLLECTOR: Condvar = Condvar::new();
/// Set by a mutator that spent its pacing allowance: the running cycle runs
/// one more precleaning round and goes to the final pause.
static HURRY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CYCLE_DONE: Condvar = Condvar::new();

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Run a full, blocking, stop-the-world collection now (unless collection
/// is disabled with [`crate::disable`]).
pub fn collect() {
    if runtime::DISABLED.load(std::sync::atomic::Ordering::Acquire) > 0 {
        return;
    }
    run_stw(CycleReason::Explicit);
}

/// Run a full collection unless another one keeps the collector busy past
/// `timeout`; returns whether a collection ran.
pub fn try_collect(timeout: Duration) -> bool {
    if runtime::DISABLED.load(std::sync::atomic::Ordering::Acquire) > 0 {
        return false;
    }
    runtime::start_collector_or_die();
    let deadline = Instant::now() + timeout;
    loop {
        match cycle_lock().try_lock() {
            Ok(g) => {
                run_stw_locked(g, CycleReason::Explicit, Sweep::InPause);
                return true;
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                run_stw_locked(p.into_inner(), CycleReason::Explicit, Sweep::InPause);
                return true;
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    return false;
                }
                let _b = oohgc_barriers::enter_blocking();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

fn run_stw(reason: CycleReason) {
    runtime::start_collector_or_die();
    // Waiting for the cycle lock may take a whole concurrent cycle: wait in
    // a blocking region so the pause of that cycle does not wait for us.
    let g = {
        let _b = oohgc_barriers::enter_blocking();
        lock(cycle_lock())
    };
    run_stw_locked(g, reason, Sweep::InPause);
}

/// Where a stop-the-world cycle sweeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sweep {
    /// Inside the pause: the cycle's caller waits for it anyway
    /// ([`collect`], an allocation at the heap limit).
    InPause,
    /// After the world restarts, on the collector thread, with
    /// allocate-black on from the restart to the sweep's end (as a
    /// concurrent cycle sweeps): nobody waits for it, and on a second core
    /// it costs the mutators nothing. Budget-triggered cycles.
    Background,
}

fn run_stw_locked(mut cycle: MutexGuard<'static, Cycle>, reason: CycleReason, sweep: Sweep) {
    let c = &mut *cycle;
    c.count += 1;
    let cfg = runtime::config();
    let mut cs = CycleStats {
        cycle: c.count,
        kind: CycleKind::StopTheWorld,
        reason,
        dirty_source: runtime::dirty_source().map_or("none", |s| s.name()),
        ..CycleStats::default()
    };
    let stack = c.stack.get_or_insert_with(MarkStack::new);
    let t0 = Instant::now();
    // Held until the restart: no library is unloaded under the scan.
    let libraries = roots::lock_libraries();
    c.statics_generation = roots::list_static_segments(&libraries, &mut c.statics);
    // Empties the marked-base cache: before the pause, not inside it.
    let marks = HeapMarks::new(&mut c.mark_cache);
    cs.arm_ns = ns(t0.elapsed());

    // Whether the helper marker can join this pause (see parallel_mark).
    let parallel = crate::parallel_mark::prepare();
    // Locks first, as in the concurrent final pause: the sweep below runs
    // in the pause and calls the dirty source's `discarded`, whose lock a
    // mutator holds while it tracks a new chunk; that mutator must not be
    // stopped there (found as a hang: uffd, 8 threads growing the heap).
    let tracking = runtime::lock_tracking();
    let mut fin = finalize::lock_table();
    let mut weak_guard = weak::lock_table();
    let heap_guard = heap::lock();
    let p0 = Instant::now();
    let world = oohgc_barriers::stop_world();
    // Inside the pause, where no allocation can publish a mark: see
    // `STALE_ALLOCATE_BLACK`.
    heap::clear_marks();
    let p1 = Instant::now();
    cs.stop_ns = ns(p1 - p0);
    cs.threads = world.thread_count() as u64;
    cs.threads_given_up += world.stats().given_up as u64;
    {
        let mut m = Marker::new(stack, marks);
        roots::scan_threads(&mut m, &world);
        roots::scan_global_roots(&mut m, &c.statics);
        roots::mark_manual_objects(&mut m);
        crate::parallel_mark::drain(&mut m, parallel);
        complete_marking(&mut m, &fin);
        let v0 = Instant::now();
        if cfg.verify {
            // A second, independent full mark: catches roots or objects the
            // first one could miss (a thread not stopped, a racing
            // allocation). Before finalization and weak clearing: see
            // `complete_marking`.
            verify::verify_marks(
                m.stack_mut(),
                &world,
                &fin,
                &c.statics,
                &RawVec::new(),
                cs.cycle,
            );
            cs.verify_ns = ns(v0.elapsed());
        }
        process_unreachable(&mut m, &mut fin, &mut weak_guard, &mut cs);
    }
    let p2 = Instant::now();
    cs.rescan_ns = ns(p2 - p1) - cs.verify_ns;
    drop(heap_guard);
    let (swept, budget_from) = match sweep {
        Sweep::InPause => {
            // Allocate-black is off: an object allocated once the world
            // restarts is unmarked, and a sweep running then would free it
            // under its thread's feet. Swept inside the pause, nothing is
            // allocated meanwhile.
            let s0 = Instant::now();
            let sw = heap::sweep();
            cs.sweep_ns = ns(s0.elapsed());
            (Some(sw), BudgetFrom::End)
        }
        Sweep::Background => {
            // From the restart to the end of the sweep, new objects are
            // born marked, so the sweep can run while mutators allocate.
            // Not earlier: without a dirty source nothing would re-scan an
            // object allocated black before the pause, and what it points
            // to would be lost. A thread stopped inside an allocation, that
            // read the flag off, publishes its object unmarked when it
            // resumes; its slot was marked through the thread's roots (see
            // `Marker::scan_thread_range`), so the sweep keeps it. Pacing as
            // in a concurrent cycle.
            heap::set_allocate_black(true);
            heap::reset_allocation_counter();
            heap::set_budget(pacing_allowance(&cfg, cs.bytes_marked as usize));
            (None, BudgetFrom::Pause)
        }
    };
    drop(world);
    let p3 = Instant::now();
    cs.resume_ns = ns(p3 - p2) - cs.sweep_ns;
    cs.pause_ns = ns(p3 - p0) - cs.verify_ns;
    drop(weak_guard);
    drop(fin);
    drop(tracking);
    drop(libraries);
    finish_cycle(c, &mut cs, &cfg, swept, budget_from);
}

/// The end of marking from roots inside a pause: mark what waits in the
/// finalization queue (it is a root until its finalizer ran) and trace.
/// After this, every object reachable from a root is marked — unless the
/// cycle lost a write, which is what the verifier checks *here*, before
/// [`process_unreachable`]: that step marks the subgraphs of unreachable
/// finalizable objects and queues them, so a reachable object the cycle
/// missed would be rescued into the finalization queue (and finalized while
/// in use) and look marked to a verifier that ran later.
fn complete_marking(m: &mut Marker<'_, HeapMarks<'_>>, fin: &finalize::FinalizeGuard) {
    finalize::mark_pending(fin, m);
    m.drain();
}

/// After [`complete_marking`] (and the verifier): clear weak references to
/// unmarked objects, queue ready finalizers (and trace what they
/// reference), record the counts.
fn process_unreachable(
    m: &mut Marker<'_, HeapMarks<'_>>,
    fin: &mut finalize::FinalizeGuard,
    weak_guard: &mut MutexGuard<'static, weak::Table>,
    cs: &mut CycleStats,
) {
    cs.weak_cleared = weak::clear_unreachable(weak_guard, m);
    cs.finalizers_queued = finalize::queue_unreachable(fin, m);
    m.drain();
    cs.objects_marked = m.counts.objects;
    cs.bytes_marked = m.counts.bytes;
}

/// Where the allocation counted against the next cycle's budget starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BudgetFrom {
    /// The end of this cycle (a concurrent cycle's allocation was paced
    /// while it ran; a stop-the-world cycle that swept in its pause).
    End,
    /// This cycle's pause, where the counter was reset: what mutators
    /// allocate while a background sweep runs counts against the next
    /// budget, as it would have if the sweep had run in the pause.
    Pause,
}

/// Sweep, reset the budget, record statistics (after the world restarted).
fn finish_cycle(
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

/// The allocation budget until the next cycle.
fn next_budget(cfg: &crate::Config, live: usize) -> usize {
    (live / cfg.free_space_divisor).max(cfg.initial_heap)
}

/// What mutators may allocate while a cycle is requested or running before
/// the one that crosses it waits for the cycle's end (pacing).
fn pacing_allowance(cfg: &crate::Config, live: usize) -> usize {
    PACING_BUDGETS * next_budget(cfg, live)
}

// ---------------------------------------------------------------------------
// Concurrent cycles.

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
    .unwrap_or_else(|e| runtime::fatal(format_args!("cannot start the collector thread: {e}")));
}

fn collector_thread() {
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

fn run_concurrent_locked(mut cycle: MutexGuard<'static, Cycle>, reason: CycleReason) {
    let c = &mut *cycle;
    let Some(src) = runtime::dirty_source() else {
        return run_stw_locked(cycle, reason, Sweep::Background);
    };
    let cfg = runtime::config();
    c.count += 1;
    let mut cs = CycleStats {
        cycle: c.count,
        kind: CycleKind::Concurrent,
        reason,
        dirty_source: src.name(),
        ..CycleStats::default()
    };
    let stack = c.stack.get_or_insert_with(MarkStack::new);

    // 1. Arm, then clear the marks, then allocate black: see
    // `STALE_ALLOCATE_BLACK` below for why the marks are cleared after the arm.
    let t0 = Instant::now();
    if let Err(e) = src.arm() {
        runtime::eprint_line(format_args!(
            "oohgc: arming dirty source `{}` failed ({e}); this cycle runs stop-the-world",
            src.name()
        ));
        c.count -= 1;
        return run_stw_locked(cycle, reason, Sweep::Background);
    }
    heap::clear_marks();
    heap::set_allocate_black(true);
    // Pacing: PACING_BUDGETS budgets' worth of allocation during the cycle
    // makes the allocating thread wait for the cycle's end (and the cycle
    // finish its precleaning after one more round).
    HURRY.store(false, std::sync::atomic::Ordering::Release);
    heap::reset_allocation_counter();
    heap::set_budget(pacing_allowance(&cfg, runtime::live_estimate()));
    cs.arm_ns = ns(t0.elapsed());

    // 2. Initial mark: thread stacks and registers are not tracked by the
    // dirty source, so read them in a short pause (only marking what they
    // point to directly; the tracing happens concurrently below).
    let libraries = roots::lock_libraries();
    c.statics_generation = roots::list_static_segments(&libraries, &mut c.statics);
    let mut m = Marker::new(stack, HeapMarks::new(&mut c.mark_cache));
    {
        let i0 = Instant::now();
        let world = oohgc_barriers::stop_world();
        cs.threads_given_up += world.stats().given_up as u64;
        roots::scan_threads(&mut m, &world);
        drop(world);
        cs.initial_pause_ns = ns(i0.elapsed());
    }
    // Concurrent mark from the stack roots found above and everything else.
    let t1 = Instant::now();
    roots::scan_global_roots(&mut m, &c.statics);
    drop(libraries);
    roots::mark_manual_objects(&mut m);
    finalize::mark_pending_concurrently(&mut m);
    m.drain();
    cs.concurrent_mark_ns = ns(t1.elapsed());

    // 3. Precleaning.
    let t2 = Instant::now();
    let mut last = u64::MAX;
    let mut rounds_not_shrinking = 0;
    while cs.preclean_rounds < MAX_PRECLEAN_ROUNDS {
        // A thread that spent its pacing allowance is parked until the
        // cycle ends: one more round re-scans what it dirtied before it
        // stopped, so the final pause does not have to.
        let hurry = HURRY.load(std::sync::atomic::Ordering::Acquire);
        let harvested = match take_injected_harvest_failure() {
            false => harvest(src, &mut c.dirty),
            // The test hook: a real harvest (drained and re-armed, as a
            // source that failed half-way may have done), then an error.
            true => harvest(src, &mut c.dirty).and(Err(())),
        };
        let pages = match harvested {
            Ok(p) => p,
            Err(()) => {
                // A failed harvest may have re-armed pages it never reported,
                // and no later harvest reports them again. Fall back to "every
                // page dirty" for them: re-scan every marked object, now and
                // concurrently (writes after the failed harvest are tracked
                // again and reach the next harvest). The final pause re-scans
                // everything again if its own harvest fails.
                cs.harvest_failures += 1;
                cs.rescanned_objects += rescan_all_marked_concurrently(&mut m);
                m.drain();
                if cs.harvest_failures >= 2 {
                    break;
                }
                cs.preclean_rounds += 1;
                continue;
            }
        };
        cs.preclean_rounds += 1;
        cs.preclean_dirty_pages += pages;
        cs.rescanned_objects += rescan_dirty(&mut m, &c.dirty);
        m.drain();
        if pages < PRECLEAN_ENOUGH_PAGES || hurry {
            break;
        }
        rounds_not_shrinking = if pages >= last {
            rounds_not_shrinking + 1
        } else {
            0
        };
        if rounds_not_shrinking >= PRECLEAN_PATIENCE {
            break;
        }
        last = pages;
    }
    cs.preclean_ns = ns(t2.elapsed());

    // 4. Final pause. Locks first (see each): no stopped thread may hold one.
    // The libraries lock: no `dlopen`/`dlclose` until the restart, and the
    // segment list is made again if one ran since the initial mark (a
    // library loaded meanwhile is scanned in this pause).
    let libraries = roots::lock_libraries();
    roots::refresh_static_segments(&libraries, &mut c.statics, &mut c.statics_generation);
    let tracking = runtime::lock_tracking();
    let mut fin = finalize::lock_table();
    let mut weak_guard = weak::lock_table();
    let heap_guard = heap::lock();
    let p0 = Instant::now();
    let world = oohgc_barriers::stop_world();
    let p1 = Instant::now();
    cs.stop_ns = ns(p1 - p0);
    cs.threads = world.thread_count() as u64;
    cs.threads_given_up += world.stats().given_up as u64;
    let harvested = harvest(src, &mut c.dirty);
    let p2 = Instant::now();
    cs.harvest_ns = ns(p2 - p1);
    match harvested {
        Ok(pages) => {
            cs.dirty_pages = pages;
            cs.rescanned_objects += rescan_dirty(&mut m, &c.dirty);
        }
        Err(()) => {
            // No trustworthy dirty set: re-scan every marked object.
            cs.harvest_failures += 1;
            cs.rescanned_objects += rescan_all_marked(&mut m);
        }
    }
    roots::scan_threads(&mut m, &world);
    roots::scan_global_roots(&mut m, &c.statics);
    complete_marking(&mut m, &fin);
    let v0 = Instant::now();
    if cfg.verify {
        verify::verify_marks(m.stack_mut(), &world, &fin, &c.statics, &c.dirty, cs.cycle);
        cs.verify_ns = ns(v0.elapsed());
    }
    process_unreachable(&mut m, &mut fin, &mut weak_guard, &mut cs);
    let p4 = Instant::now();
    cs.rescan_ns = ns(p4 - p2) - cs.verify_ns;
    drop(world);
    let p5 = Instant::now();
    cs.resume_ns = ns(p5 - p4);
    cs.pause_ns = ns(p5 - p0) - cs.verify_ns;
    drop(heap_guard);
    drop(weak_guard);
    drop(fin);
    drop(tracking);
    drop(libraries);
    if let Err(e) = src.disarm() {
        runtime::eprint_line(format_args!(
            "oohgc: disarming `{}` failed: {e}",
            src.name()
        ));
    }
    finish_cycle(c, &mut cs, &cfg, None, BudgetFrom::End);
}

/// Harvest the dirty source into `out` as sorted, merged ranges; returns
/// the number of dirty pages.
fn harvest(
    src: &dyn oohgc_dirty::DirtySource,
    out: &mut RawVec<(usize, usize)>,
) -> Result<u64, ()> {
    out.clear();
    let r = src.harvest(&mut |r: PageRange| out.push((r.start, r.end())));
    if let Err(e) = r {
        runtime::eprint_line(format_args!(
            "oohgc: harvest from `{}` failed: {e}",
            src.name()
        ));
        return Err(());
    }
    out.as_mut_slice().sort_unstable();
    let mut merged = 0usize;
    for i in 0..out.len() {
        let (s, e) = out[i];
        if merged > 0 && out[merged - 1].1 >= s {
            out[merged - 1].1 = out[merged - 1].1.max(e);
        } else {
            out[merged] = (s, e);
            merged += 1;
        }
    }
    out.truncate(merged);
    Ok(out
        .iter()
        .map(|&(s, e)| ((e - s) / oohgc_dirty::PAGE_SIZE) as u64)
        .sum())
}

/// Re-scan the parts of marked objects that lie on dirty pages.
fn rescan_dirty(m: &mut Marker<'_, HeapMarks<'_>>, dirty: &RawVec<(usize, usize)>) -> u64 {
    let mut objects = 0;
    for &(s, e) in dirty.iter() {
        heap::for_each_marked_scanned_object_in(s, e, &mut |o| {
            objects += 1;
            m.scan_range(o.base.max(s), (o.base + o.size).min(e));
        });
    }
    objects
}

/// Re-scan every marked object while mutators run: the dirty set of every
/// page, as the span walk of [`rescan_dirty`] does it (safe beside
/// allocation).
fn rescan_all_marked_concurrently(m: &mut Marker<'_, HeapMarks<'_>>) -> u64 {
    let (lo, _) = heap::heap_bounds();
    let mut all = RawVec::new();
    all.push((lo, heap::heap_extent().max(lo)));
    rescan_dirty(m, &all)
}

/// Precleaning harvests that the test hook turns into failures.
static INJECTED_HARVEST_FAILURES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Test hook: the next `n` precleaning harvests harvest for real (the
/// source drains and re-arms what it found) and then report an error, as
/// a source failing half-way would; the cycle must lose nothing.
#[doc(hidden)]
pub fn inject_preclean_harvest_failures(n: u64) {
    INJECTED_HARVEST_FAILURES.fetch_add(n, std::sync::atomic::Ordering::AcqRel);
}

fn take_injected_harvest_failure() -> bool {
    use std::sync::atomic::Ordering;
    INJECTED_HARVEST_FAILURES.load(Ordering::Relaxed) > 0
        && INJECTED_HARVEST_FAILURES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
}

fn rescan_all_marked(m: &mut Marker<'_, HeapMarks<'_>>) -> u64 {
    let mut objects = 0;
    heap::for_each_object(None, &mut |o| {
        if o.kind != heap::ObjectKind::ManagedNoScan && heap::is_marked(o.base) {
            objects += 1;
            m.scan_range(o.base, o.base + o.size);
        }
    });
    objects
}

// ---------------------------------------------------------------------------
// Hooks called by the heap.

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
