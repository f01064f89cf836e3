//! The allocation entry points: `alloc`, `free`, `realloc`, `usable_size`.
//!
//! Zeroing: small slots are zeroed when handed out (in the fast path), large
//! runs when taken from the pool unless known to be zero (fresh or returned
//! pages). Freed memory is therefore never scanned (free slots are not objects)
//! and never leaks stale pointers into a new object.

use crate::config::{GRANULE, MAX_ALIGN, PAGE_SIZE};
use crate::heap::{ensure_initialized, layout};
use crate::large;
use crate::object::ObjectKind;
use crate::os::fatal;
use crate::size_class::{class_for, class_of, MAX_SMALL_SIZE};
use crate::span::{SPAN_LARGE, SPAN_SMALL};
use crate::thread_cache;
use crate::trigger;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static CHECKED_FREE: AtomicBool = AtomicBool::new(cfg!(debug_assertions));

/// Clears the allocation byte of the object at `ptr`, aborting on a double free.
#[inline(always)]
pub(crate) fn clear_alloc_byte(a: &AtomicU8, ptr: *mut u8) {
    if CHECKED_FREE.load(Ordering::Relaxed) {
        if a.swap(0, Ordering::AcqRel) != 1 {
            fatal(
                "double free (or free of a slot that is not allocated):",
                ptr as usize,
            );
        }
    } else {
        if a.load(Ordering::Relaxed) != 1 {
            fatal(
                "double free (or free of a slot that is not allocated):",
                ptr as usize,
            );
        }
        a.store(0, Ordering::Release);
    }
}

/// Allocates `size` zero-filled bytes aligned to `align` (a power of two up to
/// [`MAX_ALIGN`]). Null on failure (heap limit, unsupported align, overflow).
/// Size 0 is treated as one granule.
#[inline]
pub fn alloc(size: usize, align: usize, kind: ObjectKind) -> *mut u8 {
    if align <= GRANULE && align & align.wrapping_sub(1) == 0 && size <= MAX_SMALL_SIZE {
        // SAFETY: class_of returns a valid class; kind.index() < KINDS.
        let p = unsafe { thread_cache::try_alloc_fast(class_of(size), kind.index()) };
        if !p.is_null() {
            return p;
        }
    }
    alloc_slow(size, align, kind)
}

#[cold]
#[inline(never)]
fn alloc_slow(size: usize, align: usize, kind: ObjectKind) -> *mut u8 {
    if !(align.is_power_of_two() || align == 0)
        || align > MAX_ALIGN
        || size > isize::MAX as usize / 2
    {
        return null_mut();
    }
    if !ensure_initialized() {
        return null_mut();
    }
    let mut retried = false;
    loop {
        thread_cache::flush_allocation_count();
        trigger::maybe_fire_budget();
        let p = match class_for(size, align) {
            Some(class) => thread_cache::alloc_small_slow(class, kind),
            None => large::alloc_large(size, align, kind),
        };
        if !p.is_null() || retried {
            return p;
        }
        retried = true;
        if !trigger::out_of_memory(size) {
            return null_mut();
        }
    }
}

/// Where `ptr` lives: (span, slot index, slot size), or a fatal error naming the problem.
#[inline(always)]
fn locate(ptr: *const u8, what: &str) -> (&'static crate::span::SpanMeta, usize, usize, u8) {
    let a = ptr as usize;
    let l = layout();
    let Some(span) = l.span_at(a) else {
        fatal_for(what, "a pointer that is not an allocated heap object:", a)
    };
    let state = span.state.load(Ordering::Relaxed);
    let start = span.start.load(Ordering::Relaxed);
    let size = span.obj_size.load(Ordering::Relaxed) as usize;
    let slot = if state == SPAN_SMALL {
        (((a - start) as u64 * span.magic.load(Ordering::Relaxed)) >> 40) as usize
    } else if state == SPAN_LARGE {
        0
    } else {
        fatal_for(what, "a pointer into free heap memory:", a)
    };
    if a != start + slot * size || slot >= span.slots.load(Ordering::Relaxed) as usize {
        fatal_for(what, "a pointer that is not the base of an object:", a)
    }
    (span, slot, size, state)
}

#[cold]
fn fatal_for(what: &str, problem: &str, a: usize) -> ! {
    let _ = what;
    fatal(problem, a)
}

/// Frees an object base returned by `alloc` (any kind). Null is ignored.
/// Foreign pointers, interior pointers and double frees abort with a message.
/// With checked free on (default in debug builds, or [`set_checked_free`]) the
/// allocation byte is cleared with an atomic swap, which also catches two
/// threads racing to free the same object.
///
/// # Safety
/// `ptr` must not be used after this call.
#[inline]
pub unsafe fn free(ptr: *mut u8) {
    if ptr.is_null() {
        return;
    }
    let (span, slot, _, state) = locate(ptr, "free");
    if state == SPAN_LARGE {
        large::free_large(span, ptr as usize);
        return;
    }
    let l = layout();
    let head = l.page_of(span.start.load(Ordering::Relaxed));
    // SAFETY: ptr is slot `slot` of small span `span` (checked by locate).
    unsafe { thread_cache::free_small(span, ptr, l.alloc_byte(head, slot)) }
}

/// Resizes the object at `ptr` to `new_size` bytes aligned to `align`, keeping
/// its kind. In place when it fits (the bytes past `new_size` are zeroed);
/// otherwise allocates, copies and frees. Null on failure (old object untouched).
/// A null `ptr` allocates a Manual object.
///
/// # Safety
/// `ptr` is null or an allocated object base.
pub unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
    if ptr.is_null() {
        return alloc(new_size, align, ObjectKind::Manual);
    }
    let (span, _, usable, state) = locate(ptr, "realloc");
    let kind = ObjectKind::from_index(span.kind.load(Ordering::Relaxed));
    if !align.is_power_of_two() {
        return null_mut();
    }
    let fits = new_size <= usable && (ptr as usize).is_multiple_of(align);
    let not_wasteful = if state == SPAN_LARGE {
        new_size.div_ceil(PAGE_SIZE) * 2 > usable / PAGE_SIZE
    } else {
        new_size > MAX_SMALL_SIZE || class_of(new_size.max(1)) + 4 >= class_of(usable)
    };
    if fits && not_wasteful {
        // SAFETY: [new_size, usable) is inside the object.
        unsafe { core::ptr::write_bytes(ptr.add(new_size), 0, usable - new_size) };
        return ptr;
    }
    let new = alloc(new_size, align, kind);
    if new.is_null() {
        return null_mut();
    }
    // SAFETY: both objects are live and at least min(usable, new_size) long; distinct slots.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr, new, usable.min(new_size));
        free(ptr);
    }
    new
}

/// Usable size of the object at `ptr` (its slot size).
///
/// # Safety
/// `ptr` is an allocated object base.
pub unsafe fn usable_size(ptr: *const u8) -> usize {
    locate(ptr, "usable_size").2
}

/// Turns on (or off) the atomic double-free check in `free` (on by default
/// with debug assertions). Plain double frees are always detected.
pub fn set_checked_free(on: bool) {
    CHECKED_FREE.store(on, Ordering::Relaxed);
}
