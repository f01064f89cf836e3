//! GCBench (John Ellis and Pete Kovac; Hans Boehm's C version), written
//! from its published description.
//!
//! A stretch tree is built and dropped; a long-lived tree and a large array
//! of doubles stay live throughout; then, for depths 4, 6, .. 16, many
//! short-lived trees are built top-down (`populate`) and bottom-up
//! (`make_tree`), `2 * tree_size(stretch) / tree_size(depth)` of each.
//! Sizes follow the OoH paper's Table II: array / long-lived depth /
//! stretch depth = 500K/16/18 (S), 650K/18/20 (M), 750K/20/22 (L).
//!
//! Checksum: nodes counted in the last tree of each depth and in the
//! long-lived tree at the end, plus the array probe the original checks
//! (which fails loudly if a collector freed live data).

use super::Size;
use crate::heap::{Heap, NodeRef};
use crate::rng::mix;

/// GCBench's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Elements in the long-lived array of doubles.
    pub array_size: usize,
    /// Depth of the long-lived tree.
    pub long_lived_depth: u32,
    /// Depth of the stretch tree.
    pub stretch_depth: u32,
    /// Smallest short-lived tree depth.
    pub min_depth: u32,
    /// Largest short-lived tree depth.
    pub max_depth: u32,
}

/// The parameters for `size`.
pub fn params(size: Size) -> Params {
    let (array_size, long_lived_depth, stretch_depth, max_depth) = size.pick(
        (10_000, 10, 12, 10),
        (500_000, 16, 18, 16),
        (650_000, 18, 20, 16),
        (750_000, 20, 22, 16),
    );
    Params {
        array_size,
        long_lived_depth,
        stretch_depth,
        min_depth: 4,
        max_depth,
    }
}

/// Nodes in a complete tree of `depth`.
fn tree_size(depth: u32) -> u64 {
    (1u64 << (depth + 1)) - 1
}

/// Give `node` two children, recursively, to `depth` (top-down).
fn populate<H: Heap>(heap: &mut H, depth: u32, node: NodeRef) {
    if depth == 0 {
        return;
    }
    let left = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
    heap.set_left(node, left);
    let right = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
    heap.set_right(node, right);
    populate(heap, depth - 1, left);
    populate(heap, depth - 1, right);
}

/// A complete tree of `depth`, built bottom-up.
fn make_tree<H: Heap>(heap: &mut H, depth: u32) -> NodeRef {
    if depth == 0 {
        return heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
    }
    let left = make_tree(heap, depth - 1);
    let right = make_tree(heap, depth - 1);
    heap.alloc_node(left, right, 0)
}

/// Nodes reachable from `node` (ticking the stall meter per node).
pub fn count_nodes<H: Heap>(heap: &mut H, node: NodeRef) -> u64 {
    if node.is_null() {
        0
    } else {
        heap.tick();
        1 + count_nodes(heap, node.left()) + count_nodes(heap, node.right())
    }
}

/// Build the short-lived trees of one depth; returns a checksum part.
fn time_construction<H: Heap>(heap: &mut H, p: &Params, depth: u32) -> u64 {
    let iterations = 2 * tree_size(p.stretch_depth) / tree_size(depth);
    let mut checksum = 0;
    for i in 0..iterations {
        let tree = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
        populate(heap, depth, tree);
        if i + 1 == iterations {
            checksum = mix(checksum, count_nodes(heap, tree));
        }
        heap.free_tree(tree);
    }
    for i in 0..iterations {
        let tree = make_tree(heap, depth);
        if i + 1 == iterations {
            checksum = mix(checksum, count_nodes(heap, tree));
        }
        heap.free_tree(tree);
    }
    checksum
}

/// Run GCBench at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let p = params(size);
    let stretch = make_tree(heap, p.stretch_depth);
    let mut checksum = count_nodes(heap, stretch);
    heap.free_tree(stretch);

    let long_lived = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
    populate(heap, p.long_lived_depth, long_lived);

    let mut array = heap.alloc_data::<f64>(p.array_size);
    for i in 0..p.array_size / 2 {
        array[i] = 1.0 / i as f64;
    }

    let mut depth = p.min_depth;
    while depth <= p.max_depth {
        checksum = mix(checksum, time_construction(heap, &p, depth));
        depth += 2;
    }

    let probe = p.array_size.min(2000) / 2;
    assert!(
        array[probe] == 1.0 / probe as f64,
        "GCBench: the long-lived array was corrupted (a collector freed live data)"
    );
    checksum = mix(checksum, array[probe].to_bits());
    checksum = mix(checksum, count_nodes(heap, long_lived));
    heap.free_tree(long_lived);
    heap.free_data(array);
    checksum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::malloc::MallocHeap;

    #[test]
    fn trees_have_the_expected_node_counts() {
        let mut heap = MallocHeap::new();
        let tree = make_tree(&mut heap, 5);
        assert_eq!(count_nodes(&mut heap, tree), tree_size(5));
        heap.free_tree(tree);
        let root = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
        populate(&mut heap, 4, root);
        assert_eq!(count_nodes(&mut heap, root), tree_size(4));
        heap.free_tree(root);
    }

    #[test]
    fn tiny_run_is_deterministic() {
        let a = run(&mut MallocHeap::new(), Size::Tiny);
        let b = run(&mut MallocHeap::new(), Size::Tiny);
        assert_eq!(a, b);
        assert_ne!(a, 0);
    }
}
