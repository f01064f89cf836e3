//! The machine model: one vCPU with PML hardware, the hypervisor, a guest
//! driver (EPML or SPML, behind `GuestDriver`) and the tracked ranges,
//! fed with dirty-flag transitions by a kernel engine.
//!
//! Owns: the tracked ranges and their per-page state, the hold-back of
//! transitions while the vCPU cannot log, the one path by which
//! transitions reach the hardware unit ([`Machine::observe_run`]), the
//! drain loop (flush, fetch, replay until idle), context switches, and the
//! harvest's merge of everything logged into one sorted, unique report.
//! Must not touch: the kernel (engines live in `source.rs`; the model
//! only reads pagemap through the drivers), and any decision in which
//! EPML and SPML differ: those are `GuestDriver` methods, and this file
//! never looks at [`Mode`] except to build the driver.
//!
//! **Attribution.** The process runs on a single modelled vCPU, like the
//! paper's 1-vCPU VM: writes of every thread are logged by that vCPU, in
//! the order the engine observes them (exact for the sync engine, batch
//! order for the async one).
//!
//! **Dirty flags.** Per tracked page, in the driver's layout (EPML: the
//! guest page-table dirty bit; SPML: the EPT dirty flag of the page's
//! frame). Flags are set on a 0 -> 1 transition, which writes one PML
//! entry, and cleared when the page is reported by a harvest (a dirty-flag
//! clear with TLB flush).
//!
//! **Context switch.** [`Machine::schedule_out`] is the point where the
//! guest scheduler takes the tracked process off the vCPU: the partly
//! filled buffer is flushed (EPML: drained by the guest; SPML: copied into
//! the ring by the hypervisor) and logging stops until
//! [`Machine::schedule_in`]. Real scheduler switches are not observed; the
//! model's switches are the ones its user calls (e.g. a benchmark
//! modelling time slices). Writes observed while scheduled out are still
//! logged after schedule-in (the process cannot run meanwhile).

use super::cost::{Event, EventCounts};
use super::driver::{range_index, GuestDriver};
use super::epml::EpmlDriver;
use super::hardware::LogOutcome;
use super::host::ModelHypervisor;
use super::reverse_map::SYNTHETIC_FRAME_BASE;
use super::spml::{frame_of, SpmlDriver};
use super::Mode;
use crate::contract::{DirtyError, PageRange, PAGE_SIZE};
use crate::pagemap::Pagemap;
use crate::raw_vec::RawVec;

pub use super::tracked::{PmlConfig, TrackedRange, MAX_TRACKED_RANGES};

/// The guest driver of `mode`: the one place the model picks a design.
fn driver_for(
    mode: Mode,
    config: PmlConfig,
    pagemap: &Pagemap,
    pfns_visible: bool,
) -> Box<dyn GuestDriver> {
    match mode {
        Mode::Epml => Box::new(EpmlDriver::new()),
        Mode::Spml => {
            let mut spml = SpmlDriver::new(pfns_visible);
            spml.lag = config.guest_lags;
            if pfns_visible {
                spml.zero_pfn = pagemap.zero_page_pfn();
            }
            Box::new(spml)
        }
    }
}

/// The whole modelled machine for one tracked process.
pub struct Machine {
    /// The hypervisor (owns the vCPU and, for SPML, the ring).
    pub hv: ModelHypervisor,
    /// The guest driver of the modelled design.
    driver: Box<dyn GuestDriver>,
    /// Tracked ranges (capacity fixed at construction: no allocation later).
    pub ranges: Vec<TrackedRange>,
    next_synthetic: u64,
    /// Every modelled event.
    pub counts: EventCounts,
    /// Between `arm` and `disarm`.
    pub armed: bool,
    scheduled_out: bool,
    /// A range was untracked since the last report: logged pages may lie
    /// outside every tracked range.
    untracked_since_report: bool,
    /// Transitions held back while the vCPU cannot log.
    held: RawVec<(u64, u64)>,
    /// Pages resolved early (at `untrack`), reported at the next harvest.
    carried: RawVec<u64>,
    /// Scratch list of pages to report.
    report: RawVec<u64>,
    pagemap: Pagemap,
    pfns_visible: bool,
}

impl Machine {
    /// A machine for `mode`, reading frames through `pagemap`.
    pub(crate) fn new(
        mode: Mode,
        config: PmlConfig,
        pagemap: Pagemap,
        pfns_visible: bool,
    ) -> Result<Machine, DirtyError> {
        let mut hv = ModelHypervisor::new(mode, config.ring_entries)?;
        let mut counts = EventCounts::default();
        super::host::Hypervisor::init_pml(&mut hv, &mut counts)?;
        Ok(Machine {
            hv,
            driver: driver_for(mode, config, &pagemap, pfns_visible),
            ranges: Vec::with_capacity(MAX_TRACKED_RANGES),
            next_synthetic: SYNTHETIC_FRAME_BASE,
            counts,
            armed: false,
            scheduled_out: false,
            untracked_since_report: false,
            held: RawVec::new(),
            carried: RawVec::new(),
            report: RawVec::new(),
            pagemap,
            pfns_visible,
        })
    }

    /// The modelled design.
    pub fn mode(&self) -> Mode {
        self.driver.mode()
    }

    /// The guest driver.
    pub(crate) fn driver(&self) -> &dyn GuestDriver {
        &*self.driver
    }

    /// Whether the engine must supply the frame backing each written page
    /// (see `GuestDriver::logs_frames`).
    pub fn logs_frames(&self) -> bool {
        self.driver.logs_frames()
    }

    /// The pagemap descriptor.
    pub(crate) fn pagemap(&self) -> &Pagemap {
        &self.pagemap
    }

    /// The frame backing page `i` of range `r`, given its pagemap entry:
    /// the real frame when visible and present, else its synthetic frame.
    pub fn frame_at(&self, r: usize, i: usize, pagemap_entry: u64) -> u64 {
        frame_of(
            pagemap_entry,
            self.pfns_visible,
            self.ranges[r].synthetic_frame(i),
        )
    }

    /// Index of the tracked range holding `va`.
    pub fn range_of(&self, va: u64) -> Option<usize> {
        range_index(&self.ranges, va)
    }

    /// Start tracking `range` (its pages count as dirty until reported).
    pub fn track(&mut self, range: PageRange) -> Result<(), DirtyError> {
        if self
            .ranges
            .iter()
            .any(|r| r.range.start < range.end() && range.start < r.range.end())
        {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "overlaps a range this source already tracks",
            });
        }
        if self.ranges.len() == MAX_TRACKED_RANGES {
            return Err(DirtyError::Capacity {
                what: "tracked ranges (at most MAX_TRACKED_RANGES = 4096)",
            });
        }
        let pages = range.pages();
        let mut tr = TrackedRange {
            range,
            flags: RawVec::new(),
            walked_frames: RawVec::new(),
            synthetic_base: self.next_synthetic,
            fresh: true,
            protection_installed: false,
        };
        self.next_synthetic += pages as u64;
        let flag_words = self.driver.flag_words(pages);
        tr.flags.reserve(flag_words);
        for _ in 0..flag_words {
            tr.flags.push(0);
        }
        self.driver
            .on_track(&self.pagemap, &mut tr, &mut self.counts)?;
        self.ranges.push(tr);
        Ok(())
    }

    /// Stop tracking `range`, which must be exactly a tracked range.
    pub fn untrack(&mut self, range: PageRange) -> Result<(), DirtyError> {
        let Some(i) = self.ranges.iter().position(|r| r.range == range) else {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "is not a tracked range (untrack takes exactly a range given to track)",
            });
        };
        if self.driver.logs_frames() && self.armed {
            // Frames of the range would no longer resolve: resolve now and
            // carry the pages to the next harvest.
            self.drain();
            let mut out = std::mem::take(&mut self.carried);
            let fallback =
                self.driver
                    .resolve(&self.pagemap, &mut self.ranges, &mut out, &mut self.counts)?;
            if fallback {
                self.push_all_pages(&mut out);
            }
            self.carried = out;
        }
        self.ranges.swap_remove(i);
        self.untracked_since_report = true;
        Ok(())
    }

    /// Start an epoch: every flag clear, logging enabled.
    pub fn arm(&mut self) {
        for tr in self.ranges.iter_mut() {
            tr.flags.as_mut_slice().fill(0);
            tr.fresh = false;
        }
        self.held.clear();
        self.carried.clear();
        self.scheduled_out = false;
        self.driver.arm(&mut self.hv, &mut self.counts);
        self.armed = true;
    }

    /// Stop logging.
    pub fn disarm(&mut self) {
        if !self.armed {
            return;
        }
        self.driver.disarm(&mut self.hv, &mut self.counts);
        self.armed = false;
    }

    /// Whether the vCPU logs now (not exited on a full ring, the process
    /// on it, PML enabled); otherwise transitions are held back.
    fn logging(&self) -> bool {
        !(self.hv.stalled() || self.scheduled_out || !self.hv.vcpu.vmcs.pml_enabled)
    }

    /// The engine saw page `va` written; `frame` backs it now (drivers
    /// that log frames). Models the hardware: set the dirty flag, log on a
    /// 0 -> 1 transition, handle log-full.
    pub fn observe(&mut self, va: u64, frame: u64) {
        if !self.armed {
            return;
        }
        if self.hv.stalled() || self.scheduled_out {
            self.held.push((va, frame));
            return;
        }
        let Some(r) = self.range_of(va) else { return };
        let Some(i) = self.ranges[r].index_of(va) else {
            return;
        };
        self.observe_at(r, i, frame);
    }

    /// [`Machine::observe`] for page `i` of tracked range `r` (the caller
    /// knows where the page is).
    pub fn observe_at(&mut self, r: usize, i: usize, frame: u64) {
        self.observe_run(r, i, 1, &[frame]);
    }

    /// [`Machine::observe_at`] for pages `first..first + n` of range `r`
    /// (`frames[k]` backs page `first + k`; empty when the driver logs no
    /// frames), in one batch per buffer fill. The one path every engine's
    /// transitions take into the hardware model.
    pub fn observe_run(&mut self, r: usize, first: usize, n: usize, frames: &[u64]) {
        let end = first + n;
        let mut next = first;
        while next < end {
            if !self.armed {
                return;
            }
            if !self.logging() {
                let start = self.ranges[r].range.start;
                for k in next..end {
                    let frame = frames.get(k - first).copied().unwrap_or(0);
                    self.held.push(((start + k * PAGE_SIZE) as u64, frame));
                }
                return;
            }
            let tr = &mut self.ranges[r];
            let outcome = self.driver.log_pages(
                tr.flags.as_mut_slice(),
                tr.range.start as u64,
                &mut next,
                end,
                first,
                frames,
                &mut self.hv.vcpu.vmcs,
                &mut self.counts,
            );
            if outcome == LogOutcome::LogFull {
                self.driver.on_log_full(&mut self.hv, &mut self.counts);
            }
        }
    }

    fn replay_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for &(va, frame) in held.iter() {
            self.observe(va, frame);
        }
        if self.held.is_empty() {
            // Keep the larger mapping for next time.
            self.held = held;
            self.held.clear();
        }
    }

    /// Flush the buffer toward the guest and fetch what was published
    /// until nothing is left anywhere (replaying transitions held while
    /// the vCPU was exited).
    fn drain(&mut self) {
        self.driver.flush(&mut self.hv, &mut self.counts);
        loop {
            let idle = self.driver.fetch(&mut self.hv, &mut self.counts);
            if idle && self.held.is_empty() {
                return;
            }
            self.replay_held();
            self.driver.flush(&mut self.hv, &mut self.counts);
        }
    }

    /// A context switch: the tracked process leaves the vCPU.
    pub fn schedule_out(&mut self) {
        if self.scheduled_out {
            return;
        }
        self.counts.bump(Event::ContextSwitches);
        if self.armed {
            self.driver.schedule_out(&mut self.hv, &mut self.counts);
        }
        self.scheduled_out = true;
    }

    /// The tracked process returns to the vCPU.
    pub fn schedule_in(&mut self) {
        if !self.scheduled_out {
            return;
        }
        self.scheduled_out = false;
        if self.armed {
            self.driver.schedule_in(&mut self.hv, &mut self.counts);
        }
        self.replay_held();
    }

    fn push_all_pages(&self, out: &mut RawVec<u64>) {
        for tr in self.ranges.iter() {
            tr.push_pages(out);
        }
    }

    /// Harvest: flush everything the hardware and driver hold, collect the
    /// written pages (sorted, unique, tracked only), clear their flags, and
    /// leave them in [`Machine::report`].
    pub fn collect(&mut self) -> Result<(), DirtyError> {
        let mut out = std::mem::take(&mut self.report);
        out.clear();
        if !self.armed {
            // Not watching: every tracked page may have been written.
            self.push_all_pages(&mut out);
        } else {
            if self.scheduled_out {
                // Harvest happens on the vCPU: the process is back.
                self.schedule_in();
            }
            self.drain();
            for &va in self.carried.iter() {
                out.push(va);
            }
            self.carried.clear();
            let fallback =
                self.driver
                    .resolve(&self.pagemap, &mut self.ranges, &mut out, &mut self.counts)?;
            if fallback {
                self.push_all_pages(&mut out);
            }
            for tr in self.ranges.iter_mut() {
                if tr.fresh {
                    tr.push_pages(&mut out);
                    tr.fresh = false;
                }
            }
        }
        if !out.windows(2).all(|w| w[0] < w[1]) {
            out.sort_unstable();
            let mut kept = 0;
            for k in 0..out.len() {
                if kept == 0 || out[k] != out[kept - 1] {
                    out[kept] = out[k];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
        if std::mem::take(&mut self.untracked_since_report) {
            // Drop the pages of ranges no longer tracked.
            let mut kept = 0;
            for k in 0..out.len() {
                if self.range_of(out[k]).is_some() {
                    out[kept] = out[k];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
        let clears = self.driver.clear_flags(&mut self.ranges, out.as_slice());
        self.counts.add(Event::DirtyFlagClears, clears);
        self.report = out;
        Ok(())
    }

    /// The pages the last [`Machine::collect`] found (sorted, unique).
    pub fn report(&self) -> &[u64] {
        self.report.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address range nothing is mapped at (the model never touches it:
    /// transitions are scripted; pagemap reports its pages absent).
    const FAKE_BASE: usize = 0x6000_0000_0000;

    fn machine(mode: Mode, pages: usize) -> Machine {
        let pagemap = Pagemap::open("test").unwrap();
        let mut m = Machine::new(mode, PmlConfig::default(), pagemap, true).unwrap();
        m.track(PageRange::new(FAKE_BASE, pages * PAGE_SIZE).unwrap())
            .unwrap();
        m.arm();
        m
    }

    fn script(m: &mut Machine) {
        // 1100 new dirty pages, then 100 of them written again.
        for i in (0..1100).chain(0..100) {
            let frame = m.ranges[0].synthetic_frame(i);
            m.observe_at(0, i, frame);
        }
    }

    #[test]
    fn epml_logs_once_per_page_and_flushes_the_partial_buffer() {
        let mut m = machine(Mode::Epml, 2000);
        script(&mut m);
        assert_eq!(
            m.counts.get(Event::EntriesLogged),
            1100,
            "rewrites log nothing"
        );
        assert_eq!(
            m.counts.get(Event::SelfIpis),
            2,
            "one log-full per 512 entries"
        );
        assert_eq!(
            m.hv.vcpu.vmcs.entries_logged(),
            1100 - 1024,
            "partly filled buffer"
        );
        m.collect().unwrap();
        assert_eq!(m.report().len(), 1100);
        assert_eq!(m.report()[0], FAKE_BASE as u64);
        assert_eq!(
            m.counts.get(Event::GuestEntriesDrained),
            1100,
            "the partial buffer was flushed"
        );
        assert_eq!(m.hv.vcpu.vmcs.pml_index, 511, "index reset after the flush");
        // Flags were cleared: the next epoch logs the pages again.
        script(&mut m);
        assert_eq!(m.counts.get(Event::EntriesLogged), 2200);
        assert_eq!(m.counts.get(Event::SelfIpis), 4);
    }

    #[test]
    fn spml_copies_to_the_ring_and_reverse_maps_every_frame() {
        let mut m = machine(Mode::Spml, 2000);
        script(&mut m);
        assert_eq!(m.counts.get(Event::EntriesLogged), 1100);
        assert_eq!(m.counts.get(Event::LogFullExits), 2);
        assert_eq!(m.counts.get(Event::RingEntriesCopied), 1024);
        m.collect().unwrap();
        let expected: Vec<u64> = (0..1100)
            .map(|i| (FAKE_BASE + i * PAGE_SIZE) as u64)
            .collect();
        assert_eq!(m.report(), &expected[..]);
        assert_eq!(
            m.counts.get(Event::RingEntriesCopied),
            1100,
            "flush at harvest"
        );
        assert_eq!(m.counts.get(Event::ReverseMapLookups), 1100);
        assert_eq!(m.driver().reverse_map_stats().fallbacks, 0);
        assert_eq!(m.hv.ring_mut().used(), 0, "every entry recycled");
    }

    #[test]
    fn pages_of_an_untracked_range_are_not_reported() {
        for mode in [Mode::Epml, Mode::Spml] {
            let mut m = machine(mode, 100);
            let second = PageRange::new(FAKE_BASE + 1000 * PAGE_SIZE, 100 * PAGE_SIZE).unwrap();
            m.track(second).unwrap();
            m.arm();
            for (r, i) in [(0, 3), (1, 4), (0, 5)] {
                let frame = m.ranges[r].synthetic_frame(i);
                m.observe_at(r, i, frame);
            }
            m.untrack(PageRange::new(FAKE_BASE, 100 * PAGE_SIZE).unwrap())
                .unwrap();
            m.collect().unwrap();
            assert_eq!(
                m.report(),
                &[(second.start + 4 * PAGE_SIZE) as u64],
                "{mode:?}"
            );
            assert_eq!(m.counts.get(Event::DirtyFlagClears), 1, "{mode:?}");
        }
    }

    #[test]
    fn schedule_out_flushes_and_holds_writes_until_schedule_in() {
        let mut m = machine(Mode::Epml, 100);
        m.observe_at(0, 1, 0);
        m.schedule_out();
        assert_eq!(m.counts.get(Event::GuestEntriesDrained), 1);
        assert_eq!(m.counts.get(Event::ContextSwitches), 1);
        m.observe_at(0, 2, 0);
        assert_eq!(
            m.counts.get(Event::EntriesLogged),
            1,
            "nothing runs while scheduled out"
        );
        m.schedule_in();
        assert_eq!(m.counts.get(Event::EntriesLogged), 2);
        m.collect().unwrap();
        assert_eq!(m.report().len(), 2);
    }
}
