//! A tkrzw-like in-memory key-value store: a hash table of fixed-size
//! records over one region, filled once, then updated at random keys (the
//! OoH paper checkpointed tkrzw under CRIU).
//!
//! A record is 64 bytes (one cache line): key, version, six words of
//! value. Key `k` lives in slot `(k * ODD) mod n` (n a power of two, so
//! the map is a permutation: a perfect hash). An update rewrites the
//! version and the value of one record.

use super::region::Region;
use crate::rng::{mix, Rng};
use oohgc_checkpoint::PAGE_SIZE;

/// Bytes of one record.
pub const RECORD: usize = 64;
/// Records per page.
pub const PER_PAGE: usize = PAGE_SIZE / RECORD;
const ODD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The store, over a region it does not own.
pub struct Kv<'r> {
    region: &'r Region,
    slots: u64,
    rng: Rng,
}

impl<'r> Kv<'r> {
    /// A store over `region`, filled with every key (not timed).
    pub fn fill(region: &'r Region, seed: u64) -> Kv<'r> {
        let mut kv = Kv::over(region);
        kv.rng = Rng::new(seed);
        for k in 0..kv.slots {
            let s = kv.slot_of(k);
            kv.write(s, 0, k);
            kv.word(s, 0, k);
        }
        kv
    }

    /// A store over a `region` that [`Kv::fill`] filled, with its own
    /// random stream.
    pub fn attach(region: &'r Region, seed: u64) -> Kv<'r> {
        let mut kv = Kv::over(region);
        kv.rng = Rng::new(seed);
        kv
    }

    fn over(region: &'r Region) -> Kv<'r> {
        let slots = (region.len() / RECORD).next_power_of_two() as u64;
        let slots = if slots as usize * RECORD > region.len() {
            slots / 2
        } else {
            slots
        };
        Kv {
            region,
            slots,
            rng: Rng::new(0),
        }
    }

    /// Slots (= keys).
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Pages the table spans.
    pub fn pages(&self) -> usize {
        self.slots as usize / PER_PAGE
    }

    fn slot_of(&self, key: u64) -> u64 {
        key.wrapping_mul(ODD) & (self.slots - 1)
    }

    fn rec(&self, slot: u64) -> *mut u64 {
        debug_assert!(slot < self.slots);
        self.region.ptr().wrapping_add(slot as usize * RECORD) as *mut u64
    }

    fn word(&self, slot: u64, w: usize, v: u64) {
        // SAFETY: slot < slots, so the record lies in the region; w < 8.
        unsafe { self.rec(slot).add(w).write_volatile(v) }
    }

    /// Write version `version` and its value words into `slot`.
    #[inline]
    fn write(&self, slot: u64, version: u64, key: u64) {
        self.word(slot, 1, version);
        for w in 2..8 {
            self.word(slot, w, mix(key, version ^ w as u64));
        }
    }

    /// One update of a random key.
    #[inline]
    pub fn update(&mut self, version: u64) {
        let key = self.rng.below(self.slots);
        self.write(self.slot_of(key), version, key);
    }

    /// One update of a random record of page `page`.
    #[inline]
    pub fn update_in_page(&mut self, page: usize, version: u64) {
        let slot = (page * PER_PAGE) as u64 + self.rng.below(PER_PAGE as u64);
        // The key stored in that slot.
        // SAFETY: slot < slots; word 0 holds the key.
        let key = unsafe { self.rec(slot).read_volatile() };
        self.write(slot, version, key);
    }

    /// A random page of the table.
    pub fn random_page(&mut self) -> usize {
        self.rng.below(self.pages() as u64) as usize
    }

    /// A checksum over every record (equal across dirty sources).
    pub fn checksum(&self) -> u64 {
        let mut c = 0;
        for s in 0..self.slots {
            for w in 0..8 {
                // SAFETY: in bounds, as in `word`.
                c = mix(c, unsafe { self.rec(s).add(w).read_volatile() });
            }
        }
        c
    }
}
