//! The guest-driver role: every decision in which EPML and SPML differ.
//!
//! The machine model ([`super::model`]) owns what both designs share —
//! the tracked ranges, the hold-back of transitions while the vCPU cannot
//! log, the harvest's sort/merge/filter of reported pages — and asks a
//! [`GuestDriver`] for the rest: how a page's dirty flag is kept and what
//! a 0 -> 1 transition logs, what the log-full event does, how the guest
//! enables logging and follows context switches, and how the log becomes
//! virtual pages at harvest. [`super::epml::EpmlDriver`] and
//! [`super::spml::SpmlDriver`] are its two implementations; a port to a
//! real hypervisor would provide a third behind the same trait.
//!
//! Owns: the trait and [`logged_pages`], the batch adapter both drivers
//! feed to the PML hardware unit. Must not touch: the kernel engines
//! (`source.rs`), the hypervisor's internals (drivers talk to it through
//! [`super::host::Hypervisor`] and the VMCS only), the cost table.

use super::cost::EventCounts;
use super::hardware::{log_batch, LogOutcome, Vmcs};
use super::host::ModelHypervisor;
use super::model::TrackedRange;
use super::spml::SpmlStats;
use super::Mode;
use crate::contract::DirtyError;
use crate::pagemap::Pagemap;
use crate::raw_vec::RawVec;

/// The guest side of one OoH design.
///
/// Dirty flags: each [`TrackedRange`] carries `flag_words(pages)` words of
/// flag storage, all zero when every flag is clear; only the driver gives
/// them a layout (EPML: a bitmap of guest page-table dirty bits; SPML: the
/// EPT dirty flag of the frame backing each page).
pub(crate) trait GuestDriver: Send {
    /// Which design this is (names, cost table).
    fn mode(&self) -> Mode;

    /// Whether the hardware logs guest *frames*: then the engine must say
    /// which frame backs each written page, and a range's log must be
    /// resolved before the range is untracked (its frames stop resolving).
    fn logs_frames(&self) -> bool;

    /// Words of dirty-flag storage for a range of `pages` pages.
    fn flag_words(&self, pages: usize) -> usize;

    /// A range was just tracked (its flags zeroed): set up per-range state.
    fn on_track(
        &mut self,
        pagemap: &Pagemap,
        tr: &mut TrackedRange,
        counts: &mut EventCounts,
    ) -> Result<(), DirtyError>;

    /// A new epoch: forget what was logged, enable logging.
    fn arm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// Stop logging.
    fn disarm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// The process leaves the vCPU: flush the partly filled buffer, stop logging.
    fn schedule_out(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// The process returns to the vCPU: resume logging.
    fn schedule_in(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// Set the dirty flags of pages `*next..end` of a range starting at
    /// `range_start` (`frames[k - first]` backs page `k` when
    /// [`Self::logs_frames`]), logging one entry per 0 -> 1 transition,
    /// until the pages run out or the buffer fills. `*next` is left at
    /// the first page not yet looked at.
    #[allow(clippy::too_many_arguments)]
    fn log_pages(
        &self,
        flags: &mut [u64],
        range_start: u64,
        next: &mut usize,
        end: usize,
        first: usize,
        frames: &[u64],
        vmcs: &mut Vmcs,
        counts: &mut EventCounts,
    ) -> LogOutcome;

    /// The buffer is full (EPML: the self-IPI; SPML: VM exit 62 and,
    /// if the ring fills, the virtual IRQ).
    fn on_log_full(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// Harvest, first step: move what the vCPU's buffer holds toward
    /// the guest.
    fn flush(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts);

    /// Harvest, second step: take what the hypervisor published to the
    /// guest. True when nothing is left in the buffer or on the way.
    fn fetch(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) -> bool;

    /// Turn everything logged into virtual pages pushed onto `out`
    /// (unsorted, maybe repeated). True when some entry did not resolve
    /// and every tracked page must be reported.
    fn resolve(
        &mut self,
        pagemap: &Pagemap,
        ranges: &mut [TrackedRange],
        out: &mut RawVec<u64>,
        counts: &mut EventCounts,
    ) -> Result<bool, DirtyError>;

    /// Clear the dirty flags of the reported pages `pages` (sorted,
    /// unique, every one in a range of `ranges`); returns how many flags
    /// were set (each clear is a flag clear with TLB flush).
    fn clear_flags(&self, ranges: &mut [TrackedRange], pages: &[u64]) -> u64;

    /// The reverse map's safety-net counts (zero for a design without one).
    fn reverse_map_stats(&self) -> SpmlStats {
        SpmlStats::default()
    }
}

/// Feed the transitions that `transition(k)` finds among pages
/// `*next..end` to the hardware unit, in one batch that stops when the
/// buffer fills: the adapter both drivers' [`GuestDriver::log_pages`] use.
pub(crate) fn logged_pages(
    next: &mut usize,
    end: usize,
    vmcs: &mut Vmcs,
    counts: &mut EventCounts,
    mut transition: impl FnMut(usize) -> Option<u64>,
) -> LogOutcome {
    let mut transitions = std::iter::from_fn(|| {
        while *next < end {
            let k = *next;
            *next += 1;
            if let Some(entry) = transition(k) {
                return Some(entry);
            }
        }
        None
    });
    log_batch(vmcs, &mut transitions, counts)
}

/// Index of the range of `ranges` holding `va`.
pub(crate) fn range_index(ranges: &[TrackedRange], va: u64) -> Option<usize> {
    ranges.iter().position(|r| r.range.contains(va as usize))
}
