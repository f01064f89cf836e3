//! The kernel engines under the PML model: where its dirty-flag 0 -> 1
//! transitions come from.
//!
//! * [`Engine::Async`]: userfaultfd write-protect in async mode. The kernel
//!   resolves write faults itself and remembers which pages were written;
//!   at each flush point (harvest, schedule-out, an SPML untrack) one
//!   `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING` reports and atomically
//!   re-protects them, and the model logs them in scan order. A write
//!   racing with the scan is either seen by this scan or left for the next
//!   one: never lost.
//! * [`Engine::Sync`]: synchronous userfaultfd write-protect. Each first
//!   write to a protected page blocks its thread; the handler thread logs
//!   the page in the model (in exact fault order) and unprotects it while
//!   holding the model lock, so a harvest cannot slip between the two. At
//!   harvest the reported pages are re-protected before they are handed on.
//!
//! Owns: the userfaultfd of the source, every protection change, the scan
//! scratch vectors, the engine counters, and each decision in which the
//! two engines differ (this file is the only one that looks at
//! [`Engine`]). Must not touch: the model's internals (it calls
//! [`Machine`]'s observe/track/untrack and reads its ranges), the guest
//! drivers, the kernel interfaces themselves (`crate::uffd_sys`,
//! `crate::pagemap`). Callers hold the source's lock around every method
//! that takes the [`Machine`]. Nothing here allocates through the global
//! allocator.

use super::model::Machine;
use super::Engine;
use crate::contract::{DirtyError, PageRange, PAGE_SIZE};
use crate::pagemap::Pagemap;
use crate::raw_vec::RawVec;
use crate::uffd_sys::{StopFd, Uffd};
use linux_raw_sys::general as uapi;

/// Frames read per `pread` when the hardware model looks a batch up.
const FRAME_CHUNK: usize = 512;

/// Regions one `PAGEMAP_SCAN` call of the async engine may return.
const SCAN_REGIONS: usize = 4096;

/// Engine state that changes, kept behind the source's lock.
pub(super) struct EngineScratch {
    regions: RawVec<uapi::page_region>,
    runs: RawVec<(usize, usize, usize)>,
    frames: RawVec<u64>,
    /// `PAGEMAP_SCAN` calls made (async).
    pub(super) scans: u64,
    /// Write faults handled (sync).
    pub(super) faults: u64,
}

impl EngineScratch {
    pub(super) fn new() -> EngineScratch {
        let mut regions = RawVec::with_capacity(SCAN_REGIONS);
        for _ in 0..SCAN_REGIONS {
            regions.push(uapi::page_region {
                start: 0,
                end: 0,
                categories: 0,
            });
        }
        let mut frames = RawVec::with_capacity(FRAME_CHUNK);
        for _ in 0..FRAME_CHUNK {
            frames.push(0);
        }
        EngineScratch {
            regions,
            runs: RawVec::new(),
            frames,
            scans: 0,
            faults: 0,
        }
    }
}

/// One engine: its kind and its userfaultfd (fixed after open).
pub(super) struct KernelEngine {
    kind: Engine,
    uffd: Uffd,
    stop: StopFd,
}

/// The frame backing tracked page `va` given its pagemap entry.
fn machine_frame(machine: &Machine, va: u64, entry: u64) -> u64 {
    match machine.range_of(va) {
        Some(r) => {
            let i = (va as usize - machine.ranges[r].range.start) / PAGE_SIZE;
            machine.frame_at(r, i, entry)
        }
        None => 0,
    }
}

impl KernelEngine {
    /// Open the userfaultfd of `kind` and `/proc/self/pagemap` for the
    /// source `name`; `Unavailable` where the kernel lacks the mechanism.
    pub(super) fn open(
        name: &'static str,
        kind: Engine,
    ) -> Result<(KernelEngine, Pagemap), DirtyError> {
        let features = match kind {
            Engine::Async => uapi::UFFD_FEATURE_WP_ASYNC | uapi::UFFD_FEATURE_WP_UNPOPULATED,
            Engine::Sync => uapi::UFFD_FEATURE_WP_UNPOPULATED,
        } as u64;
        let uffd = Uffd::open(name, features)?;
        let pagemap = Pagemap::open(name)?;
        if kind == Engine::Async {
            pagemap.check_scan_supported(name)?;
        }
        let engine = KernelEngine {
            kind,
            uffd,
            stop: StopFd::new()?,
        };
        Ok((engine, pagemap))
    }

    /// Which engine.
    pub(super) fn kind(&self) -> Engine {
        self.kind
    }

    /// Whether this engine needs a handler thread ([`Self::serve_faults`]).
    pub(super) fn needs_handler_thread(&self) -> bool {
        self.kind == Engine::Sync
    }

    /// The handler thread's body: call `on_fault(address)` per write fault
    /// until [`Self::stop_handler`].
    pub(super) fn serve_faults(&self, on_fault: &mut dyn FnMut(usize)) {
        self.uffd.serve_wp_faults(&self.stop, on_fault);
    }

    /// Make [`Self::serve_faults`] return.
    pub(super) fn stop_handler(&self) {
        self.stop.signal();
    }

    /// Sync engine, handler thread, under the lock: log the fault at
    /// `address` in the model and unprotect its page.
    pub(super) fn on_write_fault(
        &self,
        machine: &mut Machine,
        scratch: &mut EngineScratch,
        address: usize,
    ) {
        let addr = address & !(PAGE_SIZE - 1);
        let page = PageRange {
            start: addr,
            len: PAGE_SIZE,
        };
        scratch.faults += 1;
        if machine.armed {
            let mut frame = 0;
            if machine.logs_frames() {
                let mut entry = [0u64];
                if machine.pagemap().read(addr, &mut entry).is_ok() {
                    frame = machine_frame(machine, addr as u64, entry[0]);
                } else {
                    frame = machine_frame(machine, addr as u64, 0);
                }
            }
            machine.observe(addr as u64, frame);
        }
        if self.uffd.write_protect(page, false).is_err() {
            // The range was unregistered meanwhile; let the thread go.
            self.uffd.wake(page);
        }
    }

    /// A flush point: feed the model the transitions the kernel holds.
    /// Async engine: scan every tracked range (re-protecting what it
    /// reports). Sync engine: nothing (the handler fed them already).
    pub(super) fn catch_up(
        &self,
        machine: &mut Machine,
        scratch: &mut EngineScratch,
    ) -> Result<(), DirtyError> {
        if self.kind != Engine::Async || !machine.armed {
            return Ok(());
        }
        let EngineScratch {
            regions,
            runs,
            frames,
            scans,
            ..
        } = scratch;
        runs.clear();
        for (r, tr) in machine.ranges.iter().enumerate() {
            let scan = machine.pagemap().scan_written(
                tr.range,
                true,
                regions.as_mut_slice(),
                &mut |run| runs.push((r, run.start, run.end())),
            )?;
            *scans += scan.calls;
        }
        if !machine.logs_frames() {
            // No frames needed: feed each run in one batch.
            for &(r, start, end) in runs.iter() {
                let first = (start - machine.ranges[r].range.start) / PAGE_SIZE;
                machine.observe_run(r, first, (end - start) / PAGE_SIZE, &[]);
            }
            return Ok(());
        }
        for &(r, start, end) in runs.iter() {
            let range_start = machine.ranges[r].range.start;
            let mut page = start;
            while page < end {
                let n = ((end - page) / PAGE_SIZE).min(FRAME_CHUNK);
                machine.pagemap().read(page, &mut frames[..n])?;
                let first = (page - range_start) / PAGE_SIZE;
                for k in 0..n {
                    frames[k] = machine.frame_at(r, first + k, frames[k]);
                }
                machine.observe_run(r, first, n, &frames[..n]);
                page += n * PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// Before an untrack: a driver that logs frames must see the writes
    /// the kernel holds while the range's frames still resolve.
    pub(super) fn before_untrack(
        &self,
        machine: &mut Machine,
        scratch: &mut EngineScratch,
    ) -> Result<(), DirtyError> {
        if machine.logs_frames() {
            self.catch_up(machine, scratch)?;
        }
        Ok(())
    }

    /// Track `range` in the kernel and the model; protect it if the model
    /// is armed. On failure nothing stays registered.
    pub(super) fn track(&self, machine: &mut Machine, range: PageRange) -> Result<(), DirtyError> {
        self.uffd.register_wp(range)?;
        let armed = machine.armed;
        let result = machine.track(range).and_then(|()| {
            if armed {
                self.uffd.write_protect(range, true)?;
                if let Some(tr) = machine.ranges.last_mut() {
                    tr.protection_installed = true;
                }
            }
            Ok(())
        });
        if result.is_err() {
            let _ = self.uffd.unregister(range);
        }
        result
    }

    /// Lift protection and registration of `range` (it may be unmapped
    /// already: then there is nothing left to do).
    pub(super) fn release(&self, range: PageRange) {
        let _ = self.uffd.write_protect(range, false);
        let _ = self.uffd.unregister(range);
    }

    /// Protect every tracked range for a new epoch.
    pub(super) fn arm(&self, machine: &mut Machine) -> Result<(), DirtyError> {
        for k in 0..machine.ranges.len() {
            let range = machine.ranges[k].range;
            if self.kind == Engine::Async && machine.ranges[k].protection_installed {
                // Still protected since it was tracked (during a cycle, after
                // the last disarm): re-protect only what was written since
                // (cheap), not the whole range.
                machine.pagemap().protect_written(range)?;
            } else {
                self.uffd.write_protect(range, true)?;
                machine.ranges[k].protection_installed = true;
            }
        }
        Ok(())
    }

    /// After a harvest collected `pages` (sorted): the sync engine
    /// re-protects each run before it is handed on (the async engine's
    /// scan re-protected them already).
    pub(super) fn reprotect_reported(&self, pages: &[u64]) -> Result<(), DirtyError> {
        if self.kind != Engine::Sync {
            return Ok(());
        }
        for_each_run(pages, &mut |run| self.uffd.write_protect(run, true))
    }

    /// Whether the kernel itself reports discarded pages as written (the
    /// async engine's `PAGEMAP_SCAN` does): then [`Self::discarded`] has
    /// nothing to do and the caller need not take the lock.
    pub(super) fn sees_discards(&self) -> bool {
        self.kind == Engine::Async
    }

    /// Pages of `range` were discarded (`MADV_DONTNEED`). The async engine
    /// sees them as written (`PAGEMAP_SCAN`). The sync engine's
    /// write-protection of anonymous pages is gone: log the pages as
    /// written now (their contents changed: they read as zero) and protect
    /// them again, so the next write traps as usual.
    pub(super) fn discarded(
        &self,
        machine: &mut Machine,
        range: PageRange,
    ) -> Result<(), DirtyError> {
        if self.sees_discards() || !machine.armed {
            return Ok(());
        }
        let tracked = machine
            .ranges
            .iter()
            .any(|tr| tr.range.start <= range.start && range.end() <= tr.range.end());
        if !tracked {
            return Ok(());
        }
        let mut addr = range.start;
        while addr < range.end() {
            let frame = if machine.logs_frames() {
                machine_frame(machine, addr as u64, 0)
            } else {
                0
            };
            machine.observe(addr as u64, frame);
            addr += PAGE_SIZE;
        }
        self.uffd.write_protect(range, true)
    }

    /// Between cycles: both engines lift the protection until the next
    /// arm. Left in place, it would make every page first written between
    /// cycles take a write fault: a cost of the kernel substrate, not of
    /// PML (the hardware logs without trapping), and on an allocating
    /// program most of its tracking overhead. GCBench under epml ran in
    /// 0.83x the time (`oohgc-bench ab`, 10 pairs) once the async engine
    /// stopped keeping it; the next arm pays one full write-protect of
    /// the range instead (as pagemap-scan does by default,
    /// `DisarmPolicy::Unprotect`).
    pub(super) fn disarm(&self, machine: &mut Machine) -> Result<(), DirtyError> {
        for tr in machine.ranges.iter_mut() {
            self.uffd.write_protect(tr.range, false)?;
            tr.protection_installed = false;
        }
        Ok(())
    }
}

/// Call `f` with each run of consecutive pages in `pages` (sorted).
pub(super) fn for_each_run(
    pages: &[u64],
    f: &mut dyn FnMut(PageRange) -> Result<(), DirtyError>,
) -> Result<(), DirtyError> {
    let mut k = 0;
    while k < pages.len() {
        let start = pages[k] as usize;
        let mut end = start + PAGE_SIZE;
        k += 1;
        while k < pages.len() && pages[k] as usize == end {
            end += PAGE_SIZE;
            k += 1;
        }
        f(PageRange {
            start,
            len: end - start,
        })?;
    }
    Ok(())
}
