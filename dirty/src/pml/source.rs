//! `PmlSource`: the `epml` / `spml` dirty sources — the machine model
//! ([`super::model`]) driven by a kernel engine (`engine.rs`), behind the
//! [`DirtySource`] contract.
//!
//! Owns: the lock around the model and the engine's scratch state, the
//! sync engine's handler thread, the measured counters, the public
//! accessors (cost report, event counts, modelled context switches).
//! Must not touch: the kernel (every system call goes through the
//! engine), the model's or the drivers' decisions.
//!
//! The model state lives behind one mutex; the handler thread and the
//! collector share it. Nothing on these paths allocates through the global
//! allocator (raw mmap vectors, a tracked-range table sized at open).

use super::cost::{modelled_ns, CostReport, EventCounts, ALL_EVENTS};
use super::engine::{for_each_run, EngineScratch, KernelEngine};
use super::model::{Machine, PmlConfig};
use super::{Engine, Mode};
use crate::contract::{Counters, DirtyError, DirtySource, PageRange};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Mutable state behind the lock.
struct State {
    machine: Machine,
    counters: Counters,
    scratch: EngineScratch,
}

struct Inner {
    mode: Mode,
    engine: KernelEngine,
    state: Mutex<State>,
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

impl PmlSource {
    /// Open the model in `mode` over `engine` with `config`.
    pub fn open(mode: Mode, engine: Engine, config: PmlConfig) -> Result<PmlSource, DirtyError> {
        let name = mode.name();
        let (engine, pagemap) = KernelEngine::open(name, engine)?;
        let visible = pagemap.pfns_visible();
        let machine = Machine::new(mode, config, pagemap, visible)?;
        let inner = Arc::new(Inner {
            mode,
            engine,
            state: Mutex::new(State {
                machine,
                counters: Counters::default(),
                scratch: EngineScratch::new(),
            }),
            pfns_visible: visible,
        });
        let handler = if inner.engine.needs_handler_thread() {
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
        } else {
            None
        };
        Ok(PmlSource { inner, handler })
    }

    /// The modelled mode.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The kernel engine underneath.
    pub fn engine(&self) -> Engine {
        self.inner.engine.kind()
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
        let State {
            machine, scratch, ..
        } = &mut *st;
        self.inner.engine.catch_up(machine, scratch)?;
        machine.schedule_out();
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
            engine: self.inner.engine.kind(),
            counts: st.machine.counts,
            measured_harvest_ns: st.counters.harvest_ns,
            measured_arm_ns: st.counters.arm_ns,
        }
    }
}

/// The sync engine's handler thread: log each write fault in the model and
/// unprotect the page, both under the model lock.
fn fault_handler(inner: &Inner) {
    crate::service_thread::announce_current_thread();
    inner.engine.serve_faults(&mut |address| {
        let mut st = inner.lock();
        let State {
            machine, scratch, ..
        } = &mut *st;
        inner.engine.on_write_fault(machine, scratch, address);
        drop(st);
    });
}

impl Drop for PmlSource {
    fn drop(&mut self) {
        if let Some(h) = self.handler.take() {
            self.inner.engine.stop_handler();
            let _ = h.join();
        }
        let mut st = self.inner.lock();
        for tr in st.machine.ranges.iter() {
            self.inner.engine.release(tr.range);
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
        self.inner.engine.track(&mut st.machine, range)
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut st = self.inner.lock();
        let State {
            machine, scratch, ..
        } = &mut *st;
        self.inner.engine.before_untrack(machine, scratch)?;
        machine.untrack(range)?;
        self.inner.engine.release(range);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t0 = Instant::now();
        let mut st = self.inner.lock();
        self.inner.engine.arm(&mut st.machine)?;
        st.machine.arm();
        st.counters.arm_ns += elapsed_ns(t0);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t0 = Instant::now();
        let mut st = self.inner.lock();
        let State {
            machine,
            counters,
            scratch,
        } = &mut *st;
        self.inner.engine.catch_up(machine, scratch)?;
        let armed = machine.armed;
        machine.collect()?;
        let pages = machine.report();
        if armed {
            self.inner.engine.reprotect_reported(pages)?;
        }
        counters.harvests += 1;
        counters.pages_reported += pages.len() as u64;
        counters.write_traps = machine.counts.get(super::cost::Event::EntriesLogged);
        for_each_run(pages, &mut |run| {
            sink(run);
            Ok(())
        })?;
        counters.harvest_ns += elapsed_ns(t0);
        Ok(())
    }

    /// Async engine: the kernel's scans see discarded pages as written.
    /// Sync engine: the pages are logged now and protected again.
    fn discarded(&self, range: PageRange) -> Result<(), DirtyError> {
        if self.inner.engine.sees_discards() {
            return Ok(());
        }
        let mut st = self.inner.lock();
        self.inner.engine.discarded(&mut st.machine, range)
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        let mut st = self.inner.lock();
        st.machine.disarm();
        self.inner.engine.disarm(&mut st.machine)
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
                st.scratch.scans,
                st.scratch.faults,
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
