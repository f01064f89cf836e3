//! The `mprotect` source: `PROT_READ` plus a `SIGSEGV` handler (bdwgc's
//! `MPROTECT_VDB`), with kernel-write pins.
//!
//! Arming makes every tracked range read-only. The first write to a page
//! faults; the process-wide signal handler finds the page in a global,
//! lock-free table of tracked ranges, makes that one page writable again
//! and sets its bit in the range's dirty bitmap; the writer then retries
//! and proceeds (~4-6 us per first write on the project's VM). A harvest
//! drains the bitmaps and makes the reported pages read-only again.
//!
//! This module owns the [`MprotectSource`] itself (track, arm, harvest);
//! `handler` owns the signal handler and the table it reads; `pins` owns
//! the kernel-write pins ([`KernelWrite`]). Must not touch: userfaultfd
//! or pagemap (other sources), the handler's table except through
//! `handler`'s functions.
//!
//! Limits, all inherent in the mechanism:
//! * **System calls that write into a protected page fail with `EFAULT`**
//!   (the kernel does not raise a signal for its own accesses) unless the
//!   buffer is pinned around the call with [`KernelWrite::begin`]: pinned
//!   pages are made writable, recorded dirty and kept writable until
//!   unpinned. The `oohgc` collector interposes the C library's writing
//!   calls (`read`, `recv*`, `epoll_wait`, ...) to pin for the program.
//!   Writes that bypass such wrappers (a raw `syscall` instruction,
//!   io_uring, AIO, another process's `process_vm_writev`, the C library's
//!   internal calls) still fail with `EFAULT` on an armed page.
//! * **Mapping splits.** Each writable page inside a read-only range is a
//!   separate kernel mapping (VMA); scattered first writes can exhaust
//!   `vm.max_map_count` (65530 by default), and `mprotect` then fails with
//!   `ENOMEM`. The source degrades safely: it makes the *whole* range
//!   writable again (which merges its mappings back), flags it, and the
//!   next harvest reports every page of it (false positives, never a false
//!   negative) and tries to protect the whole range in one call. Degrades
//!   are counted (`degraded_ranges`). Only if even unprotecting the whole
//!   range fails does the handler abort the process with a message: it
//!   could not make progress otherwise.
//! * Tracked memory must be ordinary read-write memory: a protection fault
//!   inside a tracked range is taken to be a tracked write. It must not
//!   hold this crate's own statics (the handler and the pins write them).
//! * Faults outside tracked ranges go to the handler that was installed
//!   before this one (chained). If that was the default action, it is
//!   restored and the fault re-occurs, killing the process with the usual
//!   `SIGSEGV`. A handler installed *after* this one must chain to it.
//!
//! The handler runs with every signal blocked (so the collector's suspend
//! signal cannot interrupt it), on the alternate signal stack if the thread
//! has one, and preserves `errno`.

mod handler;
mod pins;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::bitmap::PageBitmap;
use crate::counters::{add_elapsed, bump, AtomicCounters};
use crate::ranges::TrackedRanges;
use crate::raw_vec::RawVec;
use crate::{Counters, DirtyError, DirtySource, PageRange};
pub use handler::MAX_TRACKED_RANGES;
use handler::{
    handler_address, install_handler, protect, synchronize, DEGRADES, REGISTRY, SLOTS, SLOTS_IN_USE,
};
pub use pins::{any_tracked, pins_taken, KernelWrite, MAX_PINS, MAX_PINS_PER_CALL};
use pins::{
    for_each_pinned_page, note_tracked, protect_except, reset_in_fork_children, Reprotecting,
    TRACKED_RANGES,
};

const NAME: &str = "mprotect";

/// A harvest re-protects the whole range in one `mprotect` when it found
/// more than `pages / WHOLE_RANGE_RUNS_DIVISOR` runs of dirty pages. On the
/// project's VM one `mprotect` per run costs ~7 us and a whole-range one
/// ~0.35 us per populated page (`benches/sources.rs`), so past roughly one
/// run per 20 pages the single call wins.
pub const WHOLE_RANGE_RUNS_DIVISOR: usize = 20;

/// Per-range data the source keeps: its slot index and bitmap.
#[derive(Clone, Copy)]
struct Entry {
    slot: usize,
    bitmap: PageBitmap,
}

/// The `mprotect` [`DirtySource`].
pub struct MprotectSource {
    ranges: Mutex<TrackedRanges<Entry>>,
    /// Boxed so that its address, stored in the slots, is stable.
    counters: Box<AtomicCounters>,
    /// Scratch list of the runs found by a harvest (raw mmap).
    runs: Mutex<RawVec<PageRange>>,
    /// Scratch snapshot of the pinned regions, taken by arm and harvest.
    pinned: Mutex<RawVec<(usize, usize)>>,
    whole_range_reprotects: AtomicU64,
}

impl MprotectSource {
    /// Install the process-wide `SIGSEGV` handler (once) and open a source.
    pub fn open() -> Result<MprotectSource, DirtyError> {
        install_handler()?;
        reset_in_fork_children();
        Ok(MprotectSource {
            ranges: Mutex::new(TrackedRanges::new()),
            counters: Box::default(),
            runs: Mutex::new(RawVec::new()),
            pinned: Mutex::new(RawVec::new()),
            whole_range_reprotects: AtomicU64::new(0),
        })
    }

    /// Whether `SIGSEGV` is currently handled by this module's handler.
    pub fn handler_installed() -> bool {
        let mut current = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: querying the current action.
        unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), current.as_mut_ptr()) };
        // SAFETY: zeroed or filled by sigaction.
        unsafe { current.assume_init() }.sa_sigaction == handler_address()
    }

    fn lock(&self) -> MutexGuard<'_, TrackedRanges<Entry>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make `range` read-only except its pinned pages, or degrade it
    /// (writable, all dirty) if the kernel refuses (ENOMEM at
    /// `vm.max_map_count`).
    fn protect_or_degrade(range: PageRange, entry: Entry, pinned: &[(usize, usize)]) {
        if !protect_except(range.start, range.len, pinned) {
            Self::degrade(range, entry);
        }
    }

    /// Make the whole range writable and report all of it next harvest.
    fn degrade(range: PageRange, entry: Entry) {
        let _ = protect(range.start, range.len, true);
        SLOTS[entry.slot].degraded.store(true, Ordering::SeqCst);
        DEGRADES.fetch_add(1, Ordering::Relaxed);
    }

    /// Set the bits of the pinned pages of `range` again: a pinned page
    /// stays dirty (reported by every harvest) while pinned.
    fn redirty_pinned(range: PageRange, entry: Entry, pinned: &[(usize, usize)]) {
        for_each_pinned_page(range.start, range.len, pinned, &mut |page| {
            entry.bitmap.set(page);
        });
    }

    fn lock_pinned(&self) -> MutexGuard<'_, RawVec<(usize, usize)>> {
        self.pinned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(range: PageRange, entry: Entry) {
        SLOTS[entry.slot].start.store(0, Ordering::SeqCst);
        TRACKED_RANGES.fetch_sub(1, Ordering::SeqCst);
        // Waits for the handlers and pinners (modify sections run inside a
        // handler grace period) that may still use the bitmap.
        synchronize();
        let _ = protect(range.start, range.len, true);
        // SAFETY: the slot is cleared and no handler is reading it any more.
        unsafe { entry.bitmap.free() };
        SLOTS[entry.slot]
            .words
            .store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

impl Drop for MprotectSource {
    fn drop(&mut self) {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        while let Some((r, e)) = ranges.pop() {
            Self::release(r, e);
        }
    }
}

impl DirtySource for MprotectSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        for slot in SLOTS.iter() {
            let s = slot.start.load(Ordering::SeqCst);
            if s != 0 && s < range.end() && range.start < s + slot.len.load(Ordering::SeqCst) {
                return Err(DirtyError::BadRange {
                    start: range.start,
                    len: range.len,
                    what: "overlaps a range tracked by another mprotect source",
                });
            }
        }
        // Tracked memory must be mapped read-write memory; this also
        // catches unmapped holes now rather than at arm.
        if protect(range.start, range.len, true).is_err() {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what:
                    "is not entirely mapped memory that can be made read-write (mprotect refused)",
            });
        }
        let slot = SLOTS
            .iter()
            .position(|s| {
                s.start.load(Ordering::SeqCst) == 0 && s.words.load(Ordering::SeqCst).is_null()
            })
            .ok_or(DirtyError::Capacity {
                what: "mprotect tracked-range table (MAX_TRACKED_RANGES per process)",
            })?;
        // New pages count as dirty until the next arm or harvest.
        let bitmap = PageBitmap::new(range.pages(), true);
        let s = &SLOTS[slot];
        s.len.store(range.len, Ordering::SeqCst);
        s.words
            .store(bitmap.words_ptr() as *mut AtomicU64, Ordering::SeqCst);
        s.counters.store(
            &*self.counters as *const AtomicCounters as *mut AtomicCounters,
            Ordering::SeqCst,
        );
        s.degraded.store(false, Ordering::SeqCst);
        SLOTS_IN_USE.fetch_max(slot + 1, Ordering::SeqCst);
        TRACKED_RANGES.fetch_add(1, Ordering::SeqCst);
        note_tracked(range.start, range.end());
        s.start.store(range.start, Ordering::SeqCst);
        ranges.insert(range, Entry { slot, bitmap });
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        let i = ranges.position(range)?;
        let (r, e) = ranges.remove_at(i);
        Self::release(r, e);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        let reprotecting = Reprotecting::enter();
        let mut pinned = self.lock_pinned();
        reprotecting.snapshot(&mut pinned);
        for (r, e) in ranges.iter() {
            e.bitmap.clear_all();
            SLOTS[e.slot].degraded.store(false, Ordering::SeqCst);
            Self::redirty_pinned(*r, *e, &pinned);
            Self::protect_or_degrade(*r, *e, &pinned);
        }
        drop(reprotecting);
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        // Every run found, over all ranges; reported after the
        // re-protection ends, so that a sink that makes a system call into
        // tracked memory (and pins) cannot wait for this very thread.
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.clear();
        // No pinner modifies from here on, and the pins can only shrink.
        let reprotecting = Reprotecting::enter();
        // Every fault handled before this point has recorded its page.
        synchronize();
        let mut pinned = self.lock_pinned();
        reprotecting.snapshot(&mut pinned);
        for (r, e) in ranges.iter() {
            if SLOTS[e.slot].degraded.swap(false, Ordering::SeqCst) {
                e.bitmap.clear_all();
                runs.push(*r);
                Self::redirty_pinned(*r, *e, &pinned);
                Self::protect_or_degrade(*r, *e, &pinned);
                continue;
            }
            let first = runs.len();
            e.bitmap.drain_runs(r.start, &mut |run| runs.push(run));
            let found = &runs.as_slice()[first..];
            if found.is_empty() {
                continue;
            }
            let failed = if found.len() > r.pages() / WHOLE_RANGE_RUNS_DIVISOR {
                // Many scattered runs: one call over the whole range is
                // cheaper than one per run (and protecting clean pages
                // again is harmless).
                bump(&self.whole_range_reprotects, 1);
                !protect_except(r.start, r.len, &pinned)
            } else {
                found
                    .iter()
                    .any(|run| !protect_except(run.start, run.len, &pinned))
            };
            // Pinned pages were drained (their bits are set while pinned)
            // and are reported; they stay writable and dirty.
            Self::redirty_pinned(*r, *e, &pinned);
            if failed {
                // Some run stayed writable: make the whole range writable
                // and report all of it next time.
                Self::degrade(*r, *e);
            }
        }
        drop(pinned);
        drop(reprotecting);
        let mut pages = 0u64;
        for run in runs.iter() {
            pages += run.pages() as u64;
            sink(*run);
        }
        drop(runs);
        drop(ranges);
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        let ranges = self.lock();
        for (r, _) in ranges.iter() {
            protect(r.start, r.len, true).map_err(|errno| DirtyError::Os {
                op: "mprotect(PROT_READ|PROT_WRITE)",
                errno,
            })?;
        }
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        let ranges = self.lock();
        f("tracked_pages", ranges.total_pages());
        let degraded_now = ranges
            .iter()
            .filter(|(_, e)| SLOTS[e.slot].degraded.load(Ordering::Relaxed))
            .count();
        drop(ranges);
        f("degraded_ranges", degraded_now as u64);
        f("degrades_total_process", DEGRADES.load(Ordering::Relaxed));
        f(
            "whole_range_reprotects",
            self.whole_range_reprotects.load(Ordering::Relaxed),
        );
        f("kernel_write_pins_process", pins_taken() as u64);
    }
}
