//! The SPML ring shared between the hypervisor and the guest, laid out like
//! KVM's dirty ring (`struct kvm_dirty_gfn`, Documentation/virt/kvm/api.rst,
//! "KVM_CAP_DIRTY_LOG_RING").
//!
//! The hypervisor (producer) writes an entry and sets `DIRTY`; the guest
//! driver (consumer) reads entries in order and sets `RESET` on each; the
//! hypervisor then recycles every `RESET` entry (clears its flags) on the
//! guest's ring-reset hypercall. The ring is *soft full* when fewer than
//! [`RING_RESERVED_ENTRIES`] free entries remain: one whole PML buffer (and
//! KVM's slack) still fits, so a flush never has to be split. The
//! hypervisor raises a virtual IRQ when the ring becomes soft full; if the
//! guest lags and a flush does not fit, the vCPU stays exited (see
//! `host.rs`) — no entry is ever dropped.
//!
//! Owns: `DirtyRing` and its KVM layout (`KvmDirtyGfn`, the DIRTY/RESET
//! flags, soft-full). Must not touch: who pushes and who fetches (host and
//! SPML driver), frames (`reverse_map.rs`).

use super::hardware::PML_ENTRIES;
use crate::raw_vec::RawVec;

/// `KVM_DIRTY_GFN_F_DIRTY`: the entry holds a dirty frame not yet read.
pub const KVM_DIRTY_GFN_F_DIRTY: u32 = 1;
/// `KVM_DIRTY_GFN_F_RESET`: the guest has read the entry; it may be recycled.
pub const KVM_DIRTY_GFN_F_RESET: u32 = 2;

/// KVM's reserve beyond one PML buffer (`KVM_DIRTY_RING_RSVD_ENTRIES`).
pub const KVM_DIRTY_RING_RSVD_ENTRIES: usize = 64;
/// Entries kept free so that a full PML buffer always fits.
pub const RING_RESERVED_ENTRIES: usize = PML_ENTRIES + KVM_DIRTY_RING_RSVD_ENTRIES;
/// Default ring size in entries (KVM's common 64 KiB ring of 16-byte entries).
pub const DEFAULT_RING_ENTRIES: usize = 4096;

/// One ring entry, exactly KVM's `struct kvm_dirty_gfn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmDirtyGfn {
    /// `KVM_DIRTY_GFN_F_DIRTY` / `KVM_DIRTY_GFN_F_RESET`.
    pub flags: u32,
    /// Memory slot (`as_id << 16 | slot_id` in KVM); see [`super::reverse_map`].
    pub slot: u32,
    /// Guest frame number within the slot.
    pub offset: u64,
}

/// A guest frame as the hardware logs it: memory slot and frame offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gfn {
    /// Memory slot.
    pub slot: u32,
    /// Frame number within the slot.
    pub offset: u64,
}

/// The ring: entries in shared memory plus the two sides' indices.
pub struct DirtyRing {
    entries: RawVec<KvmDirtyGfn>,
    /// Producer index (free-running): next entry the hypervisor writes.
    dirty_index: u64,
    /// Recycle index (free-running): next entry the hypervisor resets.
    reset_index: u64,
    /// Consumer index (free-running): next entry the guest reads.
    fetch_index: u64,
}

impl DirtyRing {
    /// A ring of `size` entries; `size` must be a power of two larger than
    /// [`RING_RESERVED_ENTRIES`].
    pub fn new(size: usize) -> Result<DirtyRing, String> {
        if !size.is_power_of_two() || size <= RING_RESERVED_ENTRIES {
            return Err(format!(
                "dirty ring size {size} must be a power of two above {RING_RESERVED_ENTRIES} entries"
            ));
        }
        let mut entries = RawVec::with_capacity(size);
        for _ in 0..size {
            entries.push(KvmDirtyGfn::default());
        }
        Ok(DirtyRing {
            entries,
            dirty_index: 0,
            reset_index: 0,
            fetch_index: 0,
        })
    }

    /// Ring size in entries.
    pub fn size(&self) -> usize {
        self.entries.len()
    }

    /// Entries in use (written and not yet recycled).
    pub fn used(&self) -> usize {
        (self.dirty_index - self.reset_index) as usize
    }

    /// Free entries.
    pub fn free(&self) -> usize {
        self.size() - self.used()
    }

    /// Whether fewer than [`RING_RESERVED_ENTRIES`] entries are free.
    pub fn soft_full(&self) -> bool {
        self.free() < RING_RESERVED_ENTRIES
    }

    fn slot_mut(&mut self, index: u64) -> &mut KvmDirtyGfn {
        let mask = self.size() as u64 - 1;
        &mut self.entries[(index & mask) as usize]
    }

    /// Hypervisor: append `gfn`. Returns false (and writes nothing) when
    /// the next entry is not free.
    pub fn push(&mut self, gfn: Gfn) -> bool {
        let index = self.dirty_index;
        let e = self.slot_mut(index);
        if e.flags != 0 {
            return false;
        }
        e.slot = gfn.slot;
        e.offset = gfn.offset;
        e.flags = KVM_DIRTY_GFN_F_DIRTY;
        self.dirty_index += 1;
        true
    }

    /// Guest: read every published entry in order, mark each `RESET`, and
    /// give it to `sink`. Returns how many were read.
    pub fn fetch(&mut self, sink: &mut dyn FnMut(Gfn)) -> usize {
        let mut n = 0;
        loop {
            let index = self.fetch_index;
            let e = self.slot_mut(index);
            if e.flags & KVM_DIRTY_GFN_F_DIRTY == 0 || e.flags & KVM_DIRTY_GFN_F_RESET != 0 {
                break;
            }
            let gfn = Gfn {
                slot: e.slot,
                offset: e.offset,
            };
            e.flags |= KVM_DIRTY_GFN_F_RESET;
            self.fetch_index += 1;
            n += 1;
            sink(gfn);
        }
        n
    }

    /// Hypervisor: recycle every entry the guest has marked `RESET`.
    /// Returns how many were recycled.
    pub fn reset(&mut self) -> usize {
        let mut n = 0;
        while self.reset_index < self.dirty_index {
            let index = self.reset_index;
            let e = self.slot_mut(index);
            if e.flags & KVM_DIRTY_GFN_F_RESET == 0 {
                break;
            }
            e.flags = 0;
            self.reset_index += 1;
            n += 1;
        }
        n
    }

    /// The raw entry at ring position `i` (for inspection).
    pub fn entry(&self, i: usize) -> KvmDirtyGfn {
        self.entries[i]
    }

    /// Forget every entry (a new epoch); the guest must have nothing to read.
    pub fn clear(&mut self) {
        for e in self.entries.iter_mut() {
            *e = KvmDirtyGfn::default();
        }
        self.dirty_index = 0;
        self.reset_index = 0;
        self.fetch_index = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_kvm_dirty_gfn() {
        assert_eq!(std::mem::size_of::<KvmDirtyGfn>(), 16);
        assert_eq!(std::mem::offset_of!(KvmDirtyGfn, flags), 0);
        assert_eq!(std::mem::offset_of!(KvmDirtyGfn, slot), 4);
        assert_eq!(std::mem::offset_of!(KvmDirtyGfn, offset), 8);
    }

    #[test]
    fn entries_are_reset_and_reused() {
        let mut ring = DirtyRing::new(1024).unwrap();
        for i in 0..1000 {
            assert!(ring.push(Gfn { slot: 0, offset: i }));
        }
        assert!(ring.soft_full());
        assert_eq!(ring.entry(0).flags, KVM_DIRTY_GFN_F_DIRTY);
        let mut seen = Vec::new();
        assert_eq!(ring.fetch(&mut |g| seen.push(g.offset)), 1000);
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            ring.entry(0).flags,
            KVM_DIRTY_GFN_F_DIRTY | KVM_DIRTY_GFN_F_RESET
        );
        // Not recycled yet: the ring is still full for the producer.
        assert_eq!(ring.used(), 1000);
        assert_eq!(ring.reset(), 1000);
        assert_eq!(ring.entry(0).flags, 0);
        assert_eq!(ring.used(), 0);
        // Reuse wraps around the end.
        for i in 0..1024 {
            assert!(ring.push(Gfn { slot: 1, offset: i }));
        }
        assert!(
            !ring.push(Gfn {
                slot: 1,
                offset: 9999
            }),
            "a full ring refuses"
        );
        assert_eq!(
            ring.entry(0).offset,
            24,
            "entry 0 was recycled for the 25th push"
        );
        let mut count = 0;
        ring.fetch(&mut |_| count += 1);
        assert_eq!(count, 1024);
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(DirtyRing::new(1000).is_err());
        assert!(DirtyRing::new(512).is_err());
    }
}
