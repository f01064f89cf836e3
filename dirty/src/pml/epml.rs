//! The EPML guest driver: owns the guest PML buffer and the process log.
//!
//! Under extended PML the CPU logs guest-*virtual* addresses into a buffer
//! the guest owns; the guest installs it by writing the PML address field
//! of its (shadowed, guest-writable) VMCS. When the buffer fills the CPU
//! raises a self-IPI in the guest (no VM exit); the driver's handler drains
//! the addresses into the process's log (raw mmap, no allocator) and resets
//! the index. At harvest the driver flushes the partly filled buffer and
//! hands the log to the collector.
//!
//! Guest protocol (each step counted):
//! * arm: `vmwrite` address, `vmwrite` index = 511, `vmwrite` enable = 1;
//! * self-IPI: drain 512 entries, `vmwrite` index = 511;
//! * flush (harvest): `vmread` index, drain, `vmwrite` index = 511;
//! * schedule-out: flush, then `vmwrite` enable = 0; schedule-in: `vmwrite` enable = 1;
//! * disarm: `vmwrite` enable = 0.
//!
//! Dirty flags: the guest page-table dirty bit of each virtual page, a
//! bitmap per tracked range (bit `i % 64` of word `i / 64` for page `i`);
//! the entry logged on a 0 -> 1 transition is the page's virtual address.
//! Every set bit belongs to a page in the log, so a harvest clears the
//! bitmaps wholesale.
//!
//! Owns: the guest buffer, the log, the `GuestDriver` (`driver.rs`) implementation for
//! EPML. Must not touch: the hypervisor (EPML needs no hypercall on its
//! paths: the VMCS fields are guest-writable), the kernel engines.

use super::cost::{Event, EventCounts};
use super::driver::{logged_pages, GuestDriver};
use super::hardware::{LogOutcome, PmlBuffer, Vmcs, VmcsField, PML_INDEX_START};
use super::host::ModelHypervisor;
use super::model::TrackedRange;
use super::Mode;
use crate::contract::{DirtyError, PAGE_SIZE};
use crate::pagemap::Pagemap;
use crate::raw_vec::RawVec;

/// Set bit `i` of a flag bitmap; true when it was clear (a 0 -> 1
/// transition).
fn set_bit(flags: &mut [u64], i: usize) -> bool {
    let bit = 1u64 << (i % 64);
    let word = &mut flags[i / 64];
    let was_clear = *word & bit == 0;
    *word |= bit;
    was_clear
}

/// The EPML guest driver.
pub struct EpmlDriver {
    buffer: PmlBuffer,
    /// Guest-virtual page addresses drained since the last harvest.
    pub log: RawVec<u64>,
}

impl Default for EpmlDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl EpmlDriver {
    /// A driver with its own 4 KiB PML buffer.
    pub fn new() -> EpmlDriver {
        EpmlDriver {
            buffer: PmlBuffer::new(),
            log: RawVec::new(),
        }
    }

    /// Install the buffer through the VMCS and enable logging.
    pub fn arm(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        self.log.clear();
        // SAFETY: the buffer is owned by this driver, which the machine keeps
        // alive (and in place) for as long as the vCPU logs into it.
        unsafe { vmcs.vmwrite_pml_address(&mut self.buffer, Some(counts)) };
        vmcs.vmwrite(VmcsField::PmlIndex, PML_INDEX_START as u64, counts);
        vmcs.vmwrite(VmcsField::PmlEnable, 1, counts);
    }

    fn drain(&mut self, vmcs: &Vmcs, counts: &mut EventCounts) {
        let n = vmcs.entries_logged();
        self.log.reserve(n);
        for gva in self.buffer.logged(vmcs) {
            self.log.push(gva);
        }
        counts.add(Event::GuestEntriesDrained, n as u64);
    }

    /// The self-IPI handler: the buffer is full.
    pub fn on_self_ipi(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        counts.bump(Event::SelfIpis);
        self.drain(vmcs, counts);
        vmcs.vmwrite(VmcsField::PmlIndex, PML_INDEX_START as u64, counts);
    }

    /// Flush the partly filled buffer into the log.
    pub fn flush(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        let _index = vmcs.vmread(VmcsField::PmlIndex, counts);
        self.drain(vmcs, counts);
        vmcs.vmwrite(VmcsField::PmlIndex, PML_INDEX_START as u64, counts);
    }

    /// The process is scheduled out: flush, stop logging.
    pub fn schedule_out(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        self.flush(vmcs, counts);
        vmcs.vmwrite(VmcsField::PmlEnable, 0, counts);
    }

    /// The process is scheduled in: resume logging.
    pub fn schedule_in(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        vmcs.vmwrite(VmcsField::PmlEnable, 1, counts);
    }

    /// Stop logging.
    pub fn disarm(&mut self, vmcs: &mut Vmcs, counts: &mut EventCounts) {
        vmcs.vmwrite(VmcsField::PmlEnable, 0, counts);
    }
}

impl GuestDriver for EpmlDriver {
    fn mode(&self) -> Mode {
        Mode::Epml
    }

    fn logs_frames(&self) -> bool {
        false
    }

    fn flag_words(&self, pages: usize) -> usize {
        pages.div_ceil(64)
    }

    fn on_track(
        &mut self,
        _pagemap: &Pagemap,
        _tr: &mut TrackedRange,
        _counts: &mut EventCounts,
    ) -> Result<(), DirtyError> {
        Ok(())
    }

    fn arm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        EpmlDriver::arm(self, &mut hv.vcpu.vmcs, counts);
    }

    fn disarm(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        EpmlDriver::disarm(self, &mut hv.vcpu.vmcs, counts);
    }

    fn schedule_out(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        EpmlDriver::schedule_out(self, &mut hv.vcpu.vmcs, counts);
    }

    fn schedule_in(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        EpmlDriver::schedule_in(self, &mut hv.vcpu.vmcs, counts);
    }

    fn log_pages(
        &self,
        flags: &mut [u64],
        range_start: u64,
        next: &mut usize,
        end: usize,
        _first: usize,
        _frames: &[u64],
        vmcs: &mut Vmcs,
        counts: &mut EventCounts,
    ) -> LogOutcome {
        logged_pages(next, end, vmcs, counts, |k| {
            set_bit(flags, k).then(|| range_start + (k * PAGE_SIZE) as u64)
        })
    }

    fn on_log_full(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        self.on_self_ipi(&mut hv.vcpu.vmcs, counts);
    }

    fn flush(&mut self, hv: &mut ModelHypervisor, counts: &mut EventCounts) {
        EpmlDriver::flush(self, &mut hv.vcpu.vmcs, counts);
    }

    fn fetch(&mut self, hv: &mut ModelHypervisor, _counts: &mut EventCounts) -> bool {
        // The buffer is the guest's: a flush left nothing on the way.
        hv.vcpu.vmcs.entries_logged() == 0
    }

    fn resolve(
        &mut self,
        _pagemap: &Pagemap,
        _ranges: &mut [TrackedRange],
        out: &mut RawVec<u64>,
        _counts: &mut EventCounts,
    ) -> Result<bool, DirtyError> {
        if out.is_empty() {
            // The log becomes the report; the old report's mapping
            // becomes the next epoch's log.
            std::mem::swap(out, &mut self.log);
        } else {
            for &va in self.log.iter() {
                out.push(va);
            }
            self.log.clear();
        }
        Ok(false)
    }

    fn clear_flags(&self, ranges: &mut [TrackedRange], _pages: &[u64]) -> u64 {
        // Every set flag belongs to a page logged since the last report,
        // and every such page is reported: clear the bitmaps wholesale.
        let mut clears = 0;
        for tr in ranges.iter_mut() {
            clears += tr.flags.iter().map(|w| w.count_ones() as u64).sum::<u64>();
            tr.flags.as_mut_slice().fill(0);
        }
        clears
    }
}
