//! The main thread's static TLS block lives in a small mapping of its own,
//! outside its stack: a `thread_local!` of the main thread must lie in a range
//! reported for it, both when another thread stops the world and through
//! `current_thread_roots`, registered or not. (No test harness: the code must
//! run on the process's real main thread.)

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

thread_local! {
    static MAIN_MARK: Cell<usize> = const { Cell::new(0) };
}

fn covered(ranges: &[(usize, usize)], address: usize) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= address && address < hi)
}

/// Another thread stops the world and collects the ranges reported for the
/// main thread (tid == pid).
fn main_thread_ranges_seen_from_another_thread() -> Vec<(usize, usize)> {
    let pid = std::process::id() as i32;
    let keep_busy = Arc::new(AtomicBool::new(false));
    let collector = std::thread::spawn(move || {
        let world = oohgc_barriers::stop_world();
        let mut ranges = Vec::new();
        world.for_each_thread(&mut |roots| {
            if roots.tid == pid {
                ranges.push(roots.stack);
                ranges.extend_from_slice(roots.tls);
            }
        });
        drop(world);
        ranges
    });
    // The main thread keeps running (and is stopped) meanwhile.
    while !collector.is_finished() {
        std::hint::black_box(&keep_busy).load(Ordering::Relaxed);
        std::hint::spin_loop();
    }
    collector.join().unwrap()
}

fn check(label: &str) {
    let mark = MAIN_MARK.with(|m| {
        m.set(42);
        m as *const Cell<usize> as usize
    });
    let local = std::hint::black_box(0x5EED_4444_5555_6666usize);
    let local_address = &local as *const usize as usize;

    let ranges = main_thread_ranges_seen_from_another_thread();
    assert!(!ranges.is_empty(), "{label}: main thread not reported");
    assert!(
        covered(&ranges, mark),
        "{label}: main thread_local at {mark:#x} not in reported ranges {ranges:x?}"
    );
    assert!(
        covered(&ranges, local_address),
        "{label}: main-thread local at {local_address:#x} not in reported ranges {ranges:x?}"
    );
    let stack = ranges[0];
    assert!(
        !(stack.0 <= mark && mark < stack.1),
        "{label}: expected the main thread's TLS outside its stack {stack:x?} (mark {mark:#x})"
    );

    let mut own = Vec::new();
    oohgc_barriers::current_thread_roots(&mut |lo, hi| own.push((lo, hi)));
    assert!(
        covered(&own, mark),
        "{label}: current_thread_roots misses the main thread_local at {mark:#x}: {own:x?}"
    );
    assert!(
        covered(&own, local_address),
        "{label}: current_thread_roots misses a local at {local_address:#x}: {own:x?}"
    );
    std::hint::black_box(&local);
    println!("{label}: ok (stack {stack:x?}, ranges {ranges:x?})");
}

fn main() {
    // Speak just enough of libtest's protocol for cargo-nextest, which lists
    // a binary's tests before running them.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("main_thread_roots: test");
        }
        return;
    }
    oohgc_barriers::init(Default::default()).unwrap();
    check("main thread never registered");
    oohgc_barriers::register_current_thread();
    check("main thread registered");
    println!("test result: ok. 2 passed");
}
