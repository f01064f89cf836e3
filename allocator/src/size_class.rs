//! Size classes for small objects (16 B ..= 32 KiB) and the span size used
//! for each class.
//!
//! Classes: every multiple of 16 up to 128 B, then four classes per power of
//! two (160, 192, 224, 256, 320, ..., 32768). Internal fragmentation is
//! therefore below 16 B for requests up to 128 B and below 25 % of the request
//! above it. A span of class `s` is `max(64 KiB, next_pow2(8 * s))` bytes, so it
//! holds at least 8 objects and its unused tail is below 1/8 of the span.
//! Larger requests are large objects: their own run of pages (waste < 4 KiB,
//! i.e. < 12.5 % of a request above 32 KiB).

use crate::config::{GRANULE, PAGE_SIZE};

/// Largest small-object size; bigger requests get a page run of their own.
pub const MAX_SMALL_SIZE: usize = 32 * 1024;
/// Number of small size classes.
pub const NUM_CLASSES: usize = 8 + 4 * 8;

const fn class_size_table() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < 8 {
        t[i] = (16 * (i + 1)) as u32;
        i += 1;
    }
    let mut base = 128usize;
    while i < NUM_CLASSES {
        let step = base / 4;
        let mut k = 1;
        while k <= 4 {
            t[i] = (base + k * step) as u32;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    t
}

/// Object size of each class, in bytes.
pub static CLASS_SIZE: [u32; NUM_CLASSES] = class_size_table();

const LOOKUP_LEN: usize = MAX_SMALL_SIZE / GRANULE + 1;

const fn lookup_table() -> [u8; LOOKUP_LEN] {
    let sizes = class_size_table();
    let mut t = [0u8; LOOKUP_LEN];
    let mut g = 0;
    let mut c = 0;
    while g < LOOKUP_LEN {
        let size = if g == 0 { 1 } else { g * GRANULE };
        while (sizes[c] as usize) < size {
            c += 1;
        }
        t[g] = c as u8;
        g += 1;
    }
    t
}

/// Class of each request size in granules (`(size + 15) / 16`).
static CLASS_OF_GRANULES: [u8; LOOKUP_LEN] = lookup_table();

/// The class for `size <= MAX_SMALL_SIZE` bytes (size 0 maps to the 16 B class).
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    debug_assert!(size <= MAX_SMALL_SIZE);
    CLASS_OF_GRANULES[size.div_ceil(GRANULE)] as usize
}

/// The smallest class holding `size` bytes whose objects are all aligned to
/// `align` (a power of two), or None when only a large object will do.
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE {
        return None;
    }
    // Spans start on a page, so an object is aligned to `align` when the
    // class size is a multiple of it (and align <= PAGE_SIZE).
    if align > PAGE_SIZE {
        return None;
    }
    (class_of(size)..NUM_CLASSES).find(|&c| (CLASS_SIZE[c] as usize).is_multiple_of(align.max(1)))
}

/// Pages in a span of class `class`.
pub fn span_pages(class: usize) -> usize {
    let size = CLASS_SIZE[class] as usize;
    let bytes = (8 * size).next_power_of_two().max(64 * 1024);
    bytes / PAGE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_increase_and_cover_every_size() {
        for w in CLASS_SIZE.windows(2) {
            assert!(w[0] < w[1]);
        }
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_SMALL_SIZE);
        for size in 0..=MAX_SMALL_SIZE {
            let c = class_of(size);
            let s = CLASS_SIZE[c] as usize;
            assert!(s >= size.max(1), "size {size} class size {s}");
            assert_eq!(s % GRANULE, 0);
            if c > 0 {
                assert!(
                    (CLASS_SIZE[c - 1] as usize) < size,
                    "size {size} not in smallest class"
                );
            }
            // Documented fragmentation bound.
            if size > 128 {
                assert!((s - size) * 4 < size, "size {size} wastes {}", s - size);
            } else {
                assert!(s - size.max(1) < 16);
            }
        }
    }

    #[test]
    fn spans_hold_at_least_eight_objects_with_small_tail() {
        for (c, &s) in CLASS_SIZE.iter().enumerate() {
            let bytes = span_pages(c) * PAGE_SIZE;
            let s = s as usize;
            assert!(bytes / s >= 8);
            assert!((bytes % s) * 8 <= bytes);
            // side tables give each page 256 slot bytes
            assert!(bytes / s <= span_pages(c) * 256);
        }
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        for align in [32usize, 64, 128, 256, 512, 1024, 2048, 4096] {
            for size in [1usize, 17, 100, 1000, 4000, 5000, 20000] {
                if let Some(c) = class_for(size, align) {
                    assert_eq!(CLASS_SIZE[c] as usize % align, 0);
                    assert!(CLASS_SIZE[c] as usize >= size);
                }
            }
        }
        assert!(class_for(10, 8192).is_none());
        assert!(class_for(MAX_SMALL_SIZE + 1, 16).is_none());
    }
}
