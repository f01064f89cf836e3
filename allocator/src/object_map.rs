//! The object map: from any address to the allocated object containing it,
//! in O(1) and lock-free, and enumeration of allocated objects.
//!
//! `find_object`: reservation bounds check, page map (page -> span head),
//! span layout (seqlock-checked), slot index by multiply-shift, allocation
//! byte. Readers never block and never see a torn layout: a layout change in
//! the middle of a read makes the answer None, which is then correct because
//! layouts change only while a span holds no object.

use crate::config::PAGE_SHIFT;
use crate::heap::{is_initialized, layout};
use crate::object::{MarkAttempt, ObjectInfo, ObjectKind};
use crate::page_pool::frontier_pages;
use crate::span::{span_slot_of, SpanMeta, SpanView, SPAN_FREE, SPAN_LARGE};
use core::sync::atomic::Ordering;

/// The allocated object containing `addr` (interior addresses included; the
/// address one past the end is not in the object). None for free slots,
/// unallocated pages, span tails and addresses outside the heap.
#[inline]
pub fn find_object(addr: usize) -> Option<ObjectInfo> {
    let l = layout();
    if addr.wrapping_sub(l.lo) >= l.hi - l.lo || !is_initialized() {
        return None;
    }
    let page = l.page_of(addr);
    if page >= frontier_pages() {
        return None;
    }
    let h = l.head_entry(page).load(Ordering::Acquire);
    if h == 0 {
        return None;
    }
    let span = l.span(h as usize - 1);
    let (v, gen) = span.view()?;
    if addr < v.start || addr >= v.end() {
        return None;
    }
    let slot = v.slot_of(addr);
    if slot >= v.slots {
        return None;
    }
    if l.alloc_byte(v.head, slot).load(Ordering::Acquire) != 1 || !span.unchanged(gen) {
        return None;
    }
    Some(ObjectInfo {
        base: v.slot_addr(slot),
        size: v.obj_size,
        kind: v.kind,
    })
}

/// The marker's one-lookup step: whether `addr` points into an allocated
/// object (as [`find_object`] decides) and, if so, mark it. Equivalent to
/// `find_object` then [`try_mark`](crate::try_mark), with the span looked up
/// once instead of twice (most of marking's time per pointer is these
/// lookups). Unlike `try_mark`, two threads racing on one object may both
/// be told [`MarkAttempt::NewlyMarked`]. `AlreadyMarked` may also name a
/// free slot whose mark is set (freed after it was marked this cycle).
#[inline(always)]
pub fn mark_object_at(addr: usize) -> MarkAttempt {
    let l = layout();
    if addr.wrapping_sub(l.lo) >= l.hi - l.lo || !is_initialized() {
        return MarkAttempt::NotAnObject;
    }
    // SAFETY: just checked.
    unsafe { mark_object_at_in_heap(addr) }
}

/// [`mark_object_at`] without its bounds checks, for the marking loop
/// (which has already compared every word against [`heap_bounds`]).
///
/// It reads only what it needs: the page map gives the span's head page,
/// which also gives the span's start; one compare against the span's
/// length rejects addresses outside it, one against `slots` its tail.
///
/// # Safety
/// The heap is initialized and `addr` lies in `heap_bounds()`.
///
/// [`heap_bounds`]: crate::heap_bounds
#[inline(always)]
pub unsafe fn mark_object_at_in_heap(addr: usize) -> MarkAttempt {
    let l = layout();
    let page = l.page_of(addr);
    if page >= frontier_pages() {
        return MarkAttempt::NotAnObject;
    }
    let h = l.head_entry(page).load(Ordering::Acquire);
    if h == 0 {
        return MarkAttempt::NotAnObject;
    }
    let head = h as usize - 1;
    let span = l.span(head);
    let gen = span.gen.load(Ordering::Acquire);
    let state = span.state.load(Ordering::Relaxed);
    if gen & 1 != 0 || state == SPAN_FREE {
        return MarkAttempt::NotAnObject;
    }
    let start = l.page_addr(head);
    let offset = addr.wrapping_sub(start);
    // Below the span, the offset wraps and fails this compare too.
    if offset >= (span.pages.load(Ordering::Relaxed) as usize) << PAGE_SHIFT {
        return MarkAttempt::NotAnObject;
    }
    let slot = if state == SPAN_LARGE {
        0
    } else {
        let slot = span_slot_of(offset, span.magic.load(Ordering::Relaxed));
        if slot >= span.slots.load(Ordering::Relaxed) as usize {
            return MarkAttempt::NotAnObject;
        }
        slot
    };
    let obj_size = span.obj_size.load(Ordering::Relaxed) as usize;
    let base = start + slot * obj_size;
    let mark = l.mark_byte(head, slot);
    if mark.load(Ordering::Relaxed) != 0 {
        // Marked: no need to read the allocation byte (a marked free slot
        // is reported too; it can only be reallocated black this cycle).
        if !span.unchanged(gen) {
            return MarkAttempt::NotAnObject;
        }
        return MarkAttempt::AlreadyMarked(base);
    }
    let kind = ObjectKind::from_index(span.kind.load(Ordering::Relaxed));
    if l.alloc_byte(head, slot).load(Ordering::Acquire) != 1 || !span.unchanged(gen) {
        return MarkAttempt::NotAnObject;
    }
    // A plain store, not a swap: a locked read-modify-write per marked
    // object costs ~20 cycles and stalls the prefetches marking relies on.
    // Two markers racing here may both get the object (it is scanned twice,
    // which is harmless); the collector marks from one thread at a time.
    mark.store(1, Ordering::Relaxed);
    MarkAttempt::NewlyMarked(ObjectInfo {
        base,
        size: obj_size,
        kind,
    })
}

/// Set the mark of the slot containing `addr`, allocated or not; returns
/// whether `addr` lies in a slot of a span.
///
/// For the collector's thread roots: a thread stopped inside an allocation,
/// between taking a slot off its free list and publishing it, holds the only
/// pointer to an object that `find_object` does not know yet. Marking the
/// slot makes the object survive the next sweep once it is published. A free
/// slot marked this way is harmless: the sweep skips unallocated slots, and
/// the next `clear_marks` resets it.
pub fn mark_slot(addr: usize) -> bool {
    let l = layout();
    if addr.wrapping_sub(l.lo) >= l.hi - l.lo || !is_initialized() {
        return false;
    }
    let page = l.page_of(addr);
    if page >= frontier_pages() {
        return false;
    }
    let h = l.head_entry(page).load(Ordering::Acquire);
    if h == 0 {
        return false;
    }
    let span = l.span(h as usize - 1);
    let Some((v, _gen)) = span.view() else {
        return false;
    };
    if addr < v.start || addr >= v.end() {
        return false;
    }
    let slot = v.slot_of(addr);
    if slot >= v.slots {
        return false;
    }
    l.mark_byte(v.head, slot).store(1, Ordering::Release);
    true
}

/// Calls `f(head_page, span, view, gen)` for every span whose first page lies
/// in `[first, last]` or that covers `first`.
pub(crate) fn for_each_span(
    first: usize,
    last: usize,
    f: &mut dyn FnMut(&'static SpanMeta, SpanView, u32),
) {
    let l = layout();
    let end = last.min(frontier_pages().saturating_sub(1));
    let mut p = first;
    if p > end {
        return;
    }
    let h = l.head_entry(p).load(Ordering::Acquire);
    if h != 0 && (h as usize - 1) < p {
        p = h as usize - 1;
    }
    while p <= end {
        let h = l.head_entry(p).load(Ordering::Acquire);
        if h as usize != p + 1 {
            p += 1;
            continue;
        }
        let span = l.span(p);
        match span.view() {
            Some((v, gen)) if v.head == p => {
                f(span, v, gen);
                p += v.pages.max(1);
            }
            _ => p += 1,
        }
    }
}

/// Calls `f` for every allocated object overlapping `[start, end)` whose
/// mark is set and whose contents are scanned (not `ManagedNoScan`): what
/// the collector re-scans on a dirty page. As [`for_each_object_in`] with
/// those filters, reading each slot's mark byte from the span layout
/// already in hand instead of looking the object up again.
pub fn for_each_marked_scanned_object_in(start: usize, end: usize, f: &mut dyn FnMut(ObjectInfo)) {
    let l = layout();
    for_each_slot_range_in(start, end, &mut |span, v, gen, from, to| {
        if v.kind == ObjectKind::ManagedNoScan {
            return;
        }
        for slot in from..to.min(v.slots) {
            if l.mark_byte(v.head, slot).load(Ordering::Relaxed) != 0
                && l.alloc_byte(v.head, slot).load(Ordering::Acquire) == 1
                && span.unchanged(gen)
            {
                f(ObjectInfo {
                    base: v.slot_addr(slot),
                    size: v.obj_size,
                    kind: v.kind,
                });
            }
        }
    });
}

/// Calls `f(span, view, gen, from, to)` for every span overlapping
/// `[start, end)` with the range of its slots that overlap it (`to` may
/// exceed the span's slot count in its tail).
fn for_each_slot_range_in(
    start: usize,
    end: usize,
    f: &mut dyn FnMut(&SpanMeta, &SpanView, u32, usize, usize),
) {
    let l = layout();
    if !is_initialized() || end <= start {
        return;
    }
    let start = start.max(l.lo);
    let end = end.min(l.hi);
    if end <= start {
        return;
    }
    for_each_span(l.page_of(start), l.page_of(end - 1), &mut |span, v, gen| {
        let lo = start.max(v.start);
        let hi = end.min(v.end());
        if hi > lo {
            f(span, &v, gen, v.slot_of(lo), v.slot_of(hi - 1) + 1);
        }
    });
}

/// Reports the allocated slots of `v` in slot range `[from, to)`.
fn report_slots(
    span: &SpanMeta,
    v: &SpanView,
    gen: u32,
    from: usize,
    to: usize,
    kind: Option<ObjectKind>,
    f: &mut dyn FnMut(ObjectInfo),
) {
    if kind.is_some_and(|k| k != v.kind) {
        return;
    }
    let l = layout();
    for slot in from..to.min(v.slots) {
        if l.alloc_byte(v.head, slot).load(Ordering::Acquire) == 1 && span.unchanged(gen) {
            f(ObjectInfo {
                base: v.slot_addr(slot),
                size: v.obj_size,
                kind: v.kind,
            });
        }
    }
}

/// Calls `f` for every allocated object (of `kind`, if given). Lock-free; may
/// run while the world is stopped and never allocates.
pub fn for_each_object(kind: Option<ObjectKind>, f: &mut dyn FnMut(ObjectInfo)) {
    if !is_initialized() {
        return;
    }
    for_each_span(0, usize::MAX, &mut |span, v, gen| {
        report_slots(span, &v, gen, 0, v.slots, kind, f)
    });
}

/// Calls `f` for every allocated object overlapping `[start, end)`. Cost is
/// proportional to the range (plus the span covering `start`).
pub fn for_each_object_in(start: usize, end: usize, f: &mut dyn FnMut(ObjectInfo)) {
    for_each_slot_range_in(start, end, &mut |span, v, gen, from, to| {
        report_slots(span, v, gen, from, to, None, f)
    });
}
