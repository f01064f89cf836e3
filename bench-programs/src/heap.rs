//! The allocation interface every workload is written against, once.
//!
//! A workload is generic over [`Heap`]; a backend decides where memory comes
//! from and whether it is collected or freed explicitly:
//!
//! * `malloc` — the system allocator; the workload's explicit `free_*`
//!   calls release memory (they are no-ops for collected heaps);
//! * `bdwgc` — `GC_malloc` / `GC_malloc_atomic`, collected;
//! * `oohgc` — `oohgc::Gc<Node>` for nodes (collected); arrays through the
//!   `GcAllocator` global allocator (scanned, freed explicitly, as any Rust
//!   program under that allocator frees its vectors).
//!
//! Three kinds of object cover the workloads: [`Node`] (two pointers, two
//! integers: tree and graph vertices, hash-chain entries), [`RefArray`]
//! (a scanned array of node pointers) and [`DataBuf`] (a pointer-free array
//! of plain numbers). Handles are plain machine words: a conservative
//! collector finds them on the stack and in the heap, so a workload keeps
//! handles only in locals, nodes and ref arrays — never in a `Vec` of the
//! system allocator, which bdwgc does not scan.

use crate::stall::StallMeter;
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A heap object with two pointer fields and two integers (32 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct Node {
    left: Cell<*const Node>,
    right: Cell<*const Node>,
    value: Cell<i64>,
    aux: Cell<i64>,
}

impl Node {
    /// A node with the given fields.
    pub fn new(left: NodeRef, right: NodeRef, value: i64) -> Node {
        Node {
            left: Cell::new(left.0),
            right: Cell::new(right.0),
            value: Cell::new(value),
            aux: Cell::new(0),
        }
    }
}

/// A (nullable) handle to a [`Node`] owned by a [`Heap`].
///
/// Accessors dereference the handle: the caller keeps the node alive (it is
/// reachable for collected heaps, not yet freed for `malloc`), which is the
/// contract every workload follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef(*const Node);

impl NodeRef {
    /// The null handle.
    pub const NULL: NodeRef = NodeRef(std::ptr::null());

    /// Wrap a pointer to a node that a heap allocated and initialised.
    pub fn from_ptr(ptr: *const Node) -> NodeRef {
        NodeRef(ptr)
    }

    /// The raw pointer (for backends that free it).
    pub fn as_ptr(self) -> *const Node {
        self.0
    }

    /// Whether this is the null handle.
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }

    fn node(&self) -> &Node {
        assert!(!self.0.is_null(), "dereferenced a null NodeRef");
        // SAFETY: non-null handles come from a Heap, which keeps the node
        // alive while the workload can reach it (module contract).
        unsafe { &*self.0 }
    }

    /// The left child / first edge.
    pub fn left(self) -> NodeRef {
        NodeRef(self.node().left.get())
    }
    /// The right child / second edge.
    pub fn right(self) -> NodeRef {
        NodeRef(self.node().right.get())
    }
    /// The first integer field.
    pub fn value(self) -> i64 {
        self.node().value.get()
    }
    /// The second integer field.
    pub fn aux(self) -> i64 {
        self.node().aux.get()
    }
    /// Set the first integer field (not a pointer: no barrier needed).
    pub fn set_value(self, v: i64) {
        self.node().value.set(v)
    }
    /// Set the second integer field (not a pointer: no barrier needed).
    pub fn set_aux(self, v: i64) {
        self.node().aux.set(v)
    }
}

/// A scanned array of node handles, zero (null) initialised.
#[derive(Clone, Copy, Debug)]
pub struct RefArray {
    ptr: *const Cell<*const Node>,
    len: usize,
}

impl RefArray {
    /// Wrap `len` zeroed pointer slots at `ptr` that a heap allocated.
    pub fn from_raw(ptr: *mut u8, len: usize) -> RefArray {
        RefArray {
            ptr: ptr as *const Cell<*const Node>,
            len,
        }
    }
    /// The first slot (for backends that free it).
    pub fn as_ptr(self) -> *mut u8 {
        self.ptr as *mut u8
    }
    /// Number of slots.
    pub fn len(self) -> usize {
        self.len
    }
    /// Whether the array has no slots.
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
    fn slot(&self, i: usize) -> &Cell<*const Node> {
        assert!(i < self.len, "RefArray index {i} out of 0..{}", self.len);
        // SAFETY: in bounds (checked above); the heap keeps the array alive
        // while the workload holds it (module contract).
        unsafe { &*self.ptr.add(i) }
    }
    /// The handle in slot `i`.
    pub fn get(self, i: usize) -> NodeRef {
        NodeRef(self.slot(i).get())
    }
}

/// Plain numbers that may live in a [`DataBuf`]: every bit pattern,
/// including all zeroes, is a valid value.
pub trait Pod: Copy + 'static {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for u64 {}
impl Pod for i64 {}
impl Pod for f64 {}

/// A pointer-free array of numbers, zero initialised, uniquely owned.
#[derive(Debug)]
pub struct DataBuf<T: Pod> {
    ptr: NonNull<T>,
    len: usize,
    _owns: PhantomData<T>,
}

impl<T: Pod> DataBuf<T> {
    /// Wrap `len` zeroed elements at `ptr` that a heap allocated for this
    /// buffer alone.
    pub fn from_raw(ptr: NonNull<u8>, len: usize) -> DataBuf<T> {
        DataBuf {
            ptr: ptr.cast(),
            len,
            _owns: PhantomData,
        }
    }
    /// The first byte (for backends that free it).
    pub fn as_raw(&self) -> NonNull<u8> {
        self.ptr.cast()
    }
}

impl<T: Pod> std::ops::Deref for DataBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the heap allocated `len` zeroed elements for this buffer
        // alone (zero is valid for Pod), and keeps them alive while it is held.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for DataBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// Figures a collector reports about itself after a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorFigures {
    /// Collections (cycles) completed.
    pub collections: u64,
    /// Heap size at the end, bytes.
    pub heap_size: u64,
    /// Sum of pauses, nanoseconds.
    pub total_pause_ns: u64,
    /// Median pause, nanoseconds.
    pub pause_p50_ns: u64,
    /// 99th-percentile pause, nanoseconds.
    pub pause_p99_ns: u64,
    /// Longest pause, nanoseconds.
    pub pause_max_ns: u64,
    /// Every pause in nanoseconds, where the collector gives them.
    pub pauses_ns: Vec<u64>,
    /// Pages the dirty source reported.
    pub dirty_pages: u64,
    /// The dirty source in use (empty for collectors without one).
    pub dirty_source: String,
    /// Source- and collector-specific counters (PML events, modelled time).
    pub counters: Vec<(String, u64)>,
}

/// Where a workload's memory comes from. See the module documentation.
pub trait Heap {
    /// The backend's name (`malloc`, `bdwgc`, `bdwgc-incr`, `oohgc`).
    fn name(&self) -> &'static str;

    /// Whether memory must be freed explicitly (the `free_*` calls matter).
    fn frees_explicitly(&self) -> bool;

    /// The mutator-side stall meter, ticked by every allocation.
    fn meter(&mut self) -> &mut StallMeter;

    /// A new node.
    fn alloc_node(&mut self, left: NodeRef, right: NodeRef, value: i64) -> NodeRef;

    /// Release a node (explicit-free heaps; no-op for collected ones).
    fn free_node(&mut self, node: NodeRef);

    /// A new scanned array of `len` null handles.
    fn alloc_refs(&mut self, len: usize) -> RefArray;

    /// Release a ref array (explicit-free heaps; no-op for collected ones).
    fn free_refs(&mut self, refs: RefArray);

    /// `bytes` zeroed bytes, 8-aligned, that the collector need not scan.
    fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8>;

    /// Release what `alloc_data_bytes(bytes)` returned.
    fn free_data_bytes(&mut self, ptr: NonNull<u8>, bytes: usize);

    /// Tell the collector that a pointer was stored at `slot` inside an
    /// existing object (the `card` dirty source needs it). Default: nothing.
    fn write_barrier(&self, slot: *const u8) {
        let _ = slot;
    }

    /// Run a full collection now (no-op for `malloc`).
    fn collect(&mut self);

    /// The collector's figures so far.
    fn figures(&self) -> CollectorFigures;

    /// Sleep for `d` (a workload holding its rate). A collector with a
    /// blocking-region API gets the sleep declared as one, as a program
    /// would around a long wait, so stopping the world does not have to
    /// wake the sleeper.
    fn idle(&mut self, d: std::time::Duration) {
        std::thread::sleep(d);
    }

    /// Count one unit of non-allocating work for the stall meter.
    #[inline]
    fn tick(&mut self) {
        self.meter().tick();
    }

    /// A new pointer-free array of `len` zeroed numbers.
    fn alloc_data<T: Pod>(&mut self, len: usize) -> DataBuf<T>
    where
        Self: Sized,
    {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("DataBuf size overflows");
        DataBuf::from_raw(self.alloc_data_bytes(bytes.max(8)), len)
    }

    /// Release a pointer-free array.
    fn free_data<T: Pod>(&mut self, buf: DataBuf<T>)
    where
        Self: Sized,
    {
        let bytes = buf.len * std::mem::size_of::<T>();
        self.free_data_bytes(buf.as_raw(), bytes.max(8));
    }

    /// Store a pointer in a node's left field, with the write barrier.
    fn set_left(&self, node: NodeRef, value: NodeRef) {
        let slot = &node.node().left;
        slot.set(value.0);
        self.write_barrier(slot as *const _ as *const u8);
    }

    /// Store a pointer in a node's right field, with the write barrier.
    fn set_right(&self, node: NodeRef, value: NodeRef) {
        let slot = &node.node().right;
        slot.set(value.0);
        self.write_barrier(slot as *const _ as *const u8);
    }

    /// Store a pointer in slot `i` of a ref array, with the write barrier.
    fn set_ref(&self, refs: RefArray, i: usize, value: NodeRef) {
        let slot = refs.slot(i);
        slot.set(value.0);
        self.write_barrier(slot as *const _ as *const u8);
    }

    /// Free a whole tree reachable through left/right (explicit-free heaps
    /// only; a collected heap leaves it to the collector).
    fn free_tree(&mut self, root: NodeRef)
    where
        Self: Sized,
    {
        if !self.frees_explicitly() || root.is_null() {
            return;
        }
        let (l, r) = (root.left(), root.right());
        self.free_node(root);
        // Freeing is work, not a stall: let the meter see it progress.
        self.tick();
        self.free_tree(l);
        self.free_tree(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::malloc::MallocHeap;

    /// A malloc heap that records the slots its write barrier was told about.
    struct Recording {
        inner: MallocHeap,
        slots: std::cell::RefCell<Vec<usize>>,
    }

    impl Heap for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn frees_explicitly(&self) -> bool {
            true
        }
        fn meter(&mut self) -> &mut StallMeter {
            self.inner.meter()
        }
        fn alloc_node(&mut self, l: NodeRef, r: NodeRef, v: i64) -> NodeRef {
            self.inner.alloc_node(l, r, v)
        }
        fn free_node(&mut self, n: NodeRef) {
            self.inner.free_node(n)
        }
        fn alloc_refs(&mut self, len: usize) -> RefArray {
            self.inner.alloc_refs(len)
        }
        fn free_refs(&mut self, refs: RefArray) {
            self.inner.free_refs(refs)
        }
        fn alloc_data_bytes(&mut self, bytes: usize) -> NonNull<u8> {
            self.inner.alloc_data_bytes(bytes)
        }
        fn free_data_bytes(&mut self, ptr: NonNull<u8>, bytes: usize) {
            self.inner.free_data_bytes(ptr, bytes)
        }
        fn write_barrier(&self, slot: *const u8) {
            self.slots.borrow_mut().push(slot as usize);
        }
        fn collect(&mut self) {}
        fn figures(&self) -> CollectorFigures {
            CollectorFigures::default()
        }
    }

    #[test]
    fn pointer_stores_store_and_call_the_barrier_with_the_slot() {
        let mut heap = Recording {
            inner: MallocHeap::new(),
            slots: Default::default(),
        };
        let a = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 1);
        let b = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 2);
        let refs = heap.alloc_refs(4);
        heap.set_left(a, b);
        heap.set_right(b, a);
        heap.set_ref(refs, 3, b);
        assert_eq!(a.left(), b);
        assert_eq!(b.right(), a);
        assert_eq!(refs.get(3).value(), 2);
        assert!(refs.get(0).is_null());
        let base = |n: NodeRef| n.as_ptr() as usize;
        assert_eq!(
            *heap.slots.borrow(),
            [base(a), base(b) + 8, refs.as_ptr() as usize + 24],
            "barrier slots are the addresses stored to"
        );
        heap.free_refs(refs);
        heap.free_node(a);
        heap.free_node(b);
    }

    #[test]
    fn data_buffers_are_zeroed_and_writable() {
        let mut heap = MallocHeap::new();
        let mut buf = heap.alloc_data::<f64>(1000);
        assert!(buf.iter().all(|v| *v == 0.0));
        buf[999] = 2.5;
        assert_eq!(buf[999], 2.5);
        heap.free_data(buf);
    }
}
