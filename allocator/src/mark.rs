//! Mark bits: one byte per slot in a side table outside the heap, so marking
//! never writes (or dirties) object pages. Thread-safe: several markers may race.

use crate::heap::{is_initialized, layout};
use crate::object_map::for_each_span;
use crate::thread_cache::ALLOCATE_BLACK;
use core::sync::atomic::{AtomicU8, Ordering};

/// The mark byte of the object whose base is `base`, if `base` is in a span.
#[inline]
fn mark_byte_of(base: usize) -> Option<&'static AtomicU8> {
    let l = layout();
    let span = l.span_at(base)?;
    let (v, _) = span.view()?;
    if base < v.start || base >= v.end() {
        return None;
    }
    let slot = v.slot_of(base);
    if slot >= v.slots {
        return None;
    }
    Some(l.mark_byte(v.head, slot))
}

/// Sets the mark of the object at `base` (an `ObjectInfo::base`). True if it
/// was unmarked. False for addresses that are not in an object slot.
#[inline]
pub fn try_mark(base: usize) -> bool {
    match mark_byte_of(base) {
        Some(m) => m.load(Ordering::Relaxed) == 0 && m.swap(1, Ordering::AcqRel) == 0,
        None => false,
    }
}

/// Whether the object at `base` is marked.
#[inline]
pub fn is_marked(base: usize) -> bool {
    mark_byte_of(base).is_some_and(|m| m.load(Ordering::Acquire) != 0)
}

/// Turns every mark bit off (cost: one byte per slot of every span).
pub fn clear_marks() {
    if !is_initialized() {
        return;
    }
    let l = layout();
    for_each_span(0, usize::MAX, &mut |_, v, _| {
        for w in 0..v.slots.div_ceil(8) {
            l.mark_word(v.head, w).store(0, Ordering::Relaxed);
        }
    });
    core::sync::atomic::fence(Ordering::Release);
}

/// While on, every object returned by `alloc` is already marked. While off,
/// a new small object's mark is not reset (it is 0 unless the slot's previous
/// occupant was marked and freed after the last [`clear_marks`]): call
/// `clear_marks` before marking, as a collection cycle does. The flag is
/// read with a relaxed load on the fast path: another thread sees the change
/// after it synchronizes with this one (e.g. through a signal handshake).
pub fn set_allocate_black(on: bool) {
    ALLOCATE_BLACK.store(on, Ordering::Release);
}
