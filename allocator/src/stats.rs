//! Heap-wide statistics, computed by walking the span table (O(heap); may be
//! approximate while mutators run).

use crate::heap::{is_initialized, layout};
use crate::object::ObjectKind;
use crate::object_map::for_each_span;
use crate::page_pool;
use crate::span::SPAN_LARGE;
use core::sync::atomic::Ordering;

/// A snapshot of the heap's memory use, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapStats {
    /// Address space reserved.
    pub reserved: usize,
    /// Committed memory (never above `max_heap`): committed extent minus returned pages.
    pub committed: usize,
    /// The configured limit.
    pub max_heap: usize,
    /// Bytes in allocated objects (slot sizes).
    pub in_use: usize,
    /// Of `in_use`: Manual objects.
    pub manual_bytes: usize,
    /// Of `in_use`: large objects.
    pub large_bytes: usize,
    /// Free slot bytes inside small-object spans.
    pub free_bytes_in_blocks: usize,
    /// Pooled pages currently given back to the OS.
    pub returned_to_os: usize,
}

/// Committed heap bytes (cheap: no walk). Same as `stats().committed`.
pub fn committed_bytes() -> usize {
    if !is_initialized() {
        return 0;
    }
    page_pool::committed_and_returned().0
}

/// Current heap statistics (walks every span: O(heap / 8) word reads).
pub fn stats() -> HeapStats {
    if !is_initialized() {
        return HeapStats::default();
    }
    let l = layout();
    let (committed, returned) = page_pool::committed_and_returned();
    let mut s = HeapStats {
        reserved: l.hi - l.lo,
        committed,
        max_heap: l.max_heap.load(core::sync::atomic::Ordering::Relaxed),
        returned_to_os: returned,
        ..HeapStats::default()
    };
    for_each_span(0, usize::MAX, &mut |_, v, _| {
        // Allocation bytes are 0 or 1, and bytes past `slots` in the row are 0,
        // so the popcount of each word counts allocated slots.
        let n: usize = (0..v.slots.div_ceil(8))
            .map(|w| l.alloc_word(v.head, w).load(Ordering::Relaxed).count_ones() as usize)
            .sum();
        let bytes = n * v.obj_size;
        s.in_use += bytes;
        if v.kind == ObjectKind::Manual {
            s.manual_bytes += bytes;
        }
        if v.state == SPAN_LARGE {
            s.large_bytes += bytes;
        } else {
            s.free_bytes_in_blocks += (v.slots - n) * v.obj_size;
        }
    });
    s
}
