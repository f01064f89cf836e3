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

use super::cost::{Event, EventCounts};
use super::hardware::{PmlBuffer, Vmcs, VmcsField, PML_INDEX_START};
use crate::raw_vec::RawVec;

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
