//! Guest frames and the SPML reverse map (guest frame -> virtual page).
//!
//! Shadow PML logs guest-*physical* addresses; the guest driver must map
//! them back to the tracked process's virtual pages, which the OoH paper
//! found to be SPML's dominant cost (up to 15.7 s per GiB through /proc).
//! The model does the same work: the SPML driver (`spml.rs`) walks
//! `/proc/self/pagemap` over every tracked range and builds a frame ->
//! virtual-page hash table, and each logged frame is then looked up in it.
//!
//! Frames: where the process can read page frame numbers (root here), a
//! present page's frame is its real PFN (memory slot [`REAL_SLOT`]). A page
//! that is not present, or every page when PFNs are hidden, has a stable
//! synthetic frame assigned at track time (slot [`SYNTHETIC_SLOT`]); the
//! driver resolves synthetic frames through the table of tracked ranges.
//!
//! Pages are unmapped and mapped again (`MADV_DONTNEED`, migration,
//! munmap + mmap), so a frame logged earlier may no longer back its page
//! when the walk runs. The driver therefore (1) reports every page whose
//! frame differs from the one the previous walk saw, and (2) if any real
//! frame resolves to no tracked page, reports every tracked page. See
//! `spml.rs` for the argument.
//!
//! Owns: the GPA <-> (slot, offset) conversion, the frame slots and
//! `FrameTable`. Must not touch: pagemap reads and the walk (the SPML
//! driver does them), the ring.

use super::ring::Gfn;
use crate::contract::PAGE_SIZE;
use crate::raw_vec::RawVec;

/// Memory slot of real page frames.
pub const REAL_SLOT: u32 = 0;
/// Memory slot of synthetic frames.
pub const SYNTHETIC_SLOT: u32 = 1;
/// First synthetic frame number, above any real frame (2^36 frames = 256 TiB).
pub const SYNTHETIC_FRAME_BASE: u64 = 1 << 36;

/// The guest frame (slot, offset) of guest-physical address `gpa`.
pub fn gpa_to_gfn(gpa: u64) -> Gfn {
    let frame = gpa / PAGE_SIZE as u64;
    if frame >= SYNTHETIC_FRAME_BASE {
        Gfn {
            slot: SYNTHETIC_SLOT,
            offset: frame - SYNTHETIC_FRAME_BASE,
        }
    } else {
        Gfn {
            slot: REAL_SLOT,
            offset: frame,
        }
    }
}

/// The frame number of a guest frame.
pub fn gfn_to_frame(gfn: Gfn) -> u64 {
    match gfn.slot {
        SYNTHETIC_SLOT => SYNTHETIC_FRAME_BASE + gfn.offset,
        _ => gfn.offset,
    }
}

/// A frame -> virtual page multimap (open addressing, linear probing) in
/// raw mmap. Several pages may share a frame (the zero page, KSM, fork).
pub struct FrameTable {
    /// Frame + 1 per slot (0 = empty).
    keys: RawVec<u64>,
    /// Virtual page address per slot.
    vals: RawVec<u64>,
    len: usize,
}

impl Default for FrameTable {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(frame: u64) -> u64 {
    frame.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_right(29)
}

impl FrameTable {
    /// An empty table.
    pub const fn new() -> FrameTable {
        FrameTable {
            keys: RawVec::new(),
            vals: RawVec::new(),
            len: 0,
        }
    }

    /// Empty the table and size it for `entries` insertions.
    pub fn reset(&mut self, entries: usize) {
        let cap = (entries.max(8) * 2).next_power_of_two();
        if self.keys.len() != cap {
            self.keys.clear();
            self.vals.clear();
            self.keys.reserve(cap);
            self.vals.reserve(cap);
            for _ in 0..cap {
                self.keys.push(0);
                self.vals.push(0);
            }
        } else {
            self.keys.as_mut_slice().fill(0);
        }
        self.len = 0;
    }

    /// Insert `frame -> page`. The table must have been sized by `reset`.
    pub fn insert(&mut self, frame: u64, page: u64) {
        assert!(self.len * 2 < self.keys.len(), "FrameTable sized too small");
        let mask = self.keys.len() as u64 - 1;
        let mut i = hash(frame) & mask;
        while self.keys[i as usize] != 0 {
            i = (i + 1) & mask;
        }
        self.keys[i as usize] = frame + 1;
        self.vals[i as usize] = page;
        self.len += 1;
    }

    /// Call `f` with every page mapped to `frame`; returns how many.
    pub fn lookup(&self, frame: u64, f: &mut dyn FnMut(u64)) -> usize {
        if self.keys.is_empty() {
            return 0;
        }
        let mask = self.keys.len() as u64 - 1;
        let mut i = hash(frame) & mask;
        let mut n = 0;
        loop {
            let k = self.keys[i as usize];
            if k == 0 {
                return n;
            }
            if k == frame + 1 {
                f(self.vals[i as usize]);
                n += 1;
            }
            i = (i + 1) & mask;
        }
    }

    /// Entries inserted since the last reset.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multimap_finds_every_page_of_a_frame() {
        let mut t = FrameTable::new();
        t.reset(1000);
        for i in 0..1000u64 {
            t.insert(i % 500, i * 4096);
        }
        let mut got = Vec::new();
        assert_eq!(t.lookup(7, &mut |p| got.push(p)), 2);
        got.sort();
        assert_eq!(got, vec![7 * 4096, 507 * 4096]);
        assert_eq!(t.lookup(600, &mut |_| ()), 0);
        t.reset(1000);
        assert_eq!(t.lookup(7, &mut |_| ()), 0);
    }

    #[test]
    fn gfn_round_trip() {
        for frame in [1, 12345, SYNTHETIC_FRAME_BASE, SYNTHETIC_FRAME_BASE + 77] {
            let g = gpa_to_gfn(frame * PAGE_SIZE as u64);
            assert_eq!(gfn_to_frame(g), frame);
        }
        assert_eq!(gpa_to_gfn(SYNTHETIC_FRAME_BASE * 4096).slot, SYNTHETIC_SLOT);
        assert_eq!(gpa_to_gfn(4096).slot, REAL_SLOT);
    }
}
