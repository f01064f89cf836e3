//! The marked-base cache: one bit per 16-byte heap granule, set when the
//! collector finds the object starting at that granule marked during the
//! current cycle.
//!
//! Why: telling whether a pointer's target is already marked costs three
//! dependent side-table reads (page map, span record, mark byte), and on a
//! large heap each one misses the cache. Re-scanning dirty pages and
//! marking a graph spend most of their time on pointers to objects that
//! are already marked. This bitmap is 1/128 of the heap (40 MiB of heap:
//! 320 KiB, which stays in L2), and most pointers point at an object's
//! base, so one read answers "already marked" for them.
//!
//! It is only a cache of positive answers: a set bit means "the object
//! whose base is here is marked" (a missing bit only sends the lookup the
//! long way). That holds because the cache is emptied when a cycle's
//! marking starts, after `clear_marks`, and marks are not cleared again
//! until the next cycle: a slot freed after it was marked keeps its mark,
//! and an object allocated in it before the cycle ends is allocated black.
//! Only markers write it (one cycle at a time, under the cycle lock; the
//! parallel drain's helper shares it). Bits are set with a relaxed load
//! and store: two markers racing on one word may lose one of the two bits,
//! which only sends a later lookup the long way; nothing clears a bit
//! while markers run, so a lost update can never bring back a stale one.
//!
//! Clearing covers the bitmap up to the heap's extent (every object ever
//! allocated lies below it), 1/128 of the heap: an eighth of what
//! `clear_marks` already writes per cycle. Tracking the written range on
//! every insert instead cost more in the marking loop than that memset.

use std::sync::atomic::{AtomicU64, Ordering};

/// Heap bytes per bit (the allocator's granule: no two objects start in one).
const GRANULE_SHIFT: u32 = 4;

/// The bitmap and the range of its words written since the last clear.
pub(crate) struct MarkCache {
    bits: *mut AtomicU64,
    words: usize,
    lo: usize,
    hi: usize,
}

// SAFETY: the bitmap is owned by the cache and only accessed through
// atomics; see the module documentation for who writes it.
unsafe impl Send for MarkCache {}
// SAFETY: as above.
unsafe impl Sync for MarkCache {}

impl MarkCache {
    /// A cache for heap addresses `[lo, hi)`, or None if the address space
    /// for it cannot be reserved. (An empty range, before the heap starts,
    /// still gets a word: no address is ever looked up in it.)
    pub(crate) fn new(lo: usize, hi: usize) -> Option<MarkCache> {
        let words = (hi.saturating_sub(lo) >> GRANULE_SHIFT).div_ceil(64).max(1);
        let p = crate::raw_memory::map_noreserve(words * 8)?;
        Some(MarkCache {
            bits: p.cast(),
            words,
            lo,
            hi,
        })
    }

    /// Whether this is the cache for heap addresses `[lo, hi)`.
    pub(crate) fn covers(&self, lo: usize, hi: usize) -> bool {
        (self.lo, self.hi) == (lo, hi)
    }

    /// The word and bit of heap address `addr`.
    ///
    /// # Safety
    /// `addr` lies in the `[lo, hi)` the cache was made for.
    #[inline(always)]
    unsafe fn locate(&self, addr: usize) -> (&AtomicU64, u64) {
        let g = (addr - self.lo) >> GRANULE_SHIFT;
        debug_assert!(g / 64 < self.words);
        // SAFETY: per the contract, g / 64 < words: inside the mapping.
        (unsafe { &*self.bits.add(g / 64) }, 1u64 << (g % 64))
    }

    /// Whether `addr` lies in the first granule of an object recorded as
    /// marked.
    ///
    /// # Safety
    /// `addr` lies in the `[lo, hi)` the cache was made for.
    #[inline(always)]
    pub(crate) unsafe fn contains_in_heap(&self, addr: usize) -> bool {
        // SAFETY: forwarded contract.
        let (w, bit) = unsafe { self.locate(addr) };
        w.load(Ordering::Relaxed) & bit != 0
    }

    /// Record that the object whose base is `base` is marked.
    ///
    /// # Safety
    /// `base` lies in the `[lo, hi)` the cache was made for.
    #[inline(always)]
    pub(crate) unsafe fn insert_in_heap(&self, base: usize) {
        // SAFETY: forwarded contract.
        let (w, bit) = unsafe { self.locate(base) };
        w.store(w.load(Ordering::Relaxed) | bit, Ordering::Relaxed);
    }

    /// Forget everything (at the start of a cycle's marking, no marker
    /// running). `extent` is the heap's current extent: every base ever
    /// inserted lies below it, since the extent only grows.
    pub(crate) fn clear(&mut self, extent: usize) {
        let g = extent.saturating_sub(self.lo) >> GRANULE_SHIFT;
        let words = g.div_ceil(64).min(self.words);
        // SAFETY: words <= self.words, inside the mapping; `&mut self`
        // means no marker is using it.
        unsafe { std::ptr::write_bytes(self.bits, 0, words) };
    }
}

impl Drop for MarkCache {
    fn drop(&mut self) {
        // SAFETY: our own mapping, dropped with the cache.
        unsafe { crate::raw_memory::unmap(self.bits.cast(), self.words * 8) };
    }
}
