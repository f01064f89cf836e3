//! `oohgc::blocking(|| ...)` bodies: a collected object allocated inside
//! one is refused loudly (nothing scans the frames that would hold it, and
//! the thread is not stopped by pauses); `Box`/`Vec`/`String` allocation
//! inside one is allowed and stays intact while cycles run.

mod common;

use oohgc::Gc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

#[test]
fn child_allocates_gc_in_blocking() {
    if !common::is_child() {
        return; // Run only as the child of `gc_allocation_inside_blocking_is_refused`.
    }
    let g = oohgc::blocking(|| Gc::new([7u64; 8]));
    println!("allocated {:?} inside a blocking region unchecked", g[0]);
}

#[test]
fn gc_allocation_inside_blocking_is_refused() {
    if common::is_child() {
        return;
    }
    let out = common::run_in_child_for(
        "child_allocates_gc_in_blocking",
        &[],
        Duration::from_secs(60),
    );
    let status = out.status.expect("child hung");
    assert!(
        !status.success(),
        "Gc::new inside blocking was not refused:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("inside oohgc::blocking"),
        "the refusal must name the mistake:\n{}",
        out.stderr
    );
}

#[test]
fn box_and_vec_allocation_inside_blocking_is_safe() {
    let stop = Arc::new(AtomicBool::new(false));
    let collections = Arc::new(AtomicU64::new(0));
    let (s2, c2) = (stop.clone(), collections.clone());
    let collector = std::thread::spawn(move || {
        while !s2.load(Ordering::Acquire) {
            common::churn(1);
            oohgc::collect();
            c2.fetch_add(1, Ordering::Release);
        }
    });
    let kept = Gc::new([42u64; 4]);
    let mut round = 0u64;
    // Until 20 collections have run beside the blocking regions.
    while collections.load(Ordering::Acquire) < 20 {
        round += 1;
        let v = oohgc::blocking(|| {
            let mut v: Vec<Box<[u64; 16]>> = Vec::new();
            for i in 0..200u64 {
                v.push(Box::new([round ^ i; 16]));
            }
            v
        });
        for (i, b) in v.iter().enumerate() {
            assert_eq!(**b, [round ^ i as u64; 16]);
        }
        assert_eq!(*kept, [42u64; 4]);
    }
    stop.store(true, Ordering::Release);
    collector.join().unwrap();
}
