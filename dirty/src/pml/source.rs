//! `PmlSource`: the `epml` / `spml` dirty sources — the machine model
//! driven by a kernel engine, behind the [`DirtySource`] contract.
//!
//! Engines (where the model's dirty-flag transitions come from):
//! * [`Engine::Async`]: userfaultfd write-protect in async mode. The kernel
//!   resolves write faults itself and remembers which pages were written;
//!   at each flush point (harvest, schedule-out) one `PAGEMAP_SCAN` with
//!   `PM_SCAN_WP_MATCHING` reports and atomically re-protects them, and the
//!   model logs them in scan order. A write racing with the scan is either
//!   seen by this scan or left for the next one: never lost.
//! * [`Engine::Sync`]: synchronous userfaultfd write-protect. Each first
//!   write to a protected page blocks its thread; the handler thread logs
//!   the page in the model (in exact fault order) and unprotects it while
//!   holding the model lock, so a harvest cannot slip between the two. At
//!   harvest the reported pages are re-protected before they are handed on.
//!
//! The model state lives behind one mutex; the handler thread and the
//! collector share it. Nothing on these paths allocates through the global
//! allocator (raw mmap vectors, a tracked-range table sized at open).

use super::cost::{modelled_ns, CostReport, EventCounts, ALL_EVENTS};
use super::model::{Machine, PmlConfig};
use super::{Engine, Mode};
use crate::contract::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};
use crate::pagemap::Pagemap;
use crate::raw_vec::RawVec;
use crate::uffd_sys::{StopFd, Uffd};
use linux_raw_sys::general as uapi;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Mutable state behind the lock.
struct State {
    machine: Machine,
    counters: Counters,
    regions: RawVec<uapi::page_region>,
    runs: RawVec<(usize, usize, usize)>,
    frames: RawVec<u64>,
    engine_scans: u64,
    engine_faults: u64,
}

struct Inner {
    mode: Mode,
    engine: Engine,
    state: Mutex<State>,
    uffd: Uffd,
    stop: StopFd,
    pfns_visible: bool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An `epml` or `spml` source: the PML model over a kernel engine.
pub struct PmlSource {
    inner: Arc<Inner>,
    handler: Option<std::thread::JoinHandle<()>>,
}

/// Frames read per `pread` when the hardware model looks a batch up.
const FRAME_CHUNK: usize = 512;

/// Regions one `PAGEMAP_SCAN` call of the async engine may return.
const SCAN_REGIONS: usize = 4096;

impl PmlSource {
    /// Open the model in `mode` over `engine` with `config`.
    pub fn open(mode: Mode, engine: Engine, config: PmlConfig) -> Result<PmlSource, DirtyError> {
        let name = mode.name();
        let features = match engine {
            Engine::Async => uapi::UFFD_FEATURE_WP_ASYNC | uapi::UFFD_FEATURE_WP_UNPOPULATED,
            Engine::Sync => uapi::UFFD_FEATURE_WP_UNPOPULATED,
        } as u64;
        let uffd = Uffd::open(name, features)?;
        let pagemap = Pagemap::open(name)?;
        if engine == Engine::Async {
            pagemap.check_scan_supported(name)?;
        }
        let visible = pagemap.pfns_visible();
        let machine = Machine::new(mode, config, pagemap, visible)?;
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
        let inner = Arc::new(Inner {
            mode,
            engine,
            state: Mutex::new(State {
                machine,
                counters: Counters::default(),
                regions,
                runs: RawVec::new(),
                frames,
                engine_scans: 0,
                engine_faults: 0,
            }),
            uffd,
            stop: StopFd::new()?,
            pfns_visible: visible,
        });
        let handler = match engine {
            Engine::Async => None,
            Engine::Sync => {
                let h = Arc::clone(&inner);
                Some(
                    std::thread::Builder::new()
                        .name(format!("oohgc-{name}-sync"))
                        .spawn(move || fault_handler(&h))
                        .map_err(|e| DirtyError::Unavailable {
                            source: name,
                            reason: format!("cannot start the fault-handler thread: {e}"),
                        })?,
                )
            }
        };
        Ok(PmlSource { inner, handler })
    }

    /// The modelled mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The kernel engine underneath.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// Whether guest frames are real PFNs (else synthetic per page).
    pub fn real_frames(&self) -> bool {
        self.inner.pfns_visible
    }

    /// A modelled context switch: the process leaves the vCPU (its partly
    /// filled PML buffer is flushed). Under the async engine this is also a
    /// flush point: pending transitions are observed first.
    pub fn schedule_out(&self) -> Result<(), DirtyError> {
        let mut st = self.inner.lock();
        if self.inner.engine == Engine::Async {
            self.observe_async(&mut st)?;
        }
        st.machine.schedule_out();
        Ok(())
    }

    /// The process returns to the vCPU.
    pub fn schedule_in(&self) {
        self.inner.lock().machine.schedule_in();
    }

    /// Every modelled event so far.
    pub fn event_counts(&self) -> EventCounts {
        self.inner.lock().machine.counts
    }

    /// Measured and modelled cost so far.
    pub fn cost_report(&self) -> CostReport {
        let st = self.inner.lock();
        CostReport {
            mode: self.inner.mode,
            engine: self.inner.engine,
            counts: st.machine.counts,
            measured_harvest_ns: st.counters.harvest_ns,
            measured_arm_ns: st.counters.arm_ns,
        }
    }

    /// Async engine: scan every tracked range (re-protecting what it
    /// reports) and feed the written pages to the hardware model.
    fn observe_async(&self, st: &mut State) -> Result<(), DirtyError> {
        if !st.machine.armed {
            return Ok(());
        }
        let State {
            machine,
            regions,
            runs,
            frames,
            engine_scans,
            ..
        } = st;
        runs.clear();
        for (r, tr) in machine.ranges.iter().enumerate() {
            let scan = machine.pagemap().scan_written(
                tr.range,
                true,
                regions.as_mut_slice(),
                &mut |run| runs.push((r, run.start, run.end())),
            )?;
            *engine_scans += scan.calls;
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

/// The sync engine's handler thread: log each write fault in the model and
/// unprotect the page, both under the model lock.
fn fault_handler(inner: &Inner) {
    crate::service_thread::announce_current_thread();
    inner.uffd.serve_wp_faults(&inner.stop, &mut |address| {
        let addr = address & !(PAGE_SIZE - 1);
        let page = PageRange {
            start: addr,
            len: PAGE_SIZE,
        };
        let mut st = inner.lock();
        st.engine_faults += 1;
        if st.machine.armed {
            let mut frame = 0;
            if st.machine.logs_frames() {
                let mut entry = [0u64];
                if st.machine.pagemap().read(addr, &mut entry).is_ok() {
                    frame = machine_frame(&st.machine, addr as u64, entry[0]);
                } else {
                    frame = machine_frame(&st.machine, addr as u64, 0);
                }
            }
            st.machine.observe(addr as u64, frame);
        }
        if inner.uffd.write_protect(page, false).is_err() {
            // The range was unregistered meanwhile; let the thread go.
            inner.uffd.wake(page);
        }
        drop(st);
    });
}

impl Drop for PmlSource {
    fn drop(&mut self) {
        if let Some(h) = self.handler.take() {
            self.inner.stop.signal();
            let _ = h.join();
        }
        let mut st = self.inner.lock();
        for tr in st.machine.ranges.iter() {
            let _ = self.inner.uffd.write_protect(tr.range, false);
            let _ = self.inner.uffd.unregister(tr.range);
        }
        let State { machine, .. } = &mut *st;
        let mut counts = machine.counts;
        super::host::Hypervisor::deactivate_pml(&mut machine.hv, &mut counts);
        machine.counts = counts;
    }
}

fn elapsed_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

impl DirtySource for PmlSource {
    fn name(&self) -> &'static str {
        self.inner.mode.name()
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        PageRange::new(range.start, range.len)?;
        let mut st = self.inner.lock();
        self.inner.uffd.register_wp(range)?;
        let armed = st.machine.armed;
        let result = st.machine.track(range).and_then(|()| {
            if armed {
                self.inner.uffd.write_protect(range, true)?;
                if let Some(tr) = st.machine.ranges.last_mut() {
                    tr.protection_installed = true;
                }
            }
            Ok(())
        });
        if result.is_err() {
            let _ = self.inner.uffd.unregister(range);
        }
        result
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut st = self.inner.lock();
        if self.inner.engine == Engine::Async && st.machine.logs_frames() {
            // Writes the kernel has seen but the model has not: log them
            // before the range's frames stop resolving.
            self.observe_async(&mut st)?;
        }
        st.machine.untrack(range)?;
        // The caller may already have unmapped the range: then there is
        // nothing left to unprotect or unregister.
        let _ = self.inner.uffd.write_protect(range, false);
        let _ = self.inner.uffd.unregister(range);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t0 = Instant::now();
        let mut st = self.inner.lock();
        let machine = &mut st.machine;
        for k in 0..machine.ranges.len() {
            let range = machine.ranges[k].range;
            if self.inner.engine == Engine::Async && machine.ranges[k].protection_installed {
                // Still protected since it was tracked (during a cycle, after
                // the last disarm): re-protect only what was written since
                // (cheap), not the whole range.
                machine.pagemap().protect_written(range)?;
            } else {
                self.inner.uffd.write_protect(range, true)?;
                machine.ranges[k].protection_installed = true;
            }
        }
        st.machine.arm();
        st.counters.arm_ns += elapsed_ns(t0);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t0 = Instant::now();
        let mut st = self.inner.lock();
        if self.inner.engine == Engine::Async {
            self.observe_async(&mut st)?;
        }
        let armed = st.machine.armed;
        let State {
            machine, counters, ..
        } = &mut *st;
        machine.collect()?;
        let pages = machine.report();
        // Under the sync engine re-protect each run before it is handed on.
        let mut k = 0;
        while armed && self.inner.engine == Engine::Sync && k < pages.len() {
            let start = pages[k] as usize;
            let mut end = start + PAGE_SIZE;
            k += 1;
            while k < pages.len() && pages[k] as usize == end {
                end += PAGE_SIZE;
                k += 1;
            }
            let run = PageRange {
                start,
                len: end - start,
            };
            self.inner.uffd.write_protect(run, true)?;
        }
        counters.harvests += 1;
        counters.pages_reported += pages.len() as u64;
        counters.write_traps = machine.counts.get(super::cost::Event::EntriesLogged);
        let mut k = 0;
        while k < pages.len() {
            let start = pages[k] as usize;
            let mut end = start + PAGE_SIZE;
            k += 1;
            while k < pages.len() && pages[k] as usize == end {
                end += PAGE_SIZE;
                k += 1;
            }
            sink(PageRange {
                start,
                len: end - start,
            });
        }
        counters.harvest_ns += elapsed_ns(t0);
        Ok(())
    }

    /// Async engine: the protection stays (a first write between cycles
    /// costs one fault resolved in the kernel, ~1 us; removing it from
    /// 256 MiB costs 10-20 ms and re-installing it as much). Sync engine:
    /// the protection is removed, or every first write would trap to the
    /// handler thread.
    fn discarded(&self, range: PageRange) -> Result<(), DirtyError> {
        // The async engine sees discarded pages as written (PAGEMAP_SCAN).
        // The sync engine's write-protection of anonymous pages is gone
        // after MADV_DONTNEED: log the pages as written now (their contents
        // changed: they read as zero) and protect them again, so the next
        // write traps as usual.
        if self.inner.engine == Engine::Async {
            return Ok(());
        }
        let mut st = self.inner.lock();
        if !st.machine.armed {
            return Ok(());
        }
        let tracked: Option<PageRange> = st
            .machine
            .ranges
            .iter()
            .map(|tr| tr.range)
            .find(|r| r.start <= range.start && range.end() <= r.end());
        let Some(_) = tracked else {
            return Ok(());
        };
        let mut addr = range.start;
        while addr < range.end() {
            let frame = if st.machine.logs_frames() {
                machine_frame(&st.machine, addr as u64, 0)
            } else {
                0
            };
            st.machine.observe(addr as u64, frame);
            addr += PAGE_SIZE;
        }
        self.inner.uffd.write_protect(range, true)?;
        drop(st);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        let mut st = self.inner.lock();
        st.machine.disarm();
        // Both engines lift the protection until the next arm. Left in
        // place, it would make every page first written between cycles
        // take a write fault: a cost of the kernel substrate, not of PML
        // (the hardware logs without trapping), and on an allocating
        // program most of its tracking overhead. GCBench under epml ran in
        // 0.83x the time (`oohgc-bench ab`, 10 pairs) once the async
        // engine stopped keeping it; the next arm pays one full
        // write-protect of the range instead (as pagemap-scan does by
        // default, `DisarmPolicy::Unprotect`).
        for tr in st.machine.ranges.iter_mut() {
            self.inner.uffd.write_protect(tr.range, false)?;
            tr.protection_installed = false;
        }
        Ok(())
    }

    fn counters(&self) -> Counters {
        let st = self.inner.lock();
        let mut c = st.counters;
        c.write_traps = st.machine.counts.get(super::cost::Event::EntriesLogged);
        c
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        let (counts, stats, scans, faults) = {
            let st = self.inner.lock();
            (
                st.machine.counts,
                st.machine.driver().reverse_map_stats(),
                st.engine_scans,
                st.engine_faults,
            )
        };
        let modelled = modelled_ns(self.inner.mode, &counts);
        for (i, e) in ALL_EVENTS.iter().enumerate() {
            f(e.name(), counts.get(*e));
            f(e.modelled_name(), modelled[i]);
        }
        f("pml_total_modelled_ns", modelled.iter().sum());
        f("pml_engine_pagemap_scan_calls", scans);
        f("pml_engine_write_faults", faults);
        f(
            "pml_spml_pages_with_changed_frame",
            stats.pages_with_changed_frame,
        );
        f("pml_spml_unresolved_frames", stats.unresolved_frames);
        f("pml_spml_fallbacks", stats.fallbacks);
    }
}
