//! The staging buffer: private anonymous memory that written pages are
//! copied into while the writers are stopped, and that the image is
//! written from after they run again.
//!
//! It reserves address space for every tracked byte (`MAP_NORESERVE`), so
//! a dump never grows it during a freeze. Pages it used stay resident for
//! the next dump (re-faulting them would lengthen the freeze); after a dump
//! that used fewer bytes than the one before, the unused tail is given back
//! to the kernel (`MADV_DONTNEED`), so a full dump's footprint does not
//! outlive it once incremental dumps follow.

use oohgc_dirty::PAGE_SIZE;
use std::io;

/// Private memory for staged pages.
pub struct Staging {
    ptr: usize,
    cap: usize,
    resident: usize,
}

// SAFETY: Staging owns its mapping exclusively; it is plain memory.
unsafe impl Send for Staging {}

impl Staging {
    /// An empty buffer (maps nothing).
    pub fn new() -> Staging {
        Staging {
            ptr: 0,
            cap: 0,
            resident: 0,
        }
    }

    /// Bytes of address space reserved.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Make room for at least `bytes`; contents are not kept.
    pub fn ensure(&mut self, bytes: usize) -> io::Result<()> {
        if bytes <= self.cap {
            return Ok(());
        }
        let want = bytes.next_multiple_of(PAGE_SIZE);
        self.unmap();
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                want,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.ptr = p as usize;
        self.cap = want;
        self.resident = 0;
        Ok(())
    }

    /// Address of staged page `i` (`i * PAGE_SIZE < capacity`).
    #[inline]
    pub fn page_addr(&self, i: usize) -> usize {
        debug_assert!((i + 1) * PAGE_SIZE <= self.cap);
        self.ptr + i * PAGE_SIZE
    }

    /// Staged page `i` as bytes (after the thaw: only this thread uses the
    /// buffer).
    pub fn page(&self, i: usize) -> &[u8] {
        assert!(
            (i + 1) * PAGE_SIZE <= self.cap,
            "staged page {i} out of bounds"
        );
        // SAFETY: in bounds of our own read-write mapping, which nothing
        // else writes while `&self` is held.
        unsafe { std::slice::from_raw_parts(self.page_addr(i) as *const u8, PAGE_SIZE) }
    }

    /// A dump used the first `pages` pages: give back what lies beyond
    /// them if an earlier dump had used more.
    pub fn used(&mut self, pages: usize) {
        let used = pages * PAGE_SIZE;
        if used < self.resident {
            // SAFETY: a sub-range of our own mapping; its contents are
            // not needed any more.
            unsafe {
                libc::madvise(
                    (self.ptr + used) as *mut libc::c_void,
                    self.resident - used,
                    libc::MADV_DONTNEED,
                );
            }
        }
        self.resident = used;
    }

    fn unmap(&mut self) {
        if self.cap != 0 {
            // SAFETY: our own mapping, unmapped once.
            unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.cap) };
            self.ptr = 0;
            self.cap = 0;
            self.resident = 0;
        }
    }
}

impl Default for Staging {
    fn default() -> Self {
        Staging::new()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.unmap();
    }
}
