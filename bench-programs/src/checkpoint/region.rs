//! The memory a checkpointed workload lives in: one private anonymous
//! mapping (`MAP_NORESERVE`, base pages), the range the checkpointer
//! tracks.

use oohgc_checkpoint::{PageRange, PAGE_SIZE};

/// A private anonymous mapping, unmapped on drop.
pub struct Region {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region is plain memory; its users coordinate access (one
// writer thread, the checkpointer reading while that thread is frozen).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Map `len` bytes (rounded up to whole pages).
    pub fn map(len: usize) -> Result<Region, String> {
        let len = len.next_multiple_of(PAGE_SIZE);
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!(
                "mmap of {len} bytes failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: advice on our own mapping. Base pages, as the tracked
        // runs of every other benchmark use.
        unsafe { libc::madvise(ptr, len, libc::MADV_NOHUGEPAGE) };
        Ok(Region {
            ptr: ptr as *mut u8,
            len,
        })
    }
    /// First byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the region is empty (never: `map` rounds up to a page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The range to track.
    pub fn range(&self) -> PageRange {
        PageRange::new(self.ptr as usize, self.len).expect("mmap returns whole pages")
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}
