//! pointer-mutation: a large long-lived graph rewired at a set rate.
//!
//! `graph_nodes` vertices (a [`RefArray`](crate::heap::RefArray) of
//! [`Node`](crate::heap::Node)s, two edges each) are built once; then
//! `stores` random edge stores rewire them, paced to `store_rate` stores
//! per second (0 = as fast as possible), each store followed by the write
//! barrier (`Heap::set_left`/`set_right` call it; the `card` source needs
//! it). Every [`CHURN_EVERY`] stores a small tree is allocated into a ring
//! of [`RING`] slots, replacing (and, for `malloc`, freeing) the oldest:
//! steady allocation churn while the old graph keeps being modified — the
//! case where the dirty source decides how much the final pause re-scans.
//!
//! Waiting to hold the rate is excluded from the stall meter, and is a
//! blocking region for the collectors that have one (`Heap::idle`): the
//! world is stopped without waking the sleeper, whose wake-up on this VM
//! (an idle vCPU) takes 0.1-2 ms and is not the collector's work.

use super::{Knobs, Size, SEED};
use crate::heap::{Heap, NodeRef};
use crate::rng::{mix, Rng};
use std::time::{Duration, Instant};

/// Stores between two churn allocations.
pub const CHURN_EVERY: u64 = 16;
/// Slots in the churn ring.
pub const RING: usize = 1024;
/// Depth of each churn tree (15 nodes).
const CHURN_DEPTH: u32 = 3;

/// The effective parameters of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Vertices in the graph.
    pub graph_nodes: u64,
    /// Edge stores in the run.
    pub stores: u64,
    /// Stores per second; 0 = unpaced.
    pub store_rate: u64,
}

/// Parameters for `size`, with the knobs applied.
pub fn params(size: Size, knobs: &Knobs) -> Params {
    let (graph_nodes, stores, store_rate) = size.pick(
        (10_000, 100_000, 0),
        (200_000, 2_000_000, 4_000_000),
        (1_000_000, 5_000_000, 4_000_000),
        (4_000_000, 10_000_000, 4_000_000),
    );
    Params {
        graph_nodes: knobs.graph_nodes.unwrap_or(graph_nodes).max(2),
        stores,
        store_rate: knobs.store_rate.unwrap_or(store_rate),
    }
}

fn tree<H: Heap>(heap: &mut H, depth: u32) -> NodeRef {
    if depth == 0 {
        return heap.alloc_node(NodeRef::NULL, NodeRef::NULL, 1);
    }
    let l = tree(heap, depth - 1);
    let r = tree(heap, depth - 1);
    heap.alloc_node(l, r, 1)
}

fn count<H: Heap>(heap: &mut H, node: NodeRef) -> u64 {
    if node.is_null() {
        0
    } else {
        heap.tick();
        node.value() as u64 + count(heap, node.left()) + count(heap, node.right())
    }
}

/// Run pointer-mutation; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size, knobs: &Knobs) -> u64 {
    let p = params(size, knobs);
    let n = p.graph_nodes as usize;
    let mut rng = Rng::new(SEED ^ 0x706d);
    let vertices = heap.alloc_refs(n);
    for i in 0..n {
        let v = heap.alloc_node(NodeRef::NULL, NodeRef::NULL, i as i64);
        heap.set_ref(vertices, i, v);
    }
    for i in 0..n {
        let v = vertices.get(i);
        heap.set_left(v, vertices.get(rng.below(n as u64) as usize));
        heap.set_right(v, vertices.get(rng.below(n as u64) as usize));
    }
    let ring = heap.alloc_refs(RING);
    let start = Instant::now();
    let mut churned = 0usize;
    for s in 0..p.stores {
        let from = vertices.get(rng.below(n as u64) as usize);
        let to = vertices.get(rng.below(n as u64) as usize);
        if s & 1 == 0 {
            heap.set_left(from, to);
        } else {
            heap.set_right(from, to);
        }
        heap.tick();
        if s % CHURN_EVERY == 0 {
            let slot = churned % RING;
            let old = ring.get(slot);
            let young = tree(heap, CHURN_DEPTH);
            heap.set_ref(ring, slot, young);
            heap.free_tree(old);
            churned += 1;
        }
        if p.store_rate > 0 && s % 1024 == 1023 {
            let due = Duration::from_secs_f64((s + 1) as f64 / p.store_rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                heap.idle(due - elapsed);
                heap.meter().skip_gap();
            }
        }
    }
    let mut checksum = mix(0, churned as u64);
    for i in 0..n {
        let v = vertices.get(i);
        heap.tick();
        checksum = mix(
            checksum,
            (v.left().value() as u64) << 32 | v.right().value() as u64,
        );
    }
    for slot in 0..RING {
        checksum = mix(checksum, count(heap, ring.get(slot)));
        heap.free_tree(ring.get(slot));
    }
    heap.free_refs(ring);
    for i in 0..n {
        heap.free_node(vertices.get(i));
        heap.tick();
    }
    heap.free_refs(vertices);
    checksum
}
