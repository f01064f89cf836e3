//! Leak reports (`OOHGC_FIND_LEAKS=1`): a `mem::forget`-ed `Box` and an `Rc`
//! cycle are reported; a live `Box` is not; the report ends with a summary.

mod common;

use common::{is_child, run_in_child};
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

struct Cyclic {
    _marker: [u8; 4000],
    other: RefCell<Option<Rc<Cyclic>>>,
}

#[inline(never)]
fn leak_things() -> (usize, usize) {
    let forgotten = Box::new([0x11u8; 3000]);
    let forgotten_addr = &*forgotten as *const [u8; 3000] as usize;
    std::mem::forget(forgotten);
    let a = Rc::new(Cyclic {
        _marker: [1; 4000],
        other: RefCell::new(None),
    });
    let b = Rc::new(Cyclic {
        _marker: [2; 4000],
        other: RefCell::new(Some(a.clone())),
    });
    *a.other.borrow_mut() = Some(b.clone());
    let cycle_addr = Rc::as_ptr(&a) as usize;
    (forgotten_addr ^ KEY, cycle_addr ^ KEY)
}

/// Addresses are kept XOR-masked so no stray copy keeps the leak reachable.
const KEY: usize = 0x5A5A_5A5A_5A5A_5A5A;

#[inline(never)]
fn print_addr(label: &str, masked: usize) {
    println!("{label} {:#x}", masked ^ KEY);
}

#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 4096];
    black_box(&mut buf);
}

#[test]
fn leaks_are_reported_and_live_blocks_are_not() {
    if !is_child() {
        let out = run_in_child(
            "leaks_are_reported_and_live_blocks_are_not",
            &[("OOHGC_FIND_LEAKS", "1")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{err}");
        let line = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.split(prefix).nth(1))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        };
        let forgotten = line("FORGOTTEN ").expect("child printed the forgotten address");
        let live = line("LIVE ").expect("child printed the live address");
        assert!(
            err.contains(&format!("at {forgotten} ")),
            "the forgotten Box was not reported:\n{err}"
        );
        assert!(
            !err.contains(&format!("at {live} ")),
            "a live Box was reported as leaked:\n{err}"
        );
        assert!(err.contains("leak summary"), "no summary line:\n{err}");
        // The Rc cycle: two blocks of a little over 4000 bytes each.
        let big = err
            .lines()
            .filter(|l| l.contains("oohgc: leak:") && l.contains(" 40"))
            .count();
        assert!(big >= 2, "the Rc cycle was not reported:\n{err}");
        return;
    }
    let live = Box::new([0x22u8; 3000]);
    let (forgotten, _cycle) = leak_things();
    clobber_stack();
    print_addr("FORGOTTEN", forgotten);
    print_addr("LIVE", (&*live as *const [u8; 3000] as usize) ^ KEY);
    clobber_stack();
    // Collect from another thread: this thread is then scanned from where it
    // waits, not from inside the collector's own frames (whose unused slots
    // may still hold the leaked blocks' addresses).
    for _ in 0..3 {
        std::thread::spawn(oohgc::collect).join().unwrap();
    }
    assert_eq!(live[2999], 0x22);
}

#[test]
fn a_program_that_leaks_nothing_gets_an_empty_report() {
    if !is_child() {
        let out = run_in_child(
            "a_program_that_leaks_nothing_gets_an_empty_report",
            &[("OOHGC_FIND_LEAKS", "1"), ("OOHGC_LEAK_BACKTRACES", "1")],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("leak summary"), "no leak pass ran:\n{err}");
        assert!(
            !err.contains("oohgc: leak:"),
            "blocks reported leaked in a program that frees everything:\n{err}"
        );
        return;
    }
    let mut held: Vec<Box<[u64; 8]>> = (0..1000).map(|i| Box::new([i; 8])).collect();
    let map: std::collections::HashMap<u64, String> =
        (0..500).map(|i| (i, format!("value {i}"))).collect();
    // Threads that come and go, detached and joined, some allocating.
    for i in 0..8 {
        let h = std::thread::spawn(move || {
            if i % 2 == 0 {
                black_box(vec![i; 100]);
            }
        });
        if i % 3 == 0 {
            drop(h);
        } else {
            h.join().unwrap();
        }
    }
    // Concurrent cycles (the collector thread's own blocks must not show
    // up) and blocking ones.
    oohgc::start_cycle();
    oohgc::wait_for_cycles(1);
    for _ in 0..3 {
        oohgc::collect();
    }
    held.truncate(10);
    assert_eq!(held[9][0], 9);
    assert_eq!(map[&499], "value 499");
}
