//! Mostly-concurrent cycles: arm, initial mark (stacks in a short pause),
//! concurrent mark, precleaning rounds, the final pause that re-scans the
//! dirty set, and the harvest and re-scan helpers they share.

use super::pacer::{pacing_allowance, HURRY};
use super::pause::{close_marking, PauseLocks};
use super::stop_the_world::{run_stw_locked, Sweep};
use super::{finish_cycle, ns, BudgetFrom, Cycle};
use crate::finalize;
use crate::mark::{HeapMarks, MarkStack, Marker};
use crate::roots::{self};
use crate::runtime::{self};
use crate::stats::{CycleKind, CycleReason, CycleStats};
use oohgc_allocator as heap;
use oohgc_dirty::raw_vec::RawVec;
use oohgc_dirty::PageRange;
use std::sync::MutexGuard;
use std::time::Instant;

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

pub(super) fn run_concurrent_locked(mut cycle: MutexGuard<'static, Cycle>, reason: CycleReason) {
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
        crate::util::eprint_line(format_args!(
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
    let mut locks = PauseLocks::take(libraries);
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
    close_marking(
        &mut m, &mut locks, &world, &c.statics, &c.dirty, cfg.verify, &mut cs,
    );
    let p4 = Instant::now();
    cs.rescan_ns = ns(p4 - p2) - cs.verify_ns;
    drop(world);
    let p5 = Instant::now();
    cs.resume_ns = ns(p5 - p4);
    cs.pause_ns = ns(p5 - p0) - cs.verify_ns;
    drop(locks);
    if let Err(e) = src.disarm() {
        crate::util::eprint_line(format_args!(
            "oohgc: disarming `{}` failed: {e}",
            src.name()
        ));
    }
    finish_cycle(c, &mut cs, &cfg, None, BudgetFrom::End);
}

/// Harvest the dirty source into `out` as sorted, merged ranges; returns
/// the number of dirty pages.
pub(super) fn harvest(
    src: &dyn oohgc_dirty::DirtySource,
    out: &mut RawVec<(usize, usize)>,
) -> Result<u64, ()> {
    out.clear();
    let r = src.harvest(&mut |r: PageRange| out.push((r.start, r.end())));
    if let Err(e) = r {
        crate::util::eprint_line(format_args!(
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
pub(super) fn rescan_dirty(
    m: &mut Marker<'_, HeapMarks<'_>>,
    dirty: &RawVec<(usize, usize)>,
) -> u64 {
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
pub(super) fn rescan_all_marked_concurrently(m: &mut Marker<'_, HeapMarks<'_>>) -> u64 {
    let (lo, _) = heap::heap_bounds();
    let mut all = RawVec::new();
    all.push((lo, heap::heap_extent().max(lo)));
    rescan_dirty(m, &all)
}

/// Precleaning harvests that the test hook turns into failures.
pub(super) static INJECTED_HARVEST_FAILURES: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// Test hook: the next `n` precleaning harvests harvest for real (the
/// source drains and re-arms what it found) and then report an error, as
/// a source failing half-way would; the cycle must lose nothing.
#[doc(hidden)]
pub fn inject_preclean_harvest_failures(n: u64) {
    INJECTED_HARVEST_FAILURES.fetch_add(n, std::sync::atomic::Ordering::AcqRel);
}

pub(super) fn take_injected_harvest_failure() -> bool {
    use std::sync::atomic::Ordering;
    INJECTED_HARVEST_FAILURES.load(Ordering::Relaxed) > 0
        && INJECTED_HARVEST_FAILURES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
}

pub(super) fn rescan_all_marked(m: &mut Marker<'_, HeapMarks<'_>>) -> u64 {
    let mut objects = 0;
    heap::for_each_object(None, &mut |o| {
        if o.kind != heap::ObjectKind::ManagedNoScan && heap::is_marked(o.base) {
            objects += 1;
            m.scan_range(o.base, o.base + o.size);
        }
    });
    objects
}
