//! The "moving subgraphs" mutator: containers with drop glue whose
//! subgraphs move from one old container into another while cycles run —
//! the pattern an incremental-update marker misses when a write is lost
//! (the destination was scanned, the source not yet).

use super::Rng;
use oohgc::Gc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An object with drop glue that can hang a subgraph under itself.
pub struct Node {
    name: String,
    child: Mutex<Option<Gc<Node>>>,
}

fn node(i: u64) -> Gc<Node> {
    Gc::new(Node {
        name: format!("node-{i}"),
        child: Mutex::new(None),
    })
}

/// Move the subgraph under a random slot's container into another random
/// slot's container (dropping what hung there), and hang a fresh node where
/// it was, for `secs` seconds; every round of 1000 moves then walks every
/// chain and panics on a corrupted (freed and reused) object. Returns the
/// number of moves.
pub fn move_subgraphs(slots: usize, secs: u64) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let table: Vec<Gc<Node>> = (0..slots as u64).map(node).collect();
    for (i, c) in table.iter().enumerate() {
        *c.child.lock().unwrap() = Some(node(i as u64));
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut moves = 0u64;
    let mut fresh = slots as u64;
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let b = rng.below(slots as u64) as usize;
            let a = rng.below(slots as u64) as usize;
            if a == b {
                continue;
            }
            let taken = table[b].child.lock().unwrap().take();
            *table[a].child.lock().unwrap() = taken;
            *table[b].child.lock().unwrap() = Some(node(fresh));
            fresh += 1;
            moves += 1;
        }
        let mut check = 0usize;
        for c in &table {
            check += c.name.len();
            let mut next = *c.child.lock().unwrap();
            while let Some(n) = next {
                assert!(n.name.starts_with("node-"), "a live object was corrupted");
                next = *n.child.lock().unwrap();
            }
        }
        std::hint::black_box(check);
    }
    moves
}
