//! A growable vector of `Copy` values kept in raw anonymous mmap.
//!
//! Dirty sources run inside the garbage collector's pauses and inside
//! signal handlers and fault-handler threads, where allocating through the
//! global allocator (the collector's own heap) could deadlock or recurse.
//! `RawVec` never touches the global allocator: it maps its storage with
//! `mmap` and grows with `mremap`.
//!
//! Owns: `RawVec` and its mapping (map, grow with `mremap`, unmap). Must
//! not touch: the global allocator, ever; what is stored in it.

use std::ptr;

/// A vector of `T: Copy` backed by anonymous mmap, never by the global allocator.
pub struct RawVec<T: Copy> {
    ptr: *mut T,
    len: usize,
    cap: usize,
}

// SAFETY: RawVec owns its mapping exclusively; moving it between threads is
// as safe as moving a Vec<T>.
unsafe impl<T: Copy + Send> Send for RawVec<T> {}
// SAFETY: shared references only allow reads of plain `Copy` data.
unsafe impl<T: Copy + Sync> Sync for RawVec<T> {}

impl<T: Copy> Default for RawVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy> RawVec<T> {
    /// An empty vector; maps nothing until the first push.
    pub const fn new() -> Self {
        RawVec {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// An empty vector with room for `cap` elements.
    pub fn with_capacity(cap: usize) -> Self {
        let mut v = Self::new();
        v.reserve(cap);
        v
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make room for `extra` more elements. Aborts the process if the
    /// kernel refuses the memory (there is no allocator to report to).
    pub fn reserve(&mut self, extra: usize) {
        let need = self
            .len
            .checked_add(extra)
            .expect("RawVec capacity overflow");
        if need <= self.cap {
            return;
        }
        let elem = std::mem::size_of::<T>().max(1);
        let new_cap = need.max(self.cap * 2).max(4096 / elem);
        let new_bytes = round_to_page(new_cap * elem);
        let new_cap = new_bytes / elem;
        let p = if self.ptr.is_null() {
            // SAFETY: an anonymous private mapping with no address hint.
            unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    new_bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            }
        } else {
            // SAFETY: self.ptr is our own mapping of `old_bytes`.
            unsafe {
                libc::mremap(
                    self.ptr.cast(),
                    round_to_page(self.cap * elem),
                    new_bytes,
                    libc::MREMAP_MAYMOVE,
                )
            }
        };
        if p == libc::MAP_FAILED {
            // No allocator to report to: this memory backs collector internals.
            eprintln!("oohgc-dirty: out of memory growing an internal table to {new_bytes} bytes");
            std::process::abort();
        }
        self.ptr = p.cast();
        self.cap = new_cap;
    }

    /// Append `value`.
    pub fn push(&mut self, value: T) {
        if self.len == self.cap {
            self.reserve(1);
        }
        // SAFETY: len < cap after reserve, so the slot is inside the mapping.
        unsafe { self.ptr.add(self.len).write(value) };
        self.len += 1;
    }

    /// Remove and return the last element.
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot at the old len - 1 was initialised by push.
        Some(unsafe { self.ptr.add(self.len).read() })
    }

    /// Remove every element (keeps the mapping).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shorten to `len` elements.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Remove element `i`, replacing it with the last one.
    pub fn swap_remove(&mut self, i: usize) -> T {
        let s = self.as_mut_slice();
        let last = s.len() - 1;
        s.swap(i, last);
        self.pop().expect("swap_remove on a non-empty vector")
    }

    /// The elements as a slice.
    pub fn as_slice(&self) -> &[T] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the first len slots are initialised and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The elements as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: the first len slots are initialised and uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Copy> std::ops::Deref for RawVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Copy> std::ops::DerefMut for RawVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: Copy> Drop for RawVec<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            let bytes = round_to_page(self.cap * std::mem::size_of::<T>().max(1));
            // SAFETY: unmapping our own mapping; nothing borrows it any more.
            unsafe { libc::munmap(self.ptr.cast(), bytes) };
        }
    }
}

fn round_to_page(bytes: usize) -> usize {
    (bytes.max(1) + 4095) & !4095
}

#[cfg(test)]
mod tests {
    use super::RawVec;

    #[test]
    fn push_grow_pop() {
        let mut v = RawVec::new();
        for i in 0..100_000u64 {
            v.push(i);
        }
        assert_eq!(v.len(), 100_000);
        assert_eq!(v[99_999], 99_999);
        assert_eq!(v.iter().sum::<u64>(), 99_999 * 100_000 / 2);
        assert_eq!(v.pop(), Some(99_999));
        v.swap_remove(0);
        assert_eq!(v[0], 99_998);
        v.clear();
        assert!(v.is_empty());
    }
}
