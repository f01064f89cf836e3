//! The verifier must catch a lost write, whatever the lost object holds.
//!
//! `card` with no `write_barrier` calls is a source that loses every heap
//! write of the program: under it, moving subgraphs between old containers
//! while cycles run hides live objects from the marker. The payloads have
//! drop glue (a `String`, a `Mutex<Option<Gc<_>>>`), so every object is
//! finalizable: the verifier has to run before finalization rescues (marks
//! and queues) the objects the cycle missed, or it sees them as marked and
//! passes while they are finalized in use. The child must abort with the
//! verifier's message within a bounded time: never pass, never hang.

mod common;

use common::Rng;
use oohgc::Gc;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// An object with drop glue that can hang a subgraph under itself.
struct Node {
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
/// it was: pointers move from one old object into another, which is what an
/// incremental-update marker misses when the destination was scanned and
/// the source was not. Runs for `secs` seconds (the child is expected to be
/// stopped by the verifier long before).
fn move_subgraphs(slots: usize, secs: u64) -> u64 {
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
        // Touch every object: a freed (and reused) one would show here.
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

#[test]
fn child_moves_subgraphs() {
    if !common::is_child() {
        return; // Run only as the child of `verifier_catches_lost_finalizable_objects`.
    }
    oohgc::init().unwrap();
    let moves = move_subgraphs(50_000, 60);
    println!("moved {moves} subgraphs and the verifier saw nothing");
}

#[test]
fn verifier_catches_lost_finalizable_objects() {
    if common::is_child() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["child_moves_subgraphs", "--exact", "--nocapture"])
        .env(common::CHILD_VAR, "1")
        .env("OOHGC_DIRTY", "card")
        .env("OOHGC_VERIFY", "1")
        .env("OOHGC_INITIAL_HEAP", "1M")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the child would run for 60 s if nothing stopped it; a hang
    // (a finalized Mutex still in use) is a failure too.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status = status.unwrap_or_else(|| {
        panic!(
            "the child hung for 120 s under a lossy source\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    });
    assert!(
        !status.success(),
        "the verifier let a lossy source pass\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("VERIFY FAILED") && stderr.contains("would have been freed"),
        "the child failed ({status:?}) but not through the verifier\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
