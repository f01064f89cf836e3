//! Stop-the-world cycles: `collect()`, `try_collect()`, out-of-memory and
//! budget cycles under a source that tracks nothing. Mark from every root
//! in one pause, close marking (see `pause`), then sweep in the pause or,
//! for budget cycles, on the collector thread after the restart with
//! allocate-black on.

use super::pacer::pacing_allowance;
use super::pause::{close_marking, PauseLocks};
use super::{cycle_lock, finish_cycle, ns, BudgetFrom, Cycle};
use crate::mark::{HeapMarks, MarkStack, Marker};
use crate::roots::{self};
use crate::runtime;
use crate::stats::{CycleKind, CycleReason, CycleStats};
use crate::util::lock;
use oohgc_allocator as heap;
use oohgc_dirty::raw_vec::RawVec;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

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

pub(super) fn run_stw(reason: CycleReason) {
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
pub(super) enum Sweep {
    /// Inside the pause: the cycle's caller waits for it anyway
    /// ([`collect`], an allocation at the heap limit).
    InPause,
    /// After the world restarts, on the collector thread, with
    /// allocate-black on from the restart to the sweep's end (as a
    /// concurrent cycle sweeps): nobody waits for it, and on a second core
    /// it costs the mutators nothing. Budget-triggered cycles.
    Background,
}

pub(super) fn run_stw_locked(
    mut cycle: MutexGuard<'static, Cycle>,
    reason: CycleReason,
    sweep: Sweep,
) {
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
    let mut locks = PauseLocks::take(libraries);
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
        close_marking(
            &mut m,
            &mut locks,
            &world,
            &c.statics,
            &RawVec::new(),
            cfg.verify,
            &mut cs,
        );
    }
    let p2 = Instant::now();
    cs.rescan_ns = ns(p2 - p1) - cs.verify_ns;
    locks.release_heap();
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
    drop(locks);
    finish_cycle(c, &mut cs, &cfg, swept, budget_from);
}
