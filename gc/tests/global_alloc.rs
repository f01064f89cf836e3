//! `GcAllocator` as the global allocator: a randomized `Box`/`Vec`/
//! `String`/`HashMap`/`BTreeMap` workload gives the same results as under
//! the system allocator (the same binary, re-run in a child process with the
//! system allocator switched in), with collections forced throughout; and
//! the edge cases of `GlobalAlloc` (alignment, `realloc`, zero-sized and
//! huge requests, failure as null).

mod common;

use common::{is_child, run_in_child, Rng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};

/// The test binary's allocator: oohgc, or the system allocator when the
/// child is started with `OOHGC_TEST_SYSTEM_ALLOC=1`.
struct Switch;

static MODE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 oohgc, 2 system

fn system_mode() -> bool {
    let m = MODE.load(Ordering::Relaxed);
    if m != 0 {
        return m == 2;
    }
    // SAFETY: getenv with a static C string; no allocation.
    let sys = unsafe { !libc::getenv(c"OOHGC_TEST_SYSTEM_ALLOC".as_ptr()).is_null() };
    MODE.store(if sys { 2 } else { 1 }, Ordering::Relaxed);
    sys
}

// SAFETY: forwards to one of two valid allocators, chosen once per process
// before the first allocation and never changed.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarding the caller's contract.
        unsafe {
            if system_mode() {
                System.alloc(l)
            } else {
                oohgc::GcAllocator.alloc(l)
            }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarding the caller's contract.
        unsafe {
            if system_mode() {
                System.dealloc(p, l)
            } else {
                oohgc::GcAllocator.dealloc(p, l)
            }
        }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarding the caller's contract.
        unsafe {
            if system_mode() {
                System.realloc(p, l, n)
            } else {
                oohgc::GcAllocator.realloc(p, l, n)
            }
        }
    }
}

#[global_allocator]
static ALLOC: Switch = Switch;

/// The randomized workload; returns a digest of everything it built.
fn workload(seed: u64, collect: bool) -> u64 {
    let mut rng = Rng(seed);
    let mut boxes: Vec<Box<[u64; 3]>> = Vec::new();
    let mut strings: Vec<String> = Vec::new();
    let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut tree: BTreeMap<String, Box<u64>> = BTreeMap::new();
    for step in 0..40_000u64 {
        match rng.below(8) {
            0 => boxes.push(Box::new([step, rng.next(), step ^ 7])),
            1 if !boxes.is_empty() => {
                let i = rng.below(boxes.len() as u64) as usize;
                boxes.swap_remove(i);
            }
            2 => strings
                .push(format!("s{}-{}", step, rng.below(1000)).repeat(1 + rng.below(20) as usize)),
            3 if !strings.is_empty() => {
                let i = rng.below(strings.len() as u64) as usize;
                let extra = "x".repeat(rng.below(200) as usize);
                strings[i].push_str(&extra);
            }
            4 => {
                let k = rng.below(3000);
                let v = map.entry(k).or_default();
                for _ in 0..rng.below(50) {
                    v.push(rng.next() as u32);
                }
            }
            5 => {
                map.remove(&rng.below(3000));
            }
            6 => {
                tree.insert(format!("k{}", rng.below(5000)), Box::new(step));
            }
            _ => {
                let k = format!("k{}", rng.below(5000));
                tree.remove(&k);
            }
        }
        if collect && step.is_multiple_of(4000) {
            oohgc::collect();
        }
    }
    let mut d = 0xcbf29ce484222325u64;
    let mut mix = |x: u64| d = (d ^ x).wrapping_mul(0x100000001b3);
    for b in &boxes {
        b.iter().for_each(|&x| mix(x));
    }
    for s in &strings {
        s.bytes().for_each(|c| mix(c as u64));
    }
    let mut keys: Vec<_> = map.keys().copied().collect();
    keys.sort();
    for k in keys {
        mix(k);
        map[&k].iter().for_each(|&x| mix(x as u64));
    }
    for (k, v) in &tree {
        k.bytes().for_each(|c| mix(c as u64));
        mix(**v);
    }
    d
}

#[test]
fn randomized_std_workload_matches_the_system_allocator() {
    if is_child() {
        println!("DIGEST {}", workload(7, false));
        return;
    }
    let ours = workload(7, true);
    let out = run_in_child(
        "randomized_std_workload_matches_the_system_allocator",
        &[("OOHGC_TEST_SYSTEM_ALLOC", "1")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let theirs: u64 = text
        .lines()
        .find_map(|l| l.split("DIGEST ").nth(1))
        .unwrap_or_else(|| panic!("no digest from the system-allocator run: {text}"))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        ours, theirs,
        "the workload's result differs under GcAllocator"
    );
    assert!(oohgc::stats().cycles >= 10);
}

#[test]
fn every_alignment_up_to_64k() {
    let mut align = 1;
    while align <= 65536 {
        for size in [1usize, 7, 16, 100, 4096, 10_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: valid layout; freed below.
            unsafe {
                let p = std::alloc::alloc(l);
                assert!(!p.is_null(), "size {size} align {align}");
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                std::ptr::write_bytes(p, 0xAB, size);
                std::alloc::dealloc(p, l);
            }
        }
        align *= 2;
    }
}

#[test]
fn realloc_keeps_contents_and_alignment() {
    for align in [8usize, 16, 64, 4096] {
        let l = Layout::from_size_align(24, align).unwrap();
        // SAFETY: valid layouts; each pointer is used within its size.
        unsafe {
            let mut p = std::alloc::alloc(l);
            for i in 0..24 {
                *p.add(i) = i as u8;
            }
            let mut size = 24;
            for new in [100usize, 5000, 300_000, 40, 9] {
                p = std::alloc::realloc(p, Layout::from_size_align(size, align).unwrap(), new);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                for i in 0..size.min(new).min(24) {
                    assert_eq!(*p.add(i), i as u8, "byte {i} lost growing {size} -> {new}");
                }
                size = new;
            }
            std::alloc::dealloc(p, Layout::from_size_align(size, align).unwrap());
        }
    }
}

#[test]
fn zero_sized_and_huge_requests() {
    let v: Vec<()> = vec![(); 1000];
    assert_eq!(v.len(), 1000);
    let b = Box::new(());
    drop(b);
    let s = String::new();
    assert!(s.capacity() == 0);
    // Called through the allocator value: the compiler may remove an unused
    // `std::alloc::alloc` and assume it succeeded.
    // SAFETY: huge but valid layouts; the allocator must return null.
    unsafe {
        let huge = Layout::from_size_align(usize::MAX / 4, 8).unwrap();
        assert!(
            std::hint::black_box(ALLOC.alloc(huge)).is_null(),
            "a 4 EiB request did not fail"
        );
        let big = Layout::from_size_align(1 << 46, 4096).unwrap();
        assert!(
            std::hint::black_box(ALLOC.alloc(big)).is_null(),
            "a 64 TiB request did not fail"
        );
    }
    // The heap still works afterwards.
    let v: Vec<u64> = (0..10_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 49_995_000);
}

#[test]
fn bad_deallocs_are_reported_not_corrupting() {
    if is_child() {
        let what = std::env::var("OOHGC_TEST_BAD_DEALLOC").unwrap_or_default();
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: deliberately invalid deallocations: the allocator must
        // report and abort before anything is corrupted.
        unsafe {
            match what.as_str() {
                "twice" => {
                    let p = ALLOC.alloc(layout);
                    ALLOC.dealloc(p, layout);
                    ALLOC.dealloc(p, layout);
                }
                "foreign" => {
                    let mut local = [0u64; 8];
                    ALLOC.dealloc(local.as_mut_ptr().cast(), layout);
                }
                "interior" => {
                    let p = ALLOC.alloc(layout);
                    ALLOC.dealloc(p.add(8), layout);
                }
                _ => return,
            }
        }
        println!("NOT DETECTED");
        return;
    }
    for (case, expect) in [
        ("twice", "double free"),
        ("foreign", "not a block of this allocator"),
        ("interior", "not the base of an object"),
    ] {
        let out = run_in_child(
            "bad_deallocs_are_reported_not_corrupting",
            &[("OOHGC_TEST_BAD_DEALLOC", case)],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: the process went on");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("NOT DETECTED"),
            "{case}: not detected"
        );
        assert!(
            err.contains(expect),
            "{case}: expected {expect:?} in: {err}"
        );
    }
}
