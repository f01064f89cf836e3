//! Eight threads allocating, linking and dropping trees while collections
//! run; every tree is checked by its checksum.

mod common;

use oohgc::Gc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
    val: u64,
}

/// A tree and its checksum.
type TreeAndSum = (Gc<Node>, u64);

fn build(depth: u32, val: u64) -> Gc<Node> {
    if depth == 0 {
        Gc::new(Node {
            left: None,
            right: None,
            val,
        })
    } else {
        Gc::new(Node {
            left: Some(build(depth - 1, val.wrapping_mul(3))),
            right: Some(build(depth - 1, val.wrapping_add(7))),
            val,
        })
    }
}

fn sum(n: &Gc<Node>) -> u64 {
    n.val
        .wrapping_add(n.left.as_ref().map_or(0, sum))
        .wrapping_add(n.right.as_ref().map_or(0, sum))
}

#[test]
fn eight_threads_trees_and_collections() {
    let shared: Arc<Mutex<Vec<TreeAndSum>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                oohgc::collect();
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            n
        })
    };
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for round in 0..60u64 {
                    let seed = t * 1000 + round;
                    let tree = build(8 + (round % 4) as u32, seed);
                    let s = sum(&tree);
                    mine.push((tree, s));
                    if round.is_multiple_of(3) {
                        shared.lock().unwrap().push((tree, s));
                    }
                    if mine.len() > 6 {
                        mine.remove(0);
                    }
                    // Link: graft a shared tree under a fresh node.
                    let other = shared.lock().unwrap().last().copied();
                    if let Some((o, os)) = other {
                        let top = Gc::new(Node {
                            left: Some(o),
                            right: Some(tree),
                            val: 1,
                        });
                        assert_eq!(sum(&top), 1u64.wrapping_add(os).wrapping_add(s));
                    }
                    for (tr, s) in &mine {
                        assert_eq!(
                            sum(tr),
                            *s,
                            "a tree changed: an object was freed while live"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let n = collector.join().unwrap();
    for (t, s) in shared.lock().unwrap().iter() {
        assert_eq!(sum(t), *s);
    }
    assert!(n > 0);
    assert!(oohgc::stats().cycles >= n);
}
