//! Helpers shared by the checkpoint tests: anonymous mappings, scratch
//! directories, the sources this kernel offers, deterministic page fill.

#![allow(dead_code)]

use oohgc_checkpoint::{Checkpointer, PageRange, PAGE_SIZE};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The sources that open here; each refusal is printed with its reason.
/// `none` always opens, so the list is never empty.
pub fn available_sources() -> Vec<&'static str> {
    let mut out = Vec::new();
    for name in oohgc_checkpoint::usable_sources() {
        match Checkpointer::new(name) {
            Ok(_) => out.push(name),
            Err(e) => eprintln!("note: source {name} skipped: {e}"),
        }
    }
    assert!(out.contains(&"none"), "the none source must always open");
    out
}

/// A private anonymous read-write mapping (base pages), unmapped on drop.
pub struct Mapping {
    pub addr: usize,
    pub len: usize,
}

impl Mapping {
    pub fn new(len: usize) -> Mapping {
        // SAFETY: a fresh anonymous mapping; nothing else is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap of {len} bytes failed");
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) };
        Mapping {
            addr: p as usize,
            len,
        }
    }
    pub fn range(&self) -> PageRange {
        PageRange::new(self.addr, self.len).unwrap()
    }
    pub fn pages(&self) -> usize {
        self.len / PAGE_SIZE
    }
    pub fn page_ptr(&self, page: usize) -> *mut u8 {
        assert!(page < self.pages());
        (self.addr + page * PAGE_SIZE) as *mut u8
    }
    /// Write word `word` of `page` (volatile: other threads and the
    /// checkpointer read this memory through raw pointers).
    pub fn write_word(&self, page: usize, word: usize, value: u64) {
        assert!(word < PAGE_SIZE / 8);
        // SAFETY: in bounds of our mapping, aligned.
        unsafe {
            (self.page_ptr(page) as *mut u64)
                .add(word)
                .write_volatile(value)
        }
    }
    /// Fill `page` with words derived from `seed`.
    pub fn fill_page(&self, page: usize, seed: u64) {
        for w in 0..PAGE_SIZE / 8 {
            self.write_word(page, w, pattern(seed, page, w));
        }
    }
    /// A copy of the whole mapping.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        self.copy_into(&mut v);
        v
    }
    pub fn copy_into(&self, v: &mut [u8]) {
        assert_eq!(v.len(), self.len);
        // SAFETY: reading our own mapping as bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.addr as *const u8, v.as_mut_ptr(), self.len) }
    }
    /// Whether the mapping equals `expected` byte for byte; on a mismatch,
    /// the first differing page.
    pub fn first_difference(&self, expected: &[u8]) -> Option<usize> {
        assert_eq!(expected.len(), self.len);
        for p in 0..self.pages() {
            let at = p * PAGE_SIZE;
            // SAFETY: one page of our mapping and of `expected`.
            let same = unsafe {
                libc::memcmp(
                    (self.addr + at) as *const libc::c_void,
                    expected[at..].as_ptr() as *const libc::c_void,
                    PAGE_SIZE,
                ) == 0
            };
            if !same {
                return Some(p);
            }
        }
        None
    }
    /// Fill the whole mapping with a byte (scribble over it).
    pub fn scribble(&self, byte: u8) {
        // SAFETY: our own mapping.
        unsafe { std::ptr::write_bytes(self.addr as *mut u8, byte, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

// SAFETY: the mapping is plain memory; tests coordinate access themselves.
unsafe impl Send for Mapping {}
// SAFETY: as above; writes go through raw volatile accesses.
unsafe impl Sync for Mapping {}

/// The word `w` of `page` under `seed` (never zero).
pub fn pattern(seed: u64, page: usize, w: usize) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((page as u64) << 20 | w as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// SplitMix64 for picking pages.
pub struct Rng(pub u64);
impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) as u128 * n as u128) >> 64) as usize
    }
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "oohgc-checkpoint-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Have the kernel write `bytes` into `page` of `m` at `offset`: `read(2)`
/// from a pipe straight into the tracked memory.
pub fn kernel_write(m: &Mapping, page: usize, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
    assert!(offset + bytes.len() <= PAGE_SIZE);
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into `fds`.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writing our own buffer into our own pipe, then reading from
    // it into our own mapping; both descriptors are closed after.
    unsafe {
        let w = libc::write(fds[1], bytes.as_ptr() as *const libc::c_void, bytes.len());
        let r = libc::read(
            fds[0],
            m.page_ptr(page).add(offset) as *mut libc::c_void,
            bytes.len(),
        );
        let err = std::io::Error::last_os_error();
        libc::close(fds[0]);
        libc::close(fds[1]);
        if w != bytes.len() as isize || r != bytes.len() as isize {
            Err(err)
        } else {
            Ok(())
        }
    }
}
