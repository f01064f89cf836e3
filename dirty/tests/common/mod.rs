//! Helpers shared by the integration tests: anonymous mappings, page
//! writes, and collecting a harvest into a sorted page list.
#![allow(dead_code)]

use std::collections::BTreeSet;

use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};

/// An anonymous private read-write mapping, unmapped on drop.
pub struct Mapping {
    /// The mapped range.
    pub range: PageRange,
}

impl Mapping {
    /// Map `pages` pages (MAP_NORESERVE, untouched).
    pub fn new(pages: usize) -> Mapping {
        // SAFETY: an anonymous private mapping with no hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                pages * PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {pages} pages failed");
        Mapping {
            range: PageRange::new(p as usize, pages * PAGE_SIZE).unwrap(),
        }
    }

    /// Address of page `i`.
    pub fn page(&self, i: usize) -> usize {
        assert!(i < self.range.pages());
        self.range.start + i * PAGE_SIZE
    }

    /// Write one byte (volatile) into page `i`.
    pub fn write(&self, i: usize, value: u8) {
        write_byte(self.page(i) + (i * 7) % PAGE_SIZE, value);
    }

    /// Sub-range of pages `first..first+count`.
    pub fn sub(&self, first: usize, count: usize) -> PageRange {
        PageRange::new(self.page(first), count * PAGE_SIZE).unwrap()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.range.start as *mut _, self.range.len) };
    }
}

/// A volatile byte store.
pub fn write_byte(addr: usize, value: u8) {
    // SAFETY: tests only pass addresses inside their own writable mappings.
    unsafe { std::ptr::write_volatile(addr as *mut u8, value) };
}

/// Harvest into a set of page addresses.
pub fn harvest_pages(source: &dyn DirtySource) -> BTreeSet<usize> {
    let mut pages = BTreeSet::new();
    source
        .harvest(&mut |r| {
            assert_eq!(r.start % PAGE_SIZE, 0);
            assert_eq!(r.len % PAGE_SIZE, 0);
            for p in 0..r.pages() {
                pages.insert(r.start + p * PAGE_SIZE);
            }
        })
        .expect("harvest");
    pages
}

/// Pages of `m` with the given indices, as addresses.
pub fn addrs(m: &Mapping, indices: &[usize]) -> BTreeSet<usize> {
    indices.iter().map(|&i| m.page(i)).collect()
}

/// The sources that work on this machine, by name.
pub const WORKING_SOURCES: &[&str] = &["pagemap-scan", "uffd", "mprotect", "card", "none"];

/// A write as a program using `source` must make it: `card` needs the
/// barrier after the store.
pub fn tracked_write(source: &dyn DirtySource, addr: usize, value: u8) {
    write_byte(addr, value);
    if source.name() == "card" {
        oohgc_dirty::card::write_barrier(addr);
    }
}

/// Whether `source` reports exactly the written pages (everything but `none`).
pub fn is_exact(source: &dyn DirtySource) -> bool {
    source.name() != "none"
}

/// An anonymous private mapping of `pages` pages owned by the test (which
/// may unmap it), without transparent huge pages (stable
/// frames for the reverse-map tests); every page written once when `touch`.
pub fn map_pages_with(pages: usize, touch: bool) -> usize {
    let len = pages * PAGE_SIZE;
    // SAFETY: a fresh anonymous mapping owned by the test.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: advice on our own mapping.
    unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
    if touch {
        for i in 0..pages {
            // SAFETY: inside the mapping.
            unsafe { (p as *mut u8).add(i * PAGE_SIZE).write_volatile(1) };
        }
    }
    p as usize
}

/// [`map_pages_with`], every page touched.
pub fn map_pages(pages: usize) -> usize {
    map_pages_with(pages, true)
}
