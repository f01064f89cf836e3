//! The modelled PML hardware of one virtual CPU.
//!
//! Intel page-modification logging (SDM vol. 3C, 28.3.6): when the CPU sets
//! a dirty flag that was clear (a 0 -> 1 transition), it writes one 64-bit
//! entry into the 4 KiB PML buffer whose address is in the VMCS, at the
//! position given by the 16-bit PML index, and decrements the index. The
//! index starts at 511; when it leaves 0..=511 the buffer is full and a
//! *log-full* event is raised: a VM exit with reason 62 for shadow PML
//! (SPML), a self-IPI to the guest for the proposed extended PML (EPML).
//! Writes to a page whose flag is already set log nothing.
//!
//! Real hardware raises the event when it next *tries* to log with the
//! index out of range; the model raises it as soon as the index leaves the
//! range (right after the 512th entry), which gives exactly one log-full
//! event per 512 entries and never leaves a full buffer waiting.
//!
//! The dirty flags themselves are kept by the machine model (per tracked
//! page); this module is the buffer, the index and the VMCS fields.
//!
//! Owns: the VMCS PML fields, `PmlBuffer`, `log_entry` / `log_batch` (the
//! CPU's logging logic). Must not touch: the dirty flags (the guest drivers
//! keep them), what a log-full event leads to (drivers and host), the
//! kernel.

use super::cost::{Event, EventCounts};
use crate::raw_vec::RawVec;

/// Entries in a PML buffer (4 KiB of 64-bit entries).
pub const PML_ENTRIES: usize = 512;
/// The PML index after a reset: the highest entry.
pub const PML_INDEX_START: u16 = 511;

/// The VMCS fields PML uses. With EPML they are guest-writable through
/// VMCS shadowing (the guest uses `vmread`/`vmwrite`); with SPML only the
/// hypervisor writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmcs {
    /// Guest-writable (EPML) address of the 4 KiB PML buffer.
    pml_address: u64,
    /// The PML index: next entry to write; out of 0..=511 means full.
    pub pml_index: u16,
    /// The "enable PML" execution control.
    pub pml_enabled: bool,
}

/// A VMCS field a guest may `vmread`/`vmwrite` (with shadowing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmcsField {
    /// The PML buffer address.
    PmlAddress,
    /// The PML index.
    PmlIndex,
    /// The PML enable control (0 or 1).
    PmlEnable,
}

impl Default for Vmcs {
    fn default() -> Self {
        Self::new()
    }
}

impl Vmcs {
    /// A VMCS with PML disabled and no buffer.
    pub const fn new() -> Vmcs {
        Vmcs {
            pml_address: 0,
            pml_index: PML_INDEX_START,
            pml_enabled: false,
        }
    }

    /// `vmread` of `field`, counted.
    pub fn vmread(&self, field: VmcsField, counts: &mut EventCounts) -> u64 {
        counts.bump(Event::Vmreads);
        match field {
            VmcsField::PmlAddress => self.pml_address,
            VmcsField::PmlIndex => self.pml_index as u64,
            VmcsField::PmlEnable => self.pml_enabled as u64,
        }
    }

    /// `vmwrite` of the index or the enable control, counted.
    /// The buffer address goes through [`Vmcs::vmwrite_pml_address`].
    pub fn vmwrite(&mut self, field: VmcsField, value: u64, counts: &mut EventCounts) {
        counts.bump(Event::Vmwrites);
        match field {
            VmcsField::PmlAddress => panic!("the PML address is written with vmwrite_pml_address"),
            VmcsField::PmlIndex => self.pml_index = value as u16,
            VmcsField::PmlEnable => self.pml_enabled = value != 0,
        }
    }

    /// `vmwrite` of the PML buffer address, counted when `counts` is given
    /// (the guest's write under EPML; the hypervisor's own write under SPML
    /// is not a guest event).
    ///
    /// # Safety
    /// `buffer` must stay alive, and not move, for as long as this VMCS
    /// logs into it (until another address is written).
    pub unsafe fn vmwrite_pml_address(
        &mut self,
        buffer: &mut PmlBuffer,
        counts: Option<&mut EventCounts>,
    ) {
        if let Some(c) = counts {
            c.bump(Event::Vmwrites);
        }
        self.pml_address = buffer.address();
    }

    /// The buffer address currently installed.
    pub fn pml_address(&self) -> u64 {
        self.pml_address
    }

    /// Number of entries logged since the index was last reset.
    pub fn entries_logged(&self) -> usize {
        if self.pml_index > PML_INDEX_START {
            PML_ENTRIES
        } else {
            (PML_INDEX_START - self.pml_index) as usize
        }
    }

    /// Whether the index has left 0..=511.
    pub fn is_full(&self) -> bool {
        self.pml_index > PML_INDEX_START
    }
}

/// A 4 KiB PML buffer in its own anonymous mapping.
pub struct PmlBuffer {
    page: RawVec<u64>,
}

impl Default for PmlBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl PmlBuffer {
    /// A zeroed buffer of [`PML_ENTRIES`] entries.
    pub fn new() -> PmlBuffer {
        let mut page = RawVec::with_capacity(PML_ENTRIES);
        for _ in 0..PML_ENTRIES {
            page.push(0u64);
        }
        PmlBuffer { page }
    }

    /// The buffer's address (what goes into the VMCS).
    pub fn address(&mut self) -> u64 {
        self.page.as_mut_ptr() as u64
    }

    /// The entries logged under `vmcs`, in logging order (oldest first).
    pub fn logged<'a>(&'a self, vmcs: &Vmcs) -> impl Iterator<Item = u64> + 'a {
        let n = vmcs.entries_logged();
        // Entry 511 is the oldest; the newest is at the current index + 1.
        self.page.as_slice()[PML_ENTRIES - n..]
            .iter()
            .rev()
            .copied()
    }
}

/// What the hardware did with a dirty-flag transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOutcome {
    /// PML is disabled in the VMCS: nothing logged.
    NotLogging,
    /// The entry was written; the buffer has room.
    Logged,
    /// The entry was written and the index left 0..=511: a log-full event
    /// (VM exit 62 for SPML, self-IPI for EPML) is due.
    LogFull,
}

/// The PML logic of the CPU: write `entry` at the VMCS's index into the
/// buffer at the VMCS's address, decrement the index, report log-full.
///
/// The caller guarantees (through [`Vmcs::vmwrite_pml_address`]'s contract)
/// that the address names a live [`PmlBuffer`].
pub fn log_entry(vmcs: &mut Vmcs, entry: u64, counts: &mut EventCounts) -> LogOutcome {
    if !vmcs.pml_enabled {
        return LogOutcome::NotLogging;
    }
    assert!(
        !vmcs.is_full(),
        "PML logging with a full buffer: the log-full event was not handled"
    );
    assert!(
        vmcs.pml_address != 0,
        "PML enabled without a buffer address"
    );
    let slot = (vmcs.pml_address as *mut u64).wrapping_add(vmcs.pml_index as usize);
    // SAFETY: pml_address names a live 4 KiB PmlBuffer (vmwrite_pml_address's
    // contract) and pml_index is in 0..=511 (checked above).
    unsafe { slot.write(entry) };
    counts.bump(Event::EntriesLogged);
    vmcs.pml_index = vmcs.pml_index.wrapping_sub(1);
    if vmcs.is_full() {
        LogOutcome::LogFull
    } else {
        LogOutcome::Logged
    }
}

/// [`log_entry`] for a batch: log entries pulled from `entries` until it
/// ends or the buffer fills (then `LogFull` is returned and no further
/// entry is pulled). Same semantics, one call per batch.
pub fn log_batch<I: Iterator<Item = u64>>(
    vmcs: &mut Vmcs,
    entries: &mut I,
    counts: &mut EventCounts,
) -> LogOutcome {
    if !vmcs.pml_enabled {
        return LogOutcome::NotLogging;
    }
    assert!(
        !vmcs.is_full(),
        "PML logging with a full buffer: the log-full event was not handled"
    );
    assert!(
        vmcs.pml_address != 0,
        "PML enabled without a buffer address"
    );
    let buffer = vmcs.pml_address as *mut u64;
    let mut index = vmcs.pml_index as usize;
    let mut logged = 0;
    let mut outcome = LogOutcome::Logged;
    for entry in entries.by_ref() {
        // SAFETY: pml_address names a live 4 KiB PmlBuffer
        // (vmwrite_pml_address's contract) and index is in 0..=511.
        unsafe { buffer.add(index).write(entry) };
        logged += 1;
        if index == 0 {
            outcome = LogOutcome::LogFull;
            break;
        }
        index -= 1;
    }
    vmcs.pml_index = if outcome == LogOutcome::LogFull {
        u16::MAX // the index wrapped below 0: out of 0..=511
    } else {
        index as u16
    };
    counts.add(Event::EntriesLogged, logged);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed(buffer: &mut PmlBuffer) -> Vmcs {
        let mut vmcs = Vmcs::new();
        // SAFETY: the buffer outlives the VMCS in each test.
        unsafe { vmcs.vmwrite_pml_address(buffer, None) };
        vmcs.pml_enabled = true;
        vmcs
    }

    #[test]
    fn one_log_full_per_512_entries_and_index_wraps() {
        let mut buf = PmlBuffer::new();
        let mut vmcs = armed(&mut buf);
        let mut counts = EventCounts::default();
        let mut fulls = 0;
        for i in 0..1536u64 {
            match log_entry(&mut vmcs, i << 12, &mut counts) {
                LogOutcome::LogFull => {
                    fulls += 1;
                    assert_eq!(i % 512, 511, "log-full after entry {i}");
                    assert_eq!(vmcs.entries_logged(), 512);
                    let got: Vec<u64> = buf.logged(&vmcs).collect();
                    assert_eq!(got.len(), 512);
                    assert_eq!(got[0], (i - 511) << 12, "oldest entry first");
                    assert_eq!(got[511], i << 12);
                    vmcs.pml_index = PML_INDEX_START; // the handler's reset
                }
                LogOutcome::Logged => assert!(vmcs.pml_index <= PML_INDEX_START),
                LogOutcome::NotLogging => panic!("logging is enabled"),
            }
        }
        assert_eq!(fulls, 3);
        assert_eq!(counts.get(Event::EntriesLogged), 1536);
        assert_eq!(vmcs.pml_index, 511);
    }

    #[test]
    fn batch_logging_matches_single_entries() {
        let mut buf = PmlBuffer::new();
        let mut vmcs = armed(&mut buf);
        let mut counts = EventCounts::default();
        let mut entries = 0..1000u64;
        assert_eq!(
            log_batch(&mut vmcs, &mut entries, &mut counts),
            LogOutcome::LogFull
        );
        assert_eq!(entries.start, 512, "nothing pulled past the full buffer");
        assert_eq!(
            buf.logged(&vmcs).collect::<Vec<_>>(),
            (0..512).collect::<Vec<_>>()
        );
        vmcs.pml_index = PML_INDEX_START;
        assert_eq!(
            log_batch(&mut vmcs, &mut entries, &mut counts),
            LogOutcome::Logged
        );
        assert_eq!(vmcs.entries_logged(), 488);
        assert_eq!(counts.get(Event::EntriesLogged), 1000);
    }

    #[test]
    fn disabled_unit_logs_nothing() {
        let mut buf = PmlBuffer::new();
        let mut vmcs = armed(&mut buf);
        vmcs.pml_enabled = false;
        let mut counts = EventCounts::default();
        assert_eq!(log_entry(&mut vmcs, 1, &mut counts), LogOutcome::NotLogging);
        assert_eq!(vmcs.entries_logged(), 0);
        assert_eq!(counts.get(Event::EntriesLogged), 0);
    }

    #[test]
    fn vmread_vmwrite_are_counted() {
        let mut vmcs = Vmcs::new();
        let mut counts = EventCounts::default();
        vmcs.vmwrite(VmcsField::PmlIndex, 7, &mut counts);
        assert_eq!(vmcs.vmread(VmcsField::PmlIndex, &mut counts), 7);
        assert_eq!(vmcs.entries_logged(), 504);
        assert_eq!(counts.get(Event::Vmreads), 1);
        assert_eq!(counts.get(Event::Vmwrites), 1);
    }
}
