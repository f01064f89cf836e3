//! `ArenaHeap`: the Phoenix kernels' [`Heap`] inside one tracked region.
//!
//! A bump allocator over a [`Region`]: everything the kernel allocates
//! lies in the checkpointed range, as a checkpointed process's heap does.
//! Frees are ignored (the region is fresh zeroed memory, so every
//! allocation is zeroed as the `Heap` contract asks); a kernel that
//! outgrows the region stops with a message naming the size to raise.

use super::region::Region;
use crate::heap::{CollectorFigures, Heap, Node, NodeRef, RefArray};
use crate::stall::StallMeter;
use std::ptr::NonNull;

/// A bump heap in a region.
pub struct ArenaHeap<'r> {
    region: &'r Region,
    used: usize,
    meter: StallMeter,
}

impl<'r> ArenaHeap<'r> {
    /// A heap over all of `region`.
    pub fn new(region: &'r Region) -> ArenaHeap<'r> {
        ArenaHeap {
            region,
            used: 0,
            meter: StallMeter::new(),
        }
    }

    /// Bytes handed out so far.
    pub fn used(&self) -> usize {
        self.used
    }

    fn bump(&mut self, bytes: usize) -> NonNull<u8> {
        self.meter.tick();
        let at = self.used.next_multiple_of(16);
        let end = at + bytes.max(8);
        assert!(
            end <= self.region.len(),
            "the checkpoint arena of {} MiB is full; raise --arena-mib",
            self.region.len() >> 20
        );
        self.used = end;
        NonNull::new(self.region.ptr().wrapping_add(at)).expect("inside a mapping")
    }
}

impl Heap for ArenaHeap<'_> {
    fn name(&self) -> &'static str {
        "arena"
    }
    fn frees_explicitly(&self) -> bool {
        false
    }
    fn meter(&mut self) -> &mut StallMeter {
        &mut self.meter
    }
    fn alloc_node(&mut self, left: NodeRef, right: NodeRef, value: i64) -> NodeRef {
        let ptr = self.bump(std::mem::size_of::<Node>()).as_ptr() as *mut Node;
        // SAFETY: fresh, 16-aligned, large enough for a Node, in the region.
        unsafe { ptr.write(Node::new(left, right, value)) };
        NodeRef::from_ptr(ptr)
    }
    fn free_node(&mut self, _node: NodeRef) {}
    fn alloc_refs(&mut self, len: usize) -> RefArray {
        RefArray::from_raw(self.bump(len * 8).as_ptr(), len)
    }
    fn free_refs(&mut self, _refs: RefArray) {}
    fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8> {
        self.bump(bytes)
    }
    fn free_data_bytes(&mut self, _ptr: NonNull<u8>, _bytes: usize) {}
    fn collect(&mut self) {}
    fn figures(&self) -> CollectorFigures {
        CollectorFigures::default()
    }
}
