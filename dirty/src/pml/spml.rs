//! The SPML guest driver: reads guest frames from the ring and reverse-maps
//! them to the tracked process's virtual pages.
//!
//! Protocol (each step counted): on the hypervisor's virtual IRQ (ring soft
//! full) the driver reads every published ring entry into its pending list
//! and issues the ring-reset hypercall. At harvest it asks for a flush
//! (hypercall), drains the ring the same way, then walks
//! `/proc/self/pagemap` over every tracked range to build the frame ->
//! page table, and looks every pending frame up in it.
//!
//! Why no write is lost when frames change. A write to page P is logged
//! with the frame F that backed P when the hardware saw it (after the
//! previous walk W0: entries logged before W0 were resolved by the harvest
//! that did W0). At this harvest's walk W1:
//! * if F still backs P, the lookup finds P;
//! * if P's frame at W1 differs from its frame at W0, P is reported as a
//!   changed page (whatever happened to F);
//! * otherwise P's frame left F and came back to its W0 frame; then F
//!   either backs no tracked page (unresolved: every tracked page is
//!   reported) or backs another tracked page Q, which must itself have
//!   changed frame since W0 unless Q also moved twice. The model is
//!   therefore exact unless frames change owner twice between two walks
//!   in this interlocking way; synthetic frames (pages not present, or
//!   PFNs hidden) are per page for ever and always resolve.
//!
//! Dirty flags: the EPT dirty flag of the frame backing each page, one
//! word per page (0, or `FLAG_SET | frame`): a page that moved to a new
//! frame has a clear flag again. The entry logged on a 0 -> 1 transition
//! is the frame's guest-physical address.
//!
//! Owns: the pending frames, the frame table, the per-page walked frames,
//! the `GuestDriver` (`driver.rs`) implementation for SPML. Must not touch: the ring's
//! or the vCPU's internals (it uses the [`Hypervisor`] hypercalls and the
//! ring's fetch), the kernel engines.

use super::cost::{Event, EventCounts};
use super::driver::{logged_pages, range_index, GuestDriver};
use super::hardware::{LogOutcome, Vmcs};
use super::host::{FlushOutcome, Hypervisor, ModelHypervisor};
use super::model::TrackedRange;
use super::reverse_map::{gfn_to_frame, FrameTable, SYNTHETIC_SLOT};
use super::ring::Gfn;
use super::Mode;
use crate::contract::{DirtyError, PAGE_SIZE};
use crate::pagemap::{Pagemap, PAGEMAP_PFN_MASK, PAGEMAP_PRESENT};
use crate::raw_vec::RawVec;

/// Pagemap entries read per `pread` by the walk.
const WALK_CHUNK_PAGES: usize = 4096;

/// A dirty flag value: set, for frame `f`: `FLAG_SET | f`.
const FLAG_SET: u64 = 1 << 63;

/// Marks "no walk has seen this page yet".
pub const FRAME_UNKNOWN: u64 = u64::MAX;

/// The frame backing a page, from its pagemap entry: the real PFN when the
/// page is present and PFNs are visible, otherwise its synthetic frame.
pub fn frame_of(pagemap_entry: u64, pfns_visible: bool, synthetic: u64) -> u64 {
    let pfn = pagemap_entry & PAGEMAP_PFN_MASK;
    if pfns_visible && pagemap_entry & PAGEMAP_PRESENT != 0 && pfn != 0 {
        pfn
    } else {
        synthetic
    }
}

/// Counts of the driver's safety nets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpmlStats {
    /// Pages reported because their frame changed between two walks.
    pub pages_with_changed_frame: u64,
    /// Real frames that resolved to no tracked page.
    pub unresolved_frames: u64,
    /// Harvests that reported every tracked page because of those.
    pub fallbacks: u64,
}

/// The SPML guest driver.
pub struct SpmlDriver {
    pending: RawVec<Gfn>,
    table: FrameTable,
    scratch: RawVec<u64>,
    /// When set, the driver ignores virtual IRQs and drains only at harvest
    /// (a guest that lags; used by scripted tests).
    pub lag: bool,
    /// Whether real PFNs are readable from pagemap.
    pub pfns_visible: bool,
    /// The shared zero page's frame: never written, mapped by every page
    /// that was only read, so it stays out of the reverse map (a frame
    /// shared by thousands of pages would make the table degenerate).
    pub zero_pfn: Option<u64>,
    /// Safety-net counts.
    pub stats: SpmlStats,
}

impl SpmlDriver {
    /// A driver; `pfns_visible` says whether pagemap shows real frames.
    pub fn new(pfns_visible: bool) -> SpmlDriver {
        let mut scratch = RawVec::with_capacity(WALK_CHUNK_PAGES);
        for _ in 0..WALK_CHUNK_PAGES {
            scratch.push(0);
        }
        SpmlDriver {
            pending: RawVec::new(),
            table: FrameTable::new(),
            scratch,
            lag: false,
            pfns_visible,
            zero_pfn: None,
            stats: SpmlStats::default(),
        }
    }

    /// Forget pending frames (a new epoch).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Frames waiting to be resolved.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The virtual IRQ handler; returns whether it drained the ring.
    pub fn on_irq(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) -> bool {
        if self.lag {
            return false;
        }
        self.drain_ring(hv, counts);
        true
    }

    /// Read every published ring entry, then ask the hypervisor to recycle them.
    pub fn drain_ring(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        let pending = &mut self.pending;
        let n = hv.ring_mut().fetch(&mut |g| pending.push(g));
        counts.add(Event::RingEntriesFetched, n as u64);
        hv.reset_ring(counts);
    }

    /// Walk pagemap over `range` recording each page's frame; with
    /// `table`, insert frame -> page; with `changed`, push pages whose frame
    /// differs from the previous walk.
    pub(crate) fn walk_range(
        &mut self,
        pagemap: &Pagemap,
        tr: &mut TrackedRange,
        insert: bool,
        mut changed: Option<&mut RawVec<u64>>,
        counts: &mut EventCounts,
    ) -> Result<(), DirtyError> {
        let pages = tr.range.pages();
        let mut done = 0;
        while done < pages {
            let n = (pages - done).min(WALK_CHUNK_PAGES);
            let addr = tr.range.start + done * PAGE_SIZE;
            pagemap.read(addr, &mut self.scratch[..n])?;
            for k in 0..n {
                let i = done + k;
                let va = (addr + k * PAGE_SIZE) as u64;
                let frame = frame_of(self.scratch[k], self.pfns_visible, tr.synthetic_frame(i));
                let before = tr.walked_frames[i];
                if before != frame {
                    if let Some(c) = changed.as_deref_mut() {
                        if before != FRAME_UNKNOWN {
                            c.push(va);
                            self.stats.pages_with_changed_frame += 1;
                        }
                    }
                    tr.walked_frames[i] = frame;
                }
                if insert && Some(frame) != self.zero_pfn {
                    self.table.insert(frame, va);
                }
            }
            done += n;
        }
        counts.add(Event::PagemapPagesWalked, pages as u64);
        Ok(())
    }

    /// Walk every tracked range, build the reverse map, resolve every
    /// pending frame, and push the pages found (and the safety nets' pages)
    /// onto `out`. Returns true when a real frame did not resolve and every
    /// tracked page must be reported.
    fn resolve_pending(
        &mut self,
        pagemap: &Pagemap,
        ranges: &mut [TrackedRange],
        out: &mut RawVec<u64>,
        counts: &mut EventCounts,
    ) -> Result<bool, DirtyError> {
        let total: usize = ranges.iter().map(|r| r.range.pages()).sum();
        self.table.reset(total);
        for tr in ranges.iter_mut() {
            self.walk_range(pagemap, tr, true, Some(out), counts)?;
        }
        let mut fallback = false;
        for k in 0..self.pending.len() {
            let gfn = self.pending[k];
            let frame = gfn_to_frame(gfn);
            counts.bump(Event::ReverseMapLookups);
            let found = self.table.lookup(frame, &mut |va| out.push(va));
            if found > 0 {
                continue;
            }
            if gfn.slot == SYNTHETIC_SLOT {
                // A page absent when logged and present now: synthetic
                // frames are stable per page, resolve through the ranges.
                // A frame of a range no longer tracked is dropped.
                if let Some(va) = ranges.iter().find_map(|r| r.page_of_synthetic(frame)) {
                    out.push(va);
                }
            } else if ranges.is_empty() {
                // Nothing is tracked any more: nothing to report.
            } else {
                self.stats.unresolved_frames += 1;
                fallback = true;
            }
        }
        self.pending.clear();
        if fallback {
            self.stats.fallbacks += 1;
        }
        Ok(fallback)
    }
}

impl GuestDriver for SpmlDriver {
    fn mode(&self) -> Mode {
        Mode::Spml
    }

    fn logs_frames(&self) -> bool {
        true
    }

    fn flag_words(&self, pages: usize) -> usize {
        pages
    }

    fn on_track(
        &mut self,
        pagemap: &Pagemap,
        tr: &mut TrackedRange,
        counts: &mut EventCounts,
    ) -> Result<(), DirtyError> {
        let pages = tr.range.pages();
        tr.walked_frames.reserve(pages);
        for _ in 0..pages {
            tr.walked_frames.push(FRAME_UNKNOWN);
        }
        // The baseline walk: later walks report frame changes against it.
        self.walk_range(pagemap, tr, false, None, counts)
    }

    fn arm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        self.clear();
        hv.enable_logging(counts);
    }

    fn disarm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        hv.disable_logging(counts);
    }

    fn schedule_out(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        hv.schedule_out(counts);
    }

    fn schedule_in(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        hv.schedule_in(counts);
    }

    fn log_pages(
        &self,
        flags: &mut [u64],
        _range_start: u64,
        next: &mut usize,
        end: usize,
        first: usize,
        frames: &[u64],
        vmcs: &mut Vmcs,
        counts: &mut EventCounts,
    ) -> LogOutcome {
        logged_pages(next, end, vmcs, counts, |k| {
            let frame = frames[k - first];
            (flags[k] != FLAG_SET | frame).then(|| {
                flags[k] = FLAG_SET | frame;
                frame * PAGE_SIZE as u64
            })
        })
    }

    fn on_log_full(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        match hv.handle_log_full_exit(counts) {
            FlushOutcome::Copied => {}
            FlushOutcome::IrqRaised | FlushOutcome::Stalled => {
                if hv.take_irq() {
                    self.on_irq(hv, counts);
                }
            }
        }
    }

    fn flush(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        hv.flush(counts);
    }

    fn fetch(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) -> bool {
        self.drain_ring(hv, counts);
        hv.ring_mut().used() == 0 && hv.vcpu.vmcs.entries_logged() == 0 && !hv.stalled()
    }

    fn resolve(
        &mut self,
        pagemap: &Pagemap,
        ranges: &mut [TrackedRange],
        out: &mut RawVec<u64>,
        counts: &mut EventCounts,
    ) -> Result<bool, DirtyError> {
        self.resolve_pending(pagemap, ranges, out, counts)
    }

    fn clear_flags(&self, ranges: &mut [TrackedRange], pages: &[u64]) -> u64 {
        let mut clears = 0;
        let mut k = 0;
        while k < pages.len() {
            let Some(r) = range_index(ranges, pages[k]) else {
                k += 1;
                continue;
            };
            let tr = &mut ranges[r];
            let start = tr.range.start as u64;
            let end = tr.range.end() as u64;
            let flags = tr.flags.as_mut_slice();
            while k < pages.len() && pages[k] < end {
                let i = ((pages[k] - start) / PAGE_SIZE as u64) as usize;
                clears += (flags[i] != 0) as u64;
                flags[i] = 0;
                k += 1;
            }
        }
        clears
    }

    fn reverse_map_stats(&self) -> SpmlStats {
        self.stats
    }
}
