//! Unreachable objects are reclaimed: allocating and dropping ten times the
//! heap limit keeps the heap bounded, and a heap that fills up with live data
//! fails allocation cleanly instead of crashing.

mod common;

use common::{assert_child_ok, is_child, run_in_child};
use oohgc::Gc;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

const LIMIT: usize = 64 << 20;

#[test]
fn ten_times_the_heap_limit_in_garbage() {
    if !is_child() {
        let out = run_in_child(
            "ten_times_the_heap_limit_in_garbage",
            &[("OOHGC_MAX_HEAP", "64M")],
        );
        assert_child_ok(&out);
        return;
    }
    let mut kept = Vec::new();
    let mut allocated = 0usize;
    let mut i = 0u64;
    while allocated < 10 * LIMIT {
        // Small objects, a medium array and a large one in turn.
        let small = Gc::new([i; 4]);
        let medium = Gc::from_slice_noscan(&vec![i; 300]);
        let large = Gc::from_slice_noscan(&vec![i as u8; 100_000]);
        allocated += 32 + 2400 + 100_000;
        if i.is_multiple_of(1000) {
            kept.push(small);
        }
        std::hint::black_box((medium, large));
        i += 1;
        let heap = oohgc::heap_size();
        assert!(
            heap <= LIMIT,
            "heap grew to {heap} bytes past the {LIMIT}-byte limit"
        );
    }
    for (k, g) in kept.iter().enumerate() {
        assert_eq!(g[0], k as u64 * 1000);
    }
    let s = oohgc::stats();
    assert!(
        s.cycles > 5,
        "only {} cycles for {} bytes allocated",
        s.cycles,
        allocated
    );
    eprintln!(
        "allocated {} MiB in a {} MiB heap with {} cycles",
        allocated >> 20,
        LIMIT >> 20,
        s.cycles
    );
}

#[test]
fn live_data_past_the_limit_is_an_allocation_failure() {
    if !is_child() {
        let out = run_in_child(
            "live_data_past_the_limit_is_an_allocation_failure",
            &[("OOHGC_MAX_HEAP", "32M")],
        );
        // Rust's handle_alloc_error prints "memory allocation of N bytes
        // failed" and aborts: a clean report, not a crash in the allocator.
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("memory allocation of"), "stderr: {err}");
        assert!(!err.contains("Segmentation"), "stderr: {err}");
        return;
    }
    let mut keep = Vec::new();
    loop {
        keep.push(Gc::from_slice_noscan(&[7u8; 4096]));
    }
}

#[test]
fn explicit_free_then_reuse_after_the_limit() {
    if !is_child() {
        // Stop-the-world and no Vec growth while the heap is full: nothing
        // else may need memory while the test holds it all.
        let out = run_in_child(
            "explicit_free_then_reuse_after_the_limit",
            &[("OOHGC_MAX_HEAP", "32M"), ("OOHGC_DIRTY", "none")],
        );
        assert_child_ok(&out);
        return;
    }
    use std::alloc::{GlobalAlloc, Layout};
    // Through the allocator value, not `std::alloc::alloc`, whose unused
    // results the compiler may remove (and assume non-null).
    // SAFETY (both): valid layouts; pointers passed back came from `alloc`.
    let alloc = |l: Layout| std::hint::black_box(unsafe { GC.alloc(l) });
    let dealloc = |p: *mut u8, l: Layout| unsafe { GC.dealloc(p, l) };
    let layout = Layout::from_size_align(1 << 20, 8).unwrap();
    let mut blocks = [std::ptr::null_mut::<u8>(); 64];
    let mut n = 0;
    loop {
        let p = alloc(layout);
        if p.is_null() {
            break;
        }
        assert!(n < 32, "more than 32 MiB under a 32 MiB limit");
        blocks[n] = p;
        n += 1;
    }
    let full = n;
    n -= 1;
    dealloc(blocks[n], layout);
    let q = alloc(layout);
    let reused = !q.is_null();
    if reused {
        blocks[n] = q;
        n += 1;
    }
    for &p in &blocks[..n] {
        dealloc(p, layout);
    }
    assert!(full >= 16, "only {full} MiB before failure");
    assert!(reused, "allocation after a free failed");
}
