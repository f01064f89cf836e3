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

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Heap bytes per bit (the allocator's granule: no two objects start in one).
const GRANULE_SHIFT: u32 = 4;

/// The bitmap and the range of its words written since the last clear.
pub(crate) struct MarkCache {
    bits: *mut AtomicU64,
    words: usize,
    lo: usize,
    touched_lo: AtomicUsize,
    touched_hi: AtomicUsize,
}

// SAFETY: the bitmap is owned by the cache and only accessed through
// atomics; see the module documentation for who writes it.
unsafe impl Send for MarkCache {}
// SAFETY: as above.
unsafe impl Sync for MarkCache {}

impl MarkCache {
    /// A cache for heap addresses `[lo, hi)`, or None if the address space
    /// for it cannot be reserved (marking then goes the long way).
    pub(crate) fn new(lo: usize, hi: usize) -> Option<MarkCache> {
        let words = (hi.saturating_sub(lo) >> GRANULE_SHIFT).div_ceil(64);
        if words == 0 {
            return None;
        }
        let p = crate::raw_memory::map_noreserve(words * 8)?;
        Some(MarkCache {
            bits: p.cast(),
            words,
            lo,
            touched_lo: AtomicUsize::new(usize::MAX),
            touched_hi: AtomicUsize::new(0),
        })
    }

    /// The word and bit of heap address `addr`, if it is covered.
    #[inline(always)]
    fn locate(&self, addr: usize) -> Option<(&AtomicU64, u64)> {
        let g = addr.wrapping_sub(self.lo) >> GRANULE_SHIFT;
        let w = g / 64;
        if w >= self.words {
            return None;
        }
        // SAFETY: w < words, inside the mapping.
        Some((unsafe { &*self.bits.add(w) }, 1u64 << (g % 64)))
    }

    /// Whether `addr` lies in the first granule of an object recorded as
    /// marked.
    #[inline(always)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.locate(addr)
            .is_some_and(|(w, bit)| w.load(Ordering::Relaxed) & bit != 0)
    }

    /// Record that the object whose base is `base` is marked.
    #[inline(always)]
    pub(crate) fn insert(&self, base: usize) {
        let w_index = base.wrapping_sub(self.lo) >> GRANULE_SHIFT >> 6;
        if let Some((w, bit)) = self.locate(base) {
            w.store(w.load(Ordering::Relaxed) | bit, Ordering::Relaxed);
            if w_index < self.touched_lo.load(Ordering::Relaxed) {
                self.touched_lo.fetch_min(w_index, Ordering::Relaxed);
            }
            if w_index >= self.touched_hi.load(Ordering::Relaxed) {
                self.touched_hi.fetch_max(w_index + 1, Ordering::Relaxed);
            }
        }
    }

    /// Forget everything (at the start of a cycle's marking, no marker
    /// running).
    pub(crate) fn clear(&mut self) {
        let (lo, hi) = (*self.touched_lo.get_mut(), *self.touched_hi.get_mut());
        if lo < hi {
            // SAFETY: the touched words lie inside the mapping; `&mut self`
            // means no marker is using it.
            unsafe { std::ptr::write_bytes(self.bits.add(lo), 0, hi - lo) };
        }
        *self.touched_lo.get_mut() = usize::MAX;
        *self.touched_hi.get_mut() = 0;
    }
}

impl Drop for MarkCache {
    fn drop(&mut self) {
        // SAFETY: our own mapping, dropped with the cache.
        unsafe { crate::raw_memory::unmap(self.bits.cast(), self.words * 8) };
    }
}
