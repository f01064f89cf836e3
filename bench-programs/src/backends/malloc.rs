//! The `malloc` backend: the system allocator with explicit frees.
//!
//! The no-collector baseline: every object the workload drops is freed by
//! an explicit call, as a C program would.

use crate::heap::{CollectorFigures, Heap, Node, NodeRef, RefArray};
use crate::stall::StallMeter;
use std::ptr::NonNull;

/// The system allocator (`malloc`/`calloc`/`free`).
#[derive(Debug, Default)]
pub struct MallocHeap {
    meter: StallMeter,
}

impl MallocHeap {
    /// A fresh heap.
    pub fn new() -> MallocHeap {
        MallocHeap::default()
    }
}

/// `calloc(bytes)`, panicking with the size when memory runs out.
fn calloc_or_die(bytes: usize) -> NonNull<u8> {
    // SAFETY: calloc has no preconditions; the result is checked below.
    let ptr = unsafe { libc::calloc(1, bytes.max(1)) } as *mut u8;
    NonNull::new(ptr).unwrap_or_else(|| panic!("calloc({bytes}) failed: out of memory"))
}

impl Heap for MallocHeap {
    fn name(&self) -> &'static str {
        "malloc"
    }
    fn frees_explicitly(&self) -> bool {
        true
    }
    fn meter(&mut self) -> &mut StallMeter {
        &mut self.meter
    }
    fn alloc_node(&mut self, left: NodeRef, right: NodeRef, value: i64) -> NodeRef {
        self.meter.tick();
        // SAFETY: malloc has no preconditions; the result is checked below.
        let ptr = unsafe { libc::malloc(std::mem::size_of::<Node>()) } as *mut Node;
        assert!(!ptr.is_null(), "malloc of a node failed: out of memory");
        // SAFETY: `ptr` is a fresh allocation large and aligned enough for a Node.
        unsafe { ptr.write(Node::new(left, right, value)) };
        NodeRef::from_ptr(ptr)
    }
    fn free_node(&mut self, node: NodeRef) {
        // SAFETY: the workload frees each node it allocated exactly once,
        // after its last use (explicit-free contract of `Heap`).
        unsafe { libc::free(node.as_ptr() as *mut libc::c_void) };
    }
    fn alloc_refs(&mut self, len: usize) -> RefArray {
        self.meter.tick();
        RefArray::from_raw(calloc_or_die(len * 8).as_ptr(), len)
    }
    fn free_refs(&mut self, refs: RefArray) {
        // SAFETY: allocated by calloc in `alloc_refs`, freed once.
        unsafe { libc::free(refs.as_ptr() as *mut libc::c_void) };
    }
    fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8> {
        self.meter.tick();
        calloc_or_die(bytes)
    }
    fn free_data_bytes(&mut self, ptr: NonNull<u8>, _bytes: usize) {
        // SAFETY: allocated by calloc in `alloc_data_bytes`, freed once.
        unsafe { libc::free(ptr.as_ptr() as *mut libc::c_void) };
    }
    fn collect(&mut self) {}
    fn figures(&self) -> CollectorFigures {
        CollectorFigures::default()
    }
}
