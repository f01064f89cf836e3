//! The host side of OoH: the [`Hypervisor`] interface a guest driver talks
//! to, and [`ModelHypervisor`], the modelled implementation.
//!
//! [`Hypervisor`] is the hypercall surface of the OoH design: init and
//! deactivate PML for the tracked process, enable and disable logging,
//! schedule-in and schedule-out notifications from the guest scheduler, a
//! flush of the partly filled buffer, and (SPML) the reset of ring entries
//! the guest has consumed. A port to a real hypervisor implements these as
//! `VMCALL`s; the guest drivers (`spml.rs`, `epml.rs`) only use this trait
//! and the VMCS fields.
//!
//! The modelled hypervisor owns the single modelled vCPU (the paper's
//! 1-vCPU VM: every thread of the process is attributed to it) and, for
//! SPML, its own PML buffer and the ring shared with the guest. On a
//! log-full VM exit (reason 62) and on every flush it copies the logged
//! guest frames into the ring, raising a virtual IRQ when the ring becomes
//! soft full. If the guest lags so far that a flush does not fit, the vCPU
//! stays *exited* (as KVM keeps a vCPU out with `KVM_EXIT_DIRTY_RING_FULL`)
//! until the guest's ring-reset hypercall frees room; the machine model
//! holds the vCPU's further transitions back meanwhile, so no entry is lost.
//!
//! Owns: the `Hypervisor` hypercall trait, `ModelHypervisor` (the vCPU, the
//! host PML buffer, the ring, the virtual IRQ, the ring-full stall). Must
//! not touch: the guest's side (drivers read the ring and issue hypercalls;
//! the host never reverse-maps), the kernel engines.

use super::cost::{Event, EventCounts};
use super::hardware::{PmlBuffer, Vmcs, PML_INDEX_START};
use super::reverse_map::gpa_to_gfn;
use super::ring::DirtyRing;
use super::Mode;
use crate::contract::DirtyError;

/// The hypercall interface of OoH PML, as seen by a guest driver.
pub trait Hypervisor {
    /// Set up PML for the tracked process (SPML: host buffer and ring;
    /// EPML: VMCS shadowing so that the guest may write the PML fields).
    fn init_pml(&mut self, counts: &mut EventCounts) -> Result<(), DirtyError>;
    /// Tear PML down.
    fn deactivate_pml(&mut self, counts: &mut EventCounts);
    /// Start logging the tracked process's writes.
    fn enable_logging(&mut self, counts: &mut EventCounts);
    /// Stop logging.
    fn disable_logging(&mut self, counts: &mut EventCounts);
    /// The tracked process is scheduled in on the vCPU: resume logging.
    fn schedule_in(&mut self, counts: &mut EventCounts);
    /// The tracked process is scheduled out: flush its partly filled
    /// buffer and stop logging until it is scheduled in again.
    fn schedule_out(&mut self, counts: &mut EventCounts);
    /// Flush the partly filled buffer (the guest is about to harvest).
    fn flush(&mut self, counts: &mut EventCounts);
    /// Recycle the ring entries the guest has marked `RESET`.
    fn reset_ring(&mut self, counts: &mut EventCounts);
}

/// The modelled vCPU: its VMCS and whether it is held exited.
pub struct Vcpu {
    /// The VMCS (its PML fields).
    pub vmcs: Vmcs,
    /// Held exited because a flush did not fit in the ring.
    pub exited_ring_full: bool,
}

/// What handling a log-full exit or a flush led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// The entries are in the ring; the vCPU runs on.
    Copied,
    /// Copied, and the ring became soft full: a virtual IRQ is pending.
    IrqRaised,
    /// The ring had no room: the vCPU stays exited, entries kept in the buffer.
    Stalled,
}

/// The modelled hypervisor for one tracked process on one vCPU.
pub struct ModelHypervisor {
    mode: Mode,
    /// The vCPU it runs.
    pub vcpu: Vcpu,
    host_buffer: PmlBuffer,
    ring: DirtyRing,
    irq_pending: bool,
    initialised: bool,
}

impl ModelHypervisor {
    /// A hypervisor for `mode` whose SPML ring has `ring_entries` entries.
    pub fn new(mode: Mode, ring_entries: usize) -> Result<ModelHypervisor, DirtyError> {
        let ring = DirtyRing::new(ring_entries).map_err(|reason| DirtyError::Unavailable {
            source: mode.name(),
            reason,
        })?;
        Ok(ModelHypervisor {
            mode,
            vcpu: Vcpu {
                vmcs: Vmcs::new(),
                exited_ring_full: false,
            },
            host_buffer: PmlBuffer::new(),
            ring,
            irq_pending: false,
            initialised: false,
        })
    }

    /// The ring shared with the SPML guest driver.
    pub fn ring_mut(&mut self) -> &mut DirtyRing {
        &mut self.ring
    }

    /// Whether a virtual IRQ is pending for the guest; clears it.
    pub fn take_irq(&mut self) -> bool {
        std::mem::take(&mut self.irq_pending)
    }

    /// Whether the vCPU is held exited on a full ring.
    pub fn stalled(&self) -> bool {
        self.vcpu.exited_ring_full
    }

    /// VM exit reason 62 (SPML): the PML buffer is full.
    pub fn handle_log_full_exit(&mut self, counts: &mut EventCounts) -> FlushOutcome {
        counts.bump(Event::LogFullExits);
        self.copy_buffer_to_ring(counts)
    }

    /// Copy every logged frame from the host PML buffer into the ring and
    /// reset the index, or hold the vCPU exited if they do not all fit.
    fn copy_buffer_to_ring(&mut self, counts: &mut EventCounts) -> FlushOutcome {
        let n = self.vcpu.vmcs.entries_logged();
        if n > self.ring.free() {
            if !self.vcpu.exited_ring_full {
                counts.bump(Event::RingFullStalls);
            }
            self.vcpu.exited_ring_full = true;
            self.irq_pending = true;
            return FlushOutcome::Stalled;
        }
        for gpa in self.host_buffer.logged(&self.vcpu.vmcs) {
            let pushed = self.ring.push(gpa_to_gfn(gpa));
            debug_assert!(pushed, "room was checked");
        }
        counts.add(Event::RingEntriesCopied, n as u64);
        self.vcpu.vmcs.pml_index = PML_INDEX_START;
        self.vcpu.exited_ring_full = false;
        if self.ring.soft_full() {
            counts.bump(Event::VirtualIrqs);
            self.irq_pending = true;
            FlushOutcome::IrqRaised
        } else {
            FlushOutcome::Copied
        }
    }

    fn install_host_buffer(&mut self) {
        // SAFETY: the host buffer is owned by self and lives as long as the
        // vCPU that logs into it.
        unsafe {
            self.vcpu
                .vmcs
                .vmwrite_pml_address(&mut self.host_buffer, None)
        };
    }
}

impl Hypervisor for ModelHypervisor {
    fn init_pml(&mut self, counts: &mut EventCounts) -> Result<(), DirtyError> {
        counts.bump(Event::HypercallInitPml);
        if self.mode == Mode::Spml {
            self.install_host_buffer();
        }
        self.initialised = true;
        Ok(())
    }

    fn deactivate_pml(&mut self, counts: &mut EventCounts) {
        if self.initialised {
            counts.bump(Event::HypercallDeactivatePml);
            self.vcpu.vmcs.pml_enabled = false;
            self.initialised = false;
        }
    }

    fn enable_logging(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallEnableLogging);
        self.ring.clear();
        self.irq_pending = false;
        self.vcpu.exited_ring_full = false;
        self.install_host_buffer();
        self.vcpu.vmcs.pml_index = PML_INDEX_START;
        self.vcpu.vmcs.pml_enabled = true;
    }

    fn disable_logging(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallDisableLogging);
        self.vcpu.vmcs.pml_enabled = false;
    }

    fn schedule_in(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallScheduleIn);
        self.vcpu.vmcs.pml_enabled = true;
    }

    fn schedule_out(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallScheduleOut);
        self.copy_buffer_to_ring(counts);
        self.vcpu.vmcs.pml_enabled = false;
    }

    fn flush(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallFlush);
        self.copy_buffer_to_ring(counts);
    }

    fn reset_ring(&mut self, counts: &mut EventCounts) {
        counts.bump(Event::HypercallRingReset);
        self.ring.reset();
        if self.vcpu.exited_ring_full {
            // The held vCPU's flush is retried now that room was freed.
            self.copy_buffer_to_ring(counts);
        }
    }
}
