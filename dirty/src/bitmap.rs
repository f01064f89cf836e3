//! An exact, atomic one-bit-per-page dirty bitmap in raw mmap.
//!
//! Used by the sources that learn of writes one page at a time (`uffd`,
//! `mprotect`): the fault path sets a bit with one atomic `fetch_or`, the
//! harvest swaps whole words to zero and turns the set bits into page runs.
//! Bits are exact (no hashing, unlike bdwgc's page hash table).
//!
//! Owns: `PageBitmap`: setting bits from fault paths and draining them into
//! page runs. Must not touch: protection or registration (the sources do
//! it), tracked-range tables (`ranges.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{PageRange, PAGE_SIZE};

/// One bit per page of a [`PageRange`]: a `Copy` handle to an mmap'ed
/// array of words, freed explicitly with [`PageBitmap::free`] (owners keep
/// it in raw-mmap tables, where `Drop` types cannot go).
#[derive(Clone, Copy)]
pub(crate) struct PageBitmap {
    words: *const AtomicU64,
    word_count: usize,
    pages: usize,
}

// SAFETY: the words are only accessed through atomics.
unsafe impl Send for PageBitmap {}
// SAFETY: as above: every shared access is an atomic operation.
unsafe impl Sync for PageBitmap {}

fn bitmap_bytes(word_count: usize) -> usize {
    (word_count * 8).max(1).next_multiple_of(PAGE_SIZE)
}

impl PageBitmap {
    /// A bitmap of `pages` bits, all set (`dirty`) or all clear. Maps
    /// fresh memory (never the global allocator); aborts if the kernel
    /// refuses it, as [`crate::raw_vec::RawVec`] does.
    pub(crate) fn new(pages: usize, dirty: bool) -> PageBitmap {
        let word_count = pages.div_ceil(64);
        // SAFETY: an anonymous private mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bitmap_bytes(word_count),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            eprintln!("oohgc-dirty: cannot map a dirty bitmap of {pages} pages");
            std::process::abort();
        }
        let map = PageBitmap {
            words: p as *const AtomicU64,
            word_count,
            pages,
        };
        if dirty {
            map.set_all();
        }
        map
    }

    /// Unmap the words.
    ///
    /// # Safety
    /// No copy of this handle may be used afterwards.
    pub(crate) unsafe fn free(self) {
        // SAFETY: unmapping the mapping made in `new` (caller: no more uses).
        unsafe {
            libc::munmap(
                self.words as *mut libc::c_void,
                bitmap_bytes(self.word_count),
            )
        };
    }

    /// The address of the first word, for lock-free readers (signal handlers).
    #[cfg_attr(not(feature = "mprotect"), allow(dead_code))]
    pub(crate) fn words_ptr(&self) -> *const AtomicU64 {
        self.words
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.word_count);
        // SAFETY: i < word_count and the mapping lives until `free`.
        unsafe { &*self.words.add(i) }
    }

    /// Set bit `page`; true if it was clear before.
    #[cfg_attr(not(feature = "uffd"), allow(dead_code))]
    pub(crate) fn set(&self, page: usize) -> bool {
        debug_assert!(page < self.pages);
        set_bit(self.words, page)
    }

    /// Set every bit.
    pub(crate) fn set_all(&self) {
        for i in 0..self.word_count {
            self.word(i)
                .store(mask_for_word(i, self.pages), Ordering::Release);
        }
    }

    /// Clear every bit.
    pub(crate) fn clear_all(&self) {
        for i in 0..self.word_count {
            self.word(i).store(0, Ordering::Release);
        }
    }

    /// Atomically clear the bits and report each run of set bits as a
    /// range of pages starting at `base`.
    pub(crate) fn drain_runs(&self, base: usize, sink: &mut dyn FnMut(PageRange)) {
        let mut run_start: Option<usize> = None;
        let mut run_end = 0usize;
        for i in 0..self.word_count {
            if self.word(i).load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = self.word(i).swap(0, Ordering::AcqRel);
            while bits != 0 {
                let page = i * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                match run_start {
                    Some(_) if page == run_end => run_end += 1,
                    Some(s) => {
                        sink(pages_range(base, s, run_end));
                        run_start = Some(page);
                        run_end = page + 1;
                    }
                    None => {
                        run_start = Some(page);
                        run_end = page + 1;
                    }
                }
            }
        }
        if let Some(s) = run_start {
            sink(pages_range(base, s, run_end));
        }
    }
}

/// Set bit `page` of the bitmap at `words`; true if it was clear before.
/// Async-signal-safe (one atomic instruction).
#[cfg_attr(not(feature = "mprotect"), allow(dead_code))]
pub(crate) fn set_bit(words: *const AtomicU64, page: usize) -> bool {
    let bit = 1u64 << (page % 64);
    // SAFETY: callers pass a page index inside the bitmap's range, and the
    // bitmap outlives every caller (see the owners' teardown protocols).
    let word = unsafe { &*words.add(page / 64) };
    word.fetch_or(bit, Ordering::AcqRel) & bit == 0
}

fn mask_for_word(i: usize, pages: usize) -> u64 {
    let remaining = pages - i * 64;
    if remaining >= 64 {
        u64::MAX
    } else {
        (1u64 << remaining) - 1
    }
}

fn pages_range(base: usize, first: usize, end: usize) -> PageRange {
    PageRange {
        start: base + first * PAGE_SIZE,
        len: (end - first) * PAGE_SIZE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_across_words() {
        let map = PageBitmap::new(200, false);
        for p in [3, 62, 63, 64, 65, 130, 199] {
            assert!(map.set(p));
        }
        assert!(!map.set(3));
        let mut runs = Vec::new();
        map.drain_runs(0x10000, &mut |r| runs.push((r.start, r.len / PAGE_SIZE)));
        assert_eq!(
            runs,
            vec![
                (0x10000 + 3 * PAGE_SIZE, 1),
                (0x10000 + 62 * PAGE_SIZE, 4),
                (0x10000 + 130 * PAGE_SIZE, 1),
                (0x10000 + 199 * PAGE_SIZE, 1)
            ]
        );
        let mut again = 0;
        map.drain_runs(0, &mut |_| again += 1);
        assert_eq!(again, 0, "drain must clear the bits");
        map.set_all();
        let mut pages = 0;
        map.drain_runs(0, &mut |r| pages += r.pages());
        assert_eq!(pages, 200);
        // SAFETY: no further use of `map`.
        unsafe { map.free() };
    }
}
