//! `GcAllocator`: the oohgc heap as the program's global allocator.
//!
//! Every `Box`, `Vec`, `String`, `HashMap` of the program then lives in the
//! collected heap as a *manual* block: scanned conservatively at every
//! collection (so a `Gc` kept in a `Vec` keeps its target alive) and freed
//! only by `dealloc`. The first allocation of a thread registers it with the
//! collector.

use crate::runtime;
use oohgc_allocator::ObjectKind;
use std::alloc::{GlobalAlloc, Layout};

/// The oohgc heap as a global allocator:
///
/// ```ignore
/// #[global_allocator]
/// static GC: oohgc::GcAllocator = oohgc::GcAllocator;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GcAllocator;

// SAFETY: alloc returns blocks of at least layout.size() bytes aligned to
// layout.align() (or null), which stay valid until dealloc; realloc keeps
// contents; the heap is thread-safe.
unsafe impl GlobalAlloc for GcAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        runtime::ensure_heap();
        runtime::register_current_thread();
        oohgc_allocator::alloc(layout.size(), layout.align(), ObjectKind::Manual)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // The heap hands out zero-filled memory.
        // SAFETY: same contract as alloc.
        unsafe { self.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from alloc/realloc of this allocator.
        unsafe { oohgc_allocator::free(ptr) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        runtime::register_current_thread();
        // SAFETY: ptr came from this allocator with `layout`.
        unsafe { oohgc_allocator::realloc(ptr, new_size, layout.align()) }
    }
}
