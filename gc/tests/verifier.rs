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

use common::subgraphs::move_subgraphs;
use std::time::Duration;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

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
    // Bounded: the child would run for 60 s if nothing stopped it; a hang
    // (a finalized Mutex still in use) is a failure too.
    let out = common::run_in_child_for(
        "child_moves_subgraphs",
        &[
            ("OOHGC_DIRTY", "card"),
            ("OOHGC_VERIFY", "1"),
            ("OOHGC_INITIAL_HEAP", "1M"),
        ],
        Duration::from_secs(120),
    );
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let status = out.status.unwrap_or_else(|| {
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
