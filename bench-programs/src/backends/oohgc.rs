//! The `oohgc` backend: nodes are `oohgc::Gc<Node>`, collected.
//!
//! Used by the `oohgc-bench-gc` worker, whose global allocator is
//! `oohgc::GcAllocator`; ref arrays therefore come from the collected heap
//! too (scanned, freed explicitly as Rust vectors are). Pointer-free data
//! buffers are `oohgc::alloc_noscan` blocks (never scanned, collected). The
//! dirty source is chosen by `OOHGC_DIRTY` in the worker's environment.

use crate::heap::{CollectorFigures, Heap, Node, NodeRef, RefArray};
use crate::stall::StallMeter;
use std::alloc::Layout;
use std::ptr::NonNull;

/// The oohgc collector as a [`Heap`].
#[derive(Debug, Default)]
pub struct OohgcHeap {
    meter: StallMeter,
}

impl OohgcHeap {
    /// A heap over the process's oohgc collector.
    pub fn new() -> OohgcHeap {
        OohgcHeap::default()
    }
}

/// The layout of `bytes` of 8-aligned data.
fn data_layout(bytes: usize) -> Layout {
    Layout::from_size_align(bytes.max(8), 8).expect("data buffer too large for a Layout")
}

/// Zeroed memory from the global allocator (the GcAllocator in the worker).
fn alloc_zeroed_or_die(bytes: usize) -> NonNull<u8> {
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(data_layout(bytes)) };
    NonNull::new(ptr).unwrap_or_else(|| panic!("allocating {bytes} bytes failed: out of memory"))
}

/// Release what `alloc_zeroed_or_die(bytes)` returned.
fn dealloc(ptr: *mut u8, bytes: usize) {
    // SAFETY: allocated by `alloc_zeroed_or_die` with the same layout, freed once.
    unsafe { std::alloc::dealloc(ptr, data_layout(bytes)) };
}

impl Heap for OohgcHeap {
    fn name(&self) -> &'static str {
        "oohgc"
    }
    fn frees_explicitly(&self) -> bool {
        false
    }
    fn meter(&mut self) -> &mut StallMeter {
        &mut self.meter
    }
    fn alloc_node(&mut self, left: NodeRef, right: NodeRef, value: i64) -> NodeRef {
        self.meter.tick();
        let node = oohgc::Gc::new(Node::new(left, right, value));
        NodeRef::from_ptr(oohgc::Gc::as_ptr(&node))
    }
    fn free_node(&mut self, _node: NodeRef) {}
    fn alloc_refs(&mut self, len: usize) -> RefArray {
        self.meter.tick();
        RefArray::from_raw(alloc_zeroed_or_die(len * 8).as_ptr(), len)
    }
    fn free_refs(&mut self, refs: RefArray) {
        dealloc(refs.as_ptr(), refs.len() * 8);
    }
    fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8> {
        self.meter.tick();
        // Pointer-free data is never scanned, as bdwgc's backend allocates
        // it with GC_malloc_atomic (and GCBench's C original does).
        oohgc::alloc_noscan(data_layout(bytes))
    }
    fn free_data_bytes(&mut self, _ptr: NonNull<u8>, _bytes: usize) {}
    fn idle(&mut self, d: std::time::Duration) {
        oohgc::blocking(|| std::thread::sleep(d));
    }
    fn write_barrier(&self, slot: *const u8) {
        oohgc::write_barrier(slot);
    }
    fn collect(&mut self) {
        oohgc::collect();
    }
    fn figures(&self) -> CollectorFigures {
        let stats = oohgc::stats();
        let mut counters: Vec<(String, u64)> = vec![
            ("concurrent_cycles".into(), stats.concurrent_cycles),
            ("total_mark_ns".into(), stats.total_mark_ns),
            ("total_sweep_ns".into(), stats.total_sweep_ns),
            ("live_bytes".into(), stats.live_bytes as u64),
        ];
        counters.extend(
            stats
                .source_counters
                .iter()
                .map(|(name, value)| (name.to_string(), *value)),
        );
        CollectorFigures {
            collections: stats.cycles,
            heap_size: stats.heap_size as u64,
            total_pause_ns: stats.total_pause_ns,
            pause_p50_ns: stats.pauses.percentile(50.0),
            pause_p99_ns: stats.pauses.percentile(99.0),
            pause_max_ns: stats.max_pause_ns,
            pauses_ns: stats.pauses.samples().to_vec(),
            dirty_pages: stats.dirty_pages_harvested,
            dirty_source: stats.dirty_source.to_string(),
            counters,
        }
    }
}
