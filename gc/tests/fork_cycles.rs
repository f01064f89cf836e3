//! `fork()` while the collector works: the fork must not wait for a running
//! concurrent cycle (a program that spawns processes often would stall for
//! whole cycles), the child (which goes on without `exec`) must be able to
//! allocate, free and collect on its own, and nothing the child does may
//! touch the parent's dirty tracking (an inherited userfaultfd acts on the
//! parent's address space): the parent's cycles stay verified-clean.

mod common;

use oohgc::Gc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

struct Link {
    value: u64,
    next: Option<Gc<Link>>,
}

/// A long list: concurrent marking walks it one node at a time.
fn long_list(n: u64) -> Gc<Link> {
    let mut head = Gc::new(Link {
        value: 0,
        next: None,
    });
    for i in 1..n {
        head = Gc::new(Link {
            value: i,
            next: Some(head),
        });
    }
    head
}

fn sum(mut l: Option<Gc<Link>>) -> u64 {
    let mut s = 0;
    while let Some(n) = l {
        s += n.value;
        l = n.next;
    }
    s
}

/// In the child: allocate well past the heap's committed size (new chunks,
/// which the parent's source must never be asked to track), drop it, free
/// `Box`es (memory given back), collect, and check a structure built here.
fn child_work(list: Gc<Link>, expected: u64) -> i32 {
    let kept = Mutex::new(Vec::new());
    for round in 0..3u64 {
        let mut boxes: Vec<Box<[u64; 512]>> =
            (0..2000).map(|i| Box::new([round ^ i; 512])).collect();
        boxes.truncate(10);
        kept.lock().unwrap().push(Gc::new([round; 16]));
        common::churn(8);
        oohgc::collect();
        if boxes
            .iter()
            .enumerate()
            .any(|(i, b)| b[0] != round ^ i as u64)
        {
            return 3;
        }
    }
    if sum(Some(list)) != expected {
        return 4;
    }
    for (round, g) in kept.lock().unwrap().iter().enumerate() {
        if **g != [round as u64; 16] {
            return 5;
        }
    }
    0
}

#[test]
fn fork_does_not_wait_for_the_running_cycle() {
    oohgc::Config::from_env()
        .unwrap()
        .verify(true)
        .apply()
        .unwrap();
    oohgc::init().unwrap();
    let nodes = 1_000_000u64;
    let list = long_list(nodes);
    let expected = nodes * (nodes - 1) / 2;
    let (mut forks_during_cycles, mut returned_mid_cycle) = (0, 0);
    for _ in 0..12 {
        // Under `none` no cycle starts here (cycles are stop-the-world):
        // the forks then check the child only.
        oohgc::start_cycle();
        let during = oohgc::cycle_in_progress();
        let before = oohgc::stats().cycles;
        // SAFETY: the child only runs this crate's code and then _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = child_work(list, expected);
            // SAFETY: leaving the child without running the parent's atexit work.
            unsafe { libc::_exit(code) };
        }
        assert!(pid > 0, "fork failed");
        if during {
            forks_during_cycles += 1;
            if oohgc::stats().cycles == before && oohgc::cycle_in_progress() {
                returned_mid_cycle += 1;
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child failed: status {status:#x} (exit code {})",
            libc::WEXITSTATUS(status)
        );
        oohgc::wait_for_cycles(1);
    }
    if forks_during_cycles > 0 {
        // Forks that waited for their cycle would all return after its end.
        assert!(
            returned_mid_cycle * 2 >= forks_during_cycles,
            "fork waited for the running cycle: {returned_mid_cycle} of \
             {forks_during_cycles} forks returned while it ran"
        );
    }
    // The parent's tracking is intact: mutate the old list while cycles run
    // (verifier on), then check it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        oohgc::start_cycle();
        common::churn(4);
    }
    oohgc::wait_for_cycles(2);
    assert_eq!(sum(Some(list)), expected);
    println!("{returned_mid_cycle} of {forks_during_cycles} forks returned while their cycle ran");
}
