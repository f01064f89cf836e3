//! Marks and sweep: unmarked Managed objects go, marked ones and Manual ones
//! stay intact; freed slots are reused; detached spans and large objects go
//! back to the pool; long-empty memory is returned to the OS.
//! The tests share one heap, so they run one at a time.

use oohgc_allocator::*;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: p has len usable bytes.
        unsafe { *p.add(i) = seed ^ (i as u8) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: p has len usable bytes.
    (0..len).all(|i| unsafe { *p.add(i) } == seed ^ (i as u8))
}

fn resident_pages(start: usize, len: usize) -> usize {
    let pages = len / PAGE_SIZE;
    let mut v = vec![0u8; pages];
    // SAFETY: the range is mapped (committed heap); v has one byte per page.
    let r = unsafe { libc::mincore(start as *mut libc::c_void, len, v.as_mut_ptr()) };
    assert_eq!(r, 0);
    v.iter().filter(|&&b| b & 1 != 0).count()
}

#[test]
fn unmarked_objects_are_reclaimed_marked_and_manual_survive() {
    let _g = SERIAL.lock().unwrap();
    clear_marks();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut objs = Vec::new();
    for i in 0..3000 {
        let size = match i % 10 {
            0 => 40_000 + (rng.next() % 100_000) as usize,
            _ => 1 + (rng.next() % 3000) as usize,
        };
        let kind = match i % 3 {
            0 => ObjectKind::Managed,
            1 => ObjectKind::ManagedNoScan,
            _ => ObjectKind::Manual,
        };
        let p = alloc(size, 16, kind);
        assert!(!p.is_null());
        let u = unsafe { usable_size(p) };
        fill(p, u, i as u8);
        let keep = rng.next().is_multiple_of(2);
        if keep && kind != ObjectKind::Manual {
            assert!(try_mark(p as usize));
        }
        objs.push((p, u, kind, keep, i as u8));
    }
    let before = stats();
    let st = sweep();
    let mut freed = 0;
    let mut freed_bytes = 0;
    let mut live = 0;
    for &(p, u, kind, keep, seed) in &objs {
        let survives = keep || kind == ObjectKind::Manual;
        if survives {
            live += u;
            assert!(check(p, u, seed), "survivor of {u} bytes damaged");
            assert_eq!(find_object(p as usize).map(|o| o.base), Some(p as usize));
        } else {
            freed += 1;
            freed_bytes += u;
            assert_eq!(find_object(p as usize), None, "swept object still maps");
        }
    }
    assert_eq!(st.objects_freed, freed);
    assert_eq!(st.bytes_freed, freed_bytes);
    assert_eq!(st.live_bytes, live);
    let after = stats();
    assert_eq!(after.in_use, live);
    assert_eq!(before.in_use - after.in_use, freed_bytes);
    assert!(after.manual_bytes <= after.in_use && after.large_bytes <= after.in_use);
    assert!(after.committed <= after.max_heap);
    // freed slots get reused
    let freed_addrs: std::collections::HashSet<usize> = objs
        .iter()
        .filter(|o| !o.3 && o.2 != ObjectKind::Manual)
        .map(|o| o.0 as usize)
        .collect();
    let again: Vec<*mut u8> = (0..6000)
        .map(|i| alloc(1 + (i * 7) % 3000, 16, ObjectKind::Managed))
        .collect();
    let reused = again
        .iter()
        .filter(|p| freed_addrs.contains(&(**p as usize)))
        .count();
    assert!(reused > 0, "no swept slot was reused");
    for p in again {
        assert!(
            unsafe { (0..usable_size(p)).all(|i| *p.add(i) == 0) },
            "reused slot not zeroed"
        );
        unsafe { free(p) };
    }
    for &(p, u, kind, keep, seed) in &objs {
        if keep || kind == ObjectKind::Manual {
            assert!(check(p, u, seed));
            unsafe { free(p) };
        }
    }
    assert_eq!(stats().in_use, 0);
}

#[test]
fn allocate_black_objects_survive_the_next_sweep() {
    let _g = SERIAL.lock().unwrap();
    clear_marks();
    set_allocate_black(true);
    let p = alloc(100, 16, ObjectKind::Managed);
    let q = alloc(100_000, 16, ObjectKind::Managed);
    set_allocate_black(false);
    let r = alloc(100, 16, ObjectKind::Managed);
    assert!(is_marked(p as usize) && is_marked(q as usize) && !is_marked(r as usize));
    sweep();
    assert!(find_object(p as usize).is_some() && find_object(q as usize).is_some());
    assert!(find_object(r as usize).is_none());
    clear_marks();
    sweep();
    assert!(find_object(p as usize).is_none() && find_object(q as usize).is_none());
}

#[test]
fn dead_spans_return_to_the_pool_and_then_to_the_os() {
    let _g = SERIAL.lock().unwrap();
    clear_marks();
    sweep();
    sweep();
    sweep();
    // A transient burst: many spans of small objects and some large ones.
    let small: Vec<*mut u8> = (0..40_000)
        .map(|_| alloc(200, 16, ObjectKind::Managed))
        .collect();
    let large: Vec<*mut u8> = (0..16)
        .map(|_| alloc(1 << 20, 16, ObjectKind::ManagedNoScan))
        .collect();
    for &p in small.iter().chain(&large) {
        // touch every page
        unsafe { std::ptr::write_bytes(p, 0xab, usable_size(p)) };
    }
    let peak = stats();
    assert!(peak.in_use >= 40_000 * 200 + 16 * (1 << 20));
    // Start a fresh span elsewhere so the burst's spans are all detached.
    drop(small);
    let s1 = sweep();
    assert_eq!(s1.objects_freed, 40_016);
    assert!(
        s1.blocks_emptied >= 16 + 40_000 * 208 / (64 << 10) - 2,
        "{s1:?}"
    );
    assert_eq!(stats().in_use, 0);
    let s2 = sweep();
    let s3 = sweep();
    let returned = s1.bytes_returned_to_os + s2.bytes_returned_to_os + s3.bytes_returned_to_os;
    assert!(
        returned >= 16 << 20,
        "only {returned} bytes returned: {s1:?} {s2:?} {s3:?}"
    );
    let st = stats();
    assert!(st.returned_to_os >= 16 << 20);
    assert!(st.committed <= peak.committed - (16 << 20));
    for &p in &large {
        assert_eq!(
            resident_pages(p as usize, 1 << 20),
            0,
            "returned pages still resident"
        );
    }
    // The memory is usable again, zeroed.
    let p = alloc(1 << 20, 16, ObjectKind::Manual);
    assert!(unsafe { (0..1 << 20).all(|i| *p.add(i) == 0) });
    unsafe { free(p) };
}

#[test]
fn for_each_object_by_kind() {
    let _g = SERIAL.lock().unwrap();
    let a = alloc(32, 16, ObjectKind::Managed);
    let b = alloc(32, 16, ObjectKind::Manual);
    let c = alloc(50_000, 16, ObjectKind::ManagedNoScan);
    let mut seen = Vec::new();
    for_each_object(Some(ObjectKind::Manual), &mut |o| seen.push(o));
    assert!(seen.iter().all(|o| o.kind == ObjectKind::Manual));
    assert!(seen.iter().any(|o| o.base == b as usize));
    assert!(!seen
        .iter()
        .any(|o| o.base == a as usize || o.base == c as usize));
    let mut all = 0;
    for_each_object(None, &mut |o| {
        if [a, b, c].contains(&(o.base as *mut u8)) {
            all += 1
        }
    });
    assert_eq!(all, 3);
    unsafe {
        free(a);
        free(b);
        free(c);
    }
}
