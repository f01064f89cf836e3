//! Mark-speed probe: a GCBench-shaped live heap (a depth-16 binary tree, a
//! second one, a 4 MiB pointer-free array) collected repeatedly, with and
//! without 8 MiB of garbage allocated in between (which evicts the caches
//! the way a real mutator does). Prints the fastest and the median marking
//! time per live node over 41 collections; the argument is the trees'
//! depth (default 16: 2 x 131,071 nodes). The probe behind the marking
//! loop's tuning (mark.rs): the figures are per node, so they compare
//! across tree sizes and show whether the loop is bound by memory (cold)
//! or by instructions (warm).
//!
//! `cargo run --release -p oohgc --example mark_speed [-- DEPTH]`

use oohgc::Gc;
use std::cell::Cell;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

struct Node {
    left: Cell<Option<Gc<Node>>>,
    right: Cell<Option<Gc<Node>>>,
    i: Cell<u64>,
    j: Cell<u64>,
}

fn make(depth: u32) -> Gc<Node> {
    let n = Gc::new(Node {
        left: Cell::new(None),
        right: Cell::new(None),
        i: Cell::new(depth as u64),
        j: Cell::new(0),
    });
    if depth > 0 {
        n.left.set(Some(make(depth - 1)));
        n.right.set(Some(make(depth - 1)));
    }
    n
}

fn mark_ns_per_node(nodes: u64, rounds: u32, garbage: bool) -> (f64, f64) {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        if garbage {
            for _ in 0..(8 << 20) / 32 {
                std::hint::black_box(Gc::new(0u64));
            }
        }
        let before = oohgc::stats().total_mark_ns;
        oohgc::collect();
        samples.push((oohgc::stats().total_mark_ns - before) as f64 / nodes as f64);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[0], samples[samples.len() / 2])
}

fn main() {
    let d: u32 = std::env::args().nth(1).map_or(16, |s| s.parse().unwrap());
    let a = make(d);
    let b = make(d);
    let arr = oohgc::alloc_noscan(std::alloc::Layout::from_size_align(4 << 20, 8).unwrap());
    let nodes = 2 * ((1u64 << (d + 1)) - 1);
    for (label, garbage) in [("warm", false), ("cold", true)] {
        let (min, median) = mark_ns_per_node(nodes, 41, garbage);
        println!("{label}  min {min:.2}  median {median:.2} ns/node");
    }
    // Walk the trees after all those collections: every node must be there.
    assert_eq!(count(&a) + count(&b), nodes, "lost nodes");
    std::hint::black_box(arr);
}

/// Nodes in the tree under `n`, checking each node's contents.
fn count(n: &Node) -> u64 {
    assert_eq!(n.j.get(), 0);
    let kids = [n.left.get(), n.right.get()];
    1 + kids
        .iter()
        .flatten()
        .map(|k| {
            assert_eq!(k.i.get() + 1, n.i.get());
            count(k)
        })
        .sum::<u64>()
}
