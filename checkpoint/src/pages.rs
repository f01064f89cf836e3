//! Raw page access and per-range page bitmaps.
//!
//! The checkpointer reads and writes tracked memory through raw pointers:
//! the memory belongs to the program (other threads write it between
//! dumps), so no Rust reference to it is ever formed. Everything here that
//! runs during a freeze is allocation-free.

use oohgc_dirty::{PageRange, PAGE_SIZE};

/// One bit per page of a range, sized once (at `track`) so that setting
/// bits during a freeze never allocates.
#[derive(Clone, Debug)]
pub struct PageBits {
    words: Vec<u64>,
    pages: usize,
}

impl PageBits {
    /// All clear, for `pages` pages.
    pub fn new(pages: usize) -> PageBits {
        PageBits {
            words: vec![0; pages.div_ceil(64)],
            pages,
        }
    }
    /// Number of pages covered.
    pub fn pages(&self) -> usize {
        self.pages
    }
    /// Set page `i`.
    #[inline]
    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
    /// Set pages `from..to`.
    pub fn set_span(&mut self, from: usize, to: usize) {
        let mut i = from;
        while i < to {
            if i.is_multiple_of(64) && i + 64 <= to {
                self.words[i / 64] = u64::MAX;
                i += 64;
            } else {
                self.set(i);
                i += 1;
            }
        }
    }
    /// Set every page.
    pub fn set_all(&mut self) {
        self.set_span(0, self.pages);
    }
    /// Whether page `i` is set.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
    /// Clear every page.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }
    /// Pages set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// Whether every page is set.
    pub fn all(&self) -> bool {
        self.count() == self.pages
    }
    /// Call `f` with the index of every set page, ascending.
    #[inline]
    pub fn for_each_set(&self, mut f: impl FnMut(usize)) {
        for (w, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                f(w * 64 + b);
                bits &= bits - 1;
            }
        }
    }
    /// OR `other` (same size) into `self`.
    pub fn or(&mut self, other: &PageBits) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }
}

/// A page of zeroes to compare against.
static ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// Whether the page at `addr` reads as all zeroes.
///
/// # Safety
/// `addr` must be the start of a mapped, readable page.
#[inline]
pub unsafe fn page_is_zero(addr: usize) -> bool {
    // SAFETY: the caller guarantees one readable page at `addr`; memcmp
    // reads it as bytes, which every bit pattern is.
    unsafe {
        libc::memcmp(
            addr as *const libc::c_void,
            ZERO_PAGE.as_ptr() as *const libc::c_void,
            PAGE_SIZE,
        ) == 0
    }
}

/// Whether `bytes` (one page) is all zeroes.
pub fn bytes_are_zero(bytes: &[u8]) -> bool {
    bytes == &ZERO_PAGE[..bytes.len().min(PAGE_SIZE)]
}

/// Copy one page from `from` to `to`.
///
/// # Safety
/// `from` must be a readable page and `to` a writable page; they must not
/// overlap.
#[inline]
pub unsafe fn copy_page(from: usize, to: usize) {
    // SAFETY: as the caller guarantees; a byte copy, no references formed.
    unsafe { std::ptr::copy_nonoverlapping(from as *const u8, to as *mut u8, PAGE_SIZE) }
}

/// Fill one page at `to` with zeroes.
///
/// # Safety
/// `to` must be a writable page.
#[inline]
pub unsafe fn zero_page(to: usize) {
    // SAFETY: as the caller guarantees.
    unsafe { std::ptr::write_bytes(to as *mut u8, 0, PAGE_SIZE) }
}

/// Whether every page of `range` is mapped in this process (`mincore`
/// answers `ENOMEM` for any unmapped page).
pub fn is_mapped(range: PageRange) -> bool {
    const CHUNK: usize = 4096;
    let mut vec = [0u8; CHUNK];
    let mut addr = range.start;
    while addr < range.end() {
        let len = (range.end() - addr).min(CHUNK * PAGE_SIZE);
        // SAFETY: mincore only reads the page tables; `vec` has room for
        // one byte per page of `len` (at most CHUNK pages).
        let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        if rc != 0 {
            return false;
        }
        addr += len;
    }
    true
}

/// Pages asked per `mincore` call while staging (the buffer is allocated
/// beforehand).
pub const RESIDENCY_CHUNK: usize = 4096;

/// Whether any swap area is active (`/proc/swaps` lists one). Without
/// swap, a private anonymous page that `mincore` does not report resident
/// was never populated (or was discarded, or holds a userfaultfd marker):
/// it reads as zero. With swap it may be on disk, and must be read.
pub fn swap_active() -> bool {
    match std::fs::read_to_string("/proc/swaps") {
        Ok(s) => s.lines().count() > 1,
        Err(_) => true,
    }
}

/// `mincore` of `pages` pages from `addr` into `vec`; false if it failed.
pub fn residency(addr: usize, pages: usize, vec: &mut [u8]) -> bool {
    assert!(pages <= vec.len());
    // SAFETY: mincore reads only page tables and writes one byte per page
    // into `vec`, which has room for `pages`.
    unsafe {
        libc::mincore(
            addr as *mut libc::c_void,
            pages * PAGE_SIZE,
            vec.as_mut_ptr(),
        ) == 0
    }
}

/// Whether every mapping over `range` is private anonymous memory (no file
/// behind it), from `/proc/self/maps`. Only there is a page that was never
/// populated known to read as zero without reading it.
pub fn is_private_anonymous(range: PageRange) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let mut covered = range.start;
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(span), Some(perms), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return false;
        };
        let path = f.next().unwrap_or("");
        let Some((a, b)) = span.split_once('-') else {
            return false;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return false;
        };
        if b <= range.start || a >= range.end() {
            continue;
        }
        let anonymous = inode == "0"
            && perms.as_bytes().get(3) == Some(&b'p')
            && (path.is_empty() || path == "[heap]" || path == "[stack]");
        if !anonymous || a > covered {
            return false;
        }
        covered = b;
    }
    covered >= range.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_spans_and_iteration() {
        let mut b = PageBits::new(200);
        b.set_span(3, 140);
        b.set(199);
        assert_eq!(b.count(), 138);
        assert!(!b.get(2) && b.get(3) && b.get(139) && !b.get(140) && b.get(199));
        let mut seen = Vec::new();
        b.for_each_set(|i| seen.push(i));
        assert_eq!(seen.len(), 138);
        assert_eq!(seen[0], 3);
        assert_eq!(*seen.last().unwrap(), 199);
        assert!(!b.all());
        b.set_all();
        assert!(b.all());
        b.clear();
        assert_eq!(b.count(), 0);
    }

    #[test]
    fn zero_detection_and_mapping() {
        let page = vec![0u8; PAGE_SIZE];
        assert!(bytes_are_zero(&page));
        let mut other = page.clone();
        other[PAGE_SIZE - 1] = 1;
        assert!(!bytes_are_zero(&other));
        let stack_page = &ZERO_PAGE as *const _ as usize & !(PAGE_SIZE - 1);
        assert!(is_mapped(PageRange::new(stack_page, PAGE_SIZE).unwrap()));
        assert!(!is_mapped(PageRange::new(PAGE_SIZE, PAGE_SIZE).unwrap()));
    }
}
