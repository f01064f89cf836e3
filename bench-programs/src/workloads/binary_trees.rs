//! binary-trees (the Computer Language Benchmarks Game), written from its
//! published description.
//!
//! With maximum depth `n` (at least min depth + 2): build and check a
//! stretch tree of depth `n + 1`; keep a long-lived tree of depth `n`; for
//! depths 4, 6, .. `n` build `2^(n - d + 4)` trees of depth `d` and sum
//! their node counts; finally check the long-lived tree. Sizes: depth 12
//! (tiny), 16 (S), 18 (M), 20 (L).

use super::Size;
use crate::heap::{Heap, NodeRef};
use crate::rng::mix;

/// Smallest tree depth.
const MIN_DEPTH: u32 = 4;

/// The maximum depth for `size`.
pub fn max_depth(size: Size) -> u32 {
    size.pick(12, 16, 18, 20).max(MIN_DEPTH + 2)
}

/// A complete tree of `depth`, bottom-up.
fn bottom_up<H: Heap>(heap: &mut H, depth: u32) -> NodeRef {
    if depth == 0 {
        return heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 0);
    }
    let left = bottom_up(heap, depth - 1);
    let right = bottom_up(heap, depth - 1);
    heap.alloc_node(left, right, 0)
}

/// The benchmark's "check": the node count.
fn check<H: Heap>(heap: &mut H, node: NodeRef) -> u64 {
    heap.tick();
    if node.left().is_null() {
        1
    } else {
        1 + check(heap, node.left()) + check(heap, node.right())
    }
}

/// Run binary-trees at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let n = max_depth(size);
    let stretch = bottom_up(heap, n + 1);
    let mut checksum = check(heap, stretch);
    heap.free_tree(stretch);

    let long_lived = bottom_up(heap, n);
    let mut depth = MIN_DEPTH;
    while depth <= n {
        let iterations = 1u64 << (n - depth + MIN_DEPTH);
        let mut sum = 0;
        for _ in 0..iterations {
            let tree = bottom_up(heap, depth);
            sum += check(heap, tree);
            heap.free_tree(tree);
        }
        checksum = mix(checksum, sum);
        depth += 2;
    }
    checksum = mix(checksum, check(heap, long_lived));
    heap.free_tree(long_lived);
    checksum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::malloc::MallocHeap;

    #[test]
    fn check_counts_every_node() {
        let mut heap = MallocHeap::new();
        let tree = bottom_up(&mut heap, 6);
        assert_eq!(check(&mut heap, tree), 127);
        heap.free_tree(tree);
    }
}
