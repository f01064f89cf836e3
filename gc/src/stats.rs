//! Statistics: per-cycle records, totals, the pause histogram, the per-cycle
//! callback and the one-line-per-cycle stderr output (`OOHGC_STATS=1`).
//!
//! Pause durations are kept exactly (one `u64` per cycle, in raw mmap), so
//! percentiles are exact; the histogram buckets are powers of two of
//! microseconds for a quick look.

use oohgc_dirty::raw_vec::RawVec;
use std::fmt;
use std::sync::Mutex;

/// How a cycle ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CycleKind {
    /// Everything inside one pause.
    #[default]
    StopTheWorld,
    /// Concurrent mark, final re-scan pause driven by the dirty source.
    Concurrent,
}

/// Why a cycle ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CycleReason {
    /// `oohgc::collect()`.
    #[default]
    Explicit,
    /// The allocation budget was spent.
    Budget,
    /// An allocation failed at the heap limit.
    OutOfMemory,
}

/// What one collection cycle did and how long each phase took
/// (nanoseconds of wall time).
#[derive(Clone, Copy, Debug, Default)]
pub struct CycleStats {
    /// Cycle number, from 1.
    pub cycle: u64,
    /// Stop-the-world or concurrent.
    pub kind: CycleKind,
    /// What started it.
    pub reason: CycleReason,
    /// Dirty source in use.
    pub dirty_source: &'static str,
    /// Clearing marks and arming the dirty source.
    pub arm_ns: u64,
    /// Concurrent marking (0 for stop-the-world).
    pub concurrent_mark_ns: u64,
    /// Precleaning rounds run.
    pub preclean_rounds: u32,
    /// Time in precleaning.
    pub preclean_ns: u64,
    /// Dirty pages found by precleaning.
    pub preclean_dirty_pages: u64,
    /// The initial-mark pause of a concurrent cycle (reading thread stacks).
    pub initial_pause_ns: u64,
    /// The whole (final) pause, from asking threads to stop until they run.
    pub pause_ns: u64,
    /// Stopping the world.
    pub stop_ns: u64,
    /// Harvesting the dirty source inside the pause.
    pub harvest_ns: u64,
    /// Scanning roots and dirty pages, and finishing marking, in the pause.
    pub rescan_ns: u64,
    /// Restarting the world.
    pub resume_ns: u64,
    /// Sweeping.
    pub sweep_ns: u64,
    /// Verification pause (0 unless the verifier is on).
    pub verify_ns: u64,
    /// Dirty pages harvested in the final pause.
    pub dirty_pages: u64,
    /// Harvests that failed (each made the cycle re-scan every marked
    /// object instead of trusting fewer pages).
    pub harvest_failures: u32,
    /// Objects re-scanned because they lie on dirty pages.
    pub rescanned_objects: u64,
    /// Objects marked in this cycle.
    pub objects_marked: u64,
    /// Bytes marked in this cycle.
    pub bytes_marked: u64,
    /// Threads stopped in the final pause.
    pub threads: u64,
    /// Threads the cycle's stops gave up (summed over its pauses): not
    /// stopped, their stacks and registers not scanned, each named on
    /// stderr (see `oohgc_barriers::StopStats::given_up`). Not 0 means the
    /// cycle may have freed an object only such a thread referenced.
    pub threads_given_up: u64,
    /// Objects queued for finalization.
    pub finalizers_queued: u64,
    /// Weak references cleared.
    pub weak_cleared: u64,
    /// Bytes freed by the sweep.
    pub bytes_freed: u64,
    /// Live bytes after the sweep (marked objects and `GcAllocator` blocks).
    pub live_bytes: u64,
    /// Committed heap after the cycle.
    pub heap_size: u64,
}

impl fmt::Display for CycleStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        write!(
            f,
            "oohgc: cycle {} {:?}/{:?} src={} initial={:.3}ms pause={:.3}ms (stop {:.3} harvest {:.3} rescan {:.3} resume {:.3}) \
             arm={:.3}ms mark={:.3}ms preclean={}x{:.3}ms sweep={:.3}ms dirty={} rescanned={} marked={}KiB \
             freed={}KiB live={}KiB heap={}KiB threads={}",
            self.cycle,
            self.kind,
            self.reason,
            self.dirty_source,
            ms(self.initial_pause_ns),
            ms(self.pause_ns),
            ms(self.stop_ns),
            ms(self.harvest_ns),
            ms(self.rescan_ns),
            ms(self.resume_ns),
            ms(self.arm_ns),
            ms(self.concurrent_mark_ns),
            self.preclean_rounds,
            ms(self.preclean_ns),
            ms(self.sweep_ns),
            self.dirty_pages,
            self.rescanned_objects,
            self.bytes_marked >> 10,
            self.bytes_freed >> 10,
            self.live_bytes >> 10,
            self.heap_size >> 10,
            self.threads,
        )?;
        if self.verify_ns > 0 {
            write!(f, " verify={:.3}ms", ms(self.verify_ns))?;
        }
        if self.harvest_failures > 0 {
            write!(f, " harvest_failures={}", self.harvest_failures)?;
        }
        if self.threads_given_up > 0 {
            write!(f, " given_up={}", self.threads_given_up)?;
        }
        Ok(())
    }
}

/// Every pause so far, in nanoseconds, for exact percentiles.
#[derive(Clone, Debug, Default)]
pub struct PauseHistogram {
    samples: Vec<u64>,
}

impl PauseHistogram {
    /// Number of pauses.
    pub fn count(&self) -> usize {
        self.samples.len()
    }
    /// The `p`-th percentile (0.0..=100.0) in ns; 0 with no pauses.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.samples.is_empty() {
            return 0;
        }
        let mut s = self.samples.clone();
        s.sort_unstable();
        let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
        s[idx.min(s.len() - 1)]
    }
    /// The pauses, in cycle order.
    pub fn samples(&self) -> &[u64] {
        &self.samples
    }
    /// Counts per power-of-two bucket of microseconds: bucket `i` holds
    /// pauses in `[2^i, 2^(i+1))` us (bucket 0 also holds pauses under 1 us).
    pub fn buckets(&self) -> [u64; 24] {
        let mut b = [0u64; 24];
        for &ns in &self.samples {
            let us = (ns / 1000).max(1);
            let i = (63 - us.leading_zeros()) as usize;
            b[i.min(23)] += 1;
        }
        b
    }
}

/// Totals since the program started.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Completed cycles.
    pub cycles: u64,
    /// Of which concurrent.
    pub concurrent_cycles: u64,
    /// Committed heap bytes.
    pub heap_size: usize,
    /// Bytes in allocated objects now.
    pub in_use: usize,
    /// Live bytes after the last sweep.
    pub live_bytes: usize,
    /// Bytes in `GcAllocator` blocks now.
    pub manual_bytes: usize,
    /// Sum of all pauses (initial-mark and final).
    pub total_pause_ns: u64,
    /// Longest pause (initial-mark or final).
    pub max_pause_ns: u64,
    /// Last pause.
    pub last_pause_ns: u64,
    /// Every pause (a concurrent cycle has two: initial mark and final).
    pub pauses: PauseHistogram,
    /// Sum of marking time (concurrent and paused).
    pub total_mark_ns: u64,
    /// Sum of sweeping time.
    pub total_sweep_ns: u64,
    /// Dirty source in use ("" before the collector started).
    pub dirty_source: &'static str,
    /// Dirty pages harvested (precleaning and final pauses), summed.
    pub dirty_pages_harvested: u64,
    /// Finalizers run.
    pub finalizers_run: u64,
    /// Threads given up by every stop-the-world so far (the collector's
    /// pauses and the leak check), summed: threads that could not be stopped
    /// (they block the suspend signal by a means oohgc cannot intercept) and
    /// whose roots were therefore not scanned. Each is named on stderr.
    pub threads_given_up: u64,
    /// The dirty source's own counters (PML events, modelled time...).
    pub source_counters: Vec<(&'static str, u64)>,
    /// The last cycle.
    pub last_cycle: CycleStats,
}

/// A function called after every cycle, on the collecting thread, outside
/// any pause. It may allocate; it must not call `collect()`.
pub type CycleCallback = fn(&CycleStats);

pub(crate) struct Totals {
    pub cycles: u64,
    pub concurrent_cycles: u64,
    pub total_pause_ns: u64,
    pub max_pause_ns: u64,
    pub total_mark_ns: u64,
    pub total_sweep_ns: u64,
    pub dirty_pages: u64,
    pub live_bytes: usize,
    pub pauses: RawVec<u64>,
    pub last: CycleStats,
    pub callback: Option<CycleCallback>,
}

pub(crate) static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    cycles: 0,
    concurrent_cycles: 0,
    total_pause_ns: 0,
    max_pause_ns: 0,
    total_mark_ns: 0,
    total_sweep_ns: 0,
    dirty_pages: 0,
    live_bytes: 0,
    pauses: RawVec::new(),
    last: CycleStats {
        cycle: 0,
        kind: CycleKind::StopTheWorld,
        reason: CycleReason::Explicit,
        dirty_source: "",
        arm_ns: 0,
        concurrent_mark_ns: 0,
        preclean_rounds: 0,
        preclean_ns: 0,
        preclean_dirty_pages: 0,
        initial_pause_ns: 0,
        pause_ns: 0,
        stop_ns: 0,
        harvest_ns: 0,
        rescan_ns: 0,
        resume_ns: 0,
        sweep_ns: 0,
        verify_ns: 0,
        dirty_pages: 0,
        harvest_failures: 0,
        rescanned_objects: 0,
        objects_marked: 0,
        bytes_marked: 0,
        threads: 0,
        threads_given_up: 0,
        finalizers_queued: 0,
        weak_cleared: 0,
        bytes_freed: 0,
        live_bytes: 0,
        heap_size: 0,
    },
    callback: None,
});

/// Take the statistics lock (for `fork`).
pub(crate) fn lock_totals() -> std::sync::MutexGuard<'static, Totals> {
    TOTALS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Record a finished cycle; print it and call the callback. Called outside
/// pauses.
pub(crate) fn record(c: &CycleStats, print: bool) {
    let cb = {
        let mut t = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
        t.cycles += 1;
        if c.kind == CycleKind::Concurrent {
            t.concurrent_cycles += 1;
        }
        t.total_pause_ns += c.pause_ns + c.initial_pause_ns;
        t.max_pause_ns = t.max_pause_ns.max(c.pause_ns).max(c.initial_pause_ns);
        t.total_mark_ns += c.concurrent_mark_ns + c.rescan_ns + c.preclean_ns;
        t.total_sweep_ns += c.sweep_ns;
        t.dirty_pages += c.dirty_pages + c.preclean_dirty_pages;
        t.live_bytes = c.live_bytes as usize;
        if c.initial_pause_ns > 0 {
            t.pauses.push(c.initial_pause_ns);
        }
        t.pauses.push(c.pause_ns);
        t.last = *c;
        t.callback
    };
    if print {
        crate::util::eprint_line(format_args!("{c}"));
    }
    if let Some(cb) = cb {
        cb(c);
    }
}

/// Set (or clear) the function called after every cycle.
pub fn on_cycle(callback: Option<CycleCallback>) {
    TOTALS.lock().unwrap_or_else(|p| p.into_inner()).callback = callback;
}

/// A snapshot of the collector's statistics.
pub fn stats() -> Stats {
    let h = oohgc_allocator::stats();
    let t = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = Stats {
        cycles: t.cycles,
        concurrent_cycles: t.concurrent_cycles,
        heap_size: h.committed,
        in_use: h.in_use,
        live_bytes: t.live_bytes,
        manual_bytes: h.manual_bytes,
        total_pause_ns: t.total_pause_ns,
        max_pause_ns: t.max_pause_ns,
        last_pause_ns: t.last.pause_ns,
        pauses: PauseHistogram::default(),
        total_mark_ns: t.total_mark_ns,
        total_sweep_ns: t.total_sweep_ns,
        dirty_source: "",
        dirty_pages_harvested: t.dirty_pages,
        finalizers_run: crate::finalize::finalizers_run(),
        threads_given_up: oohgc_barriers::threads_given_up(),
        source_counters: Vec::new(),
        last_cycle: t.last,
    };
    // Copy the pauses without allocating under the lock (an allocation may
    // start a collection, which records into these totals).
    let n = t.pauses.len();
    drop(t);
    let mut samples = Vec::with_capacity(n + 64);
    {
        let t = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
        let take = t.pauses.len().min(samples.capacity());
        samples.extend_from_slice(&t.pauses[..take]);
    }
    s.pauses = PauseHistogram { samples };
    if let Some(src) = crate::runtime::dirty_source() {
        s.dirty_source = src.name();
        let c = src.counters();
        s.source_counters.extend([
            ("write_traps", c.write_traps),
            ("harvests", c.harvests),
            ("pages_reported", c.pages_reported),
            ("false_positives", c.false_positives),
            ("harvest_ns", c.harvest_ns),
            ("arm_ns", c.arm_ns),
        ]);
        // Gather into a fixed array first: a source may call back with its
        // own lock held, and pushing to the Vec allocates (an allocation may
        // write a tracked page whose fault handler needs that lock).
        let mut buf = [("", 0u64); 128];
        let mut n = 0;
        src.for_each_counter(&mut |name, v| {
            if n < buf.len() {
                buf[n] = (name, v);
                n += 1;
            }
        });
        s.source_counters.extend_from_slice(&buf[..n]);
    }
    s
}

/// Committed heap bytes.
pub fn heap_size() -> usize {
    oohgc_allocator::committed_bytes()
}

/// Live bytes after the last collection.
pub fn live_bytes() -> usize {
    TOTALS.lock().unwrap_or_else(|p| p.into_inner()).live_bytes
}
