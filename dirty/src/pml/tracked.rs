//! A tracked range's per-page model state, and the model's tunables.
//!
//! Owns: [`TrackedRange`] (the pages, their dirty-flag words, the SPML
//! walk's last-seen frames, the synthetic frames, the engine's protection
//! state) and [`PmlConfig`]. Must not touch: what the flag words mean
//! (the guest driver's layout), the hardware, the kernel. Re-exported
//! from [`super::model`], where they used to live.

use crate::contract::{PageRange, PAGE_SIZE};
use crate::raw_vec::RawVec;

/// Most ranges a source tracks at once.
pub const MAX_TRACKED_RANGES: usize = 4096;

/// A tracked range and its per-page model state.
pub struct TrackedRange {
    /// The pages.
    pub range: PageRange,
    /// The dirty flags, `GuestDriver::flag_words` words in the driver's
    /// layout; all zero when every flag is clear. Only the driver reads
    /// or sets them.
    pub flags: RawVec<u64>,
    /// The frame the last reverse-map walk saw per page (drivers that log
    /// frames; empty otherwise).
    pub walked_frames: RawVec<u64>,
    /// First synthetic frame of this range.
    pub synthetic_base: u64,
    /// Tracked since the last `arm`/`harvest`: every page counts as dirty.
    pub fresh: bool,
    /// The engine has write-protected every page of the range (unpopulated
    /// ones included) since it was tracked or last unprotected.
    pub protection_installed: bool,
}

impl TrackedRange {
    /// The synthetic frame of page `i`.
    pub fn synthetic_frame(&self, i: usize) -> u64 {
        self.synthetic_base + i as u64
    }

    /// The page whose synthetic frame is `frame`, if it is in this range.
    pub fn page_of_synthetic(&self, frame: u64) -> Option<u64> {
        let i = frame.checked_sub(self.synthetic_base)?;
        if (i as usize) < self.range.pages() {
            Some((self.range.start + i as usize * PAGE_SIZE) as u64)
        } else {
            None
        }
    }

    pub(crate) fn index_of(&self, va: u64) -> Option<usize> {
        let va = va as usize;
        if self.range.contains(va) {
            Some((va - self.range.start) / PAGE_SIZE)
        } else {
            None
        }
    }

    pub(crate) fn push_pages(&self, out: &mut RawVec<u64>) {
        for i in 0..self.range.pages() {
            out.push((self.range.start + i * PAGE_SIZE) as u64);
        }
    }
}

/// Tunables of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmlConfig {
    /// SPML ring size in entries (power of two, > 576).
    pub ring_entries: usize,
    /// SPML: the guest ignores virtual IRQs and drains only at harvest.
    pub guest_lags: bool,
}

impl Default for PmlConfig {
    fn default() -> Self {
        PmlConfig {
            ring_entries: super::ring::DEFAULT_RING_ENTRIES,
            guest_lags: false,
        }
    }
}
