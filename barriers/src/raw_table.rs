//! Fixed-capacity tables in anonymous `mmap` memory, created on first use.
//!
//! The registry and the stop table must never allocate through the global
//! allocator (which is the GC heap), and should not sit in the data segment
//! either (the collector scans writable segments as roots). Their entries are
//! made of atomics whose all-zero bit pattern is the valid empty state, so a
//! fresh anonymous mapping is a fully initialised table.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Marker for types whose all-zero bit pattern is a valid value and which are
/// safe to share between threads (atomics and arrays of them).
///
/// # Safety
/// Implementors must be valid when zero-filled and must be `Sync`.
pub unsafe trait ZeroValid: Sync {}

/// A lazily mapped, never freed array of `capacity` zeroed `T`s.
pub struct RawTable<T: ZeroValid> {
    base: AtomicPtr<T>,
    capacity: usize,
    _marker: PhantomData<T>,
}

impl<T: ZeroValid> RawTable<T> {
    /// A table of `capacity` entries, mapped on first access.
    pub const fn new(capacity: usize) -> Self {
        Self {
            base: AtomicPtr::new(core::ptr::null_mut()),
            capacity,
            _marker: PhantomData,
        }
    }

    /// The entries, mapping them if this is the first use.
    ///
    /// Aborts the process if the kernel refuses the mapping: there is no way
    /// to coordinate threads without it, and the callers (the allocator's
    /// slow path, a signal-free registration) cannot propagate an error.
    pub fn entries(&self) -> &[T] {
        let mut base = self.base.load(Ordering::Acquire);
        if base.is_null() {
            base = self.map_once();
        }
        // SAFETY: `base` points to `capacity` zero-initialised `T`s that are
        // never unmapped; zero is a valid `T` (ZeroValid).
        unsafe { core::slice::from_raw_parts(base, self.capacity) }
    }

    #[cold]
    fn map_once(&self) -> *mut T {
        let bytes = core::mem::size_of::<T>() * self.capacity;
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions.
        let fresh = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if fresh == libc::MAP_FAILED {
            crate::sys::write_stderr(b"oohgc-barriers: mmap of a thread table failed; aborting\n");
            std::process::abort();
        }
        let fresh = fresh.cast::<T>();
        match self.base.compare_exchange(
            core::ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` was mapped above with `bytes` bytes and was
                // never published, so nobody else can refer to it.
                unsafe { libc::munmap(fresh.cast(), bytes) };
                winner
            }
        }
    }
}
