//! Large objects (> 32 KiB, or aligned beyond a page): each on its own run
//! of pages, allocated and freed under the heap lock.

use crate::config::PAGE_SIZE;
use crate::heap::layout;
use crate::lock::with_heap_lock;
use crate::object::ObjectKind;
use crate::page_pool;
use crate::span::{SpanMeta, SPAN_LARGE};
use crate::thread_cache::ALLOCATE_BLACK;
use crate::trigger;
use core::sync::atomic::Ordering;

/// Allocates a zeroed large object; null when the heap limit is reached.
pub(crate) fn alloc_large(size: usize, align: usize, kind: ObjectKind) -> *mut u8 {
    let l = layout();
    if size > l.hi - l.lo {
        return core::ptr::null_mut();
    }
    let pages = size.max(1).div_ceil(PAGE_SIZE);
    let align_pages = (align / PAGE_SIZE).max(1);
    let Some((head, dirty)) = page_pool::acquire(pages, align_pages) else {
        return core::ptr::null_mut();
    };
    let start = l.page_addr(head);
    if dirty {
        // SAFETY: the run is ours (taken from the pool, not yet a span).
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, pages * PAGE_SIZE) };
    }
    with_heap_lock(|| {
        l.span(head).init_large(head, pages, kind);
        l.mark_byte(head, 0).store(
            ALLOCATE_BLACK.load(Ordering::Relaxed) as u8,
            Ordering::Relaxed,
        );
        l.alloc_byte(head, 0).store(1, Ordering::Release);
    });
    trigger::note_allocated(pages * PAGE_SIZE);
    start as *mut u8
}

/// Frees the large object of span `s` at `addr`. `checked`: detect racing double frees.
pub(crate) fn free_large(s: &SpanMeta, addr: usize) {
    with_heap_lock(|| {
        let l = layout();
        if s.state.load(Ordering::Relaxed) != SPAN_LARGE || s.start.load(Ordering::Relaxed) != addr
        {
            crate::os::fatal(
                "free of a pointer that is not the base of an allocated object:",
                addr,
            );
        }
        let head = l.page_of(addr);
        if l.alloc_byte(head, 0).swap(0, Ordering::AcqRel) != 1 {
            crate::os::fatal("double free of a large object:", addr);
        }
        s.release();
    });
}

/// Frees an unmarked large object during a sweep (heap lock held). Returns its size.
pub(crate) fn sweep_free_large(s: &SpanMeta, head: usize) -> usize {
    let l = layout();
    if l.alloc_byte(head, 0)
        .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return 0;
    }
    let size = s.pages.load(Ordering::Relaxed) as usize * PAGE_SIZE;
    s.release();
    size
}
