//! Size classes, alignment, zero-fill, realloc, usable_size and the object map.
//! No test here sweeps, so objects of every kind stay until freed.

use oohgc_allocator::*;

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: p has at least len usable bytes.
        unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) -> bool {
    // SAFETY: p has at least len usable bytes.
    (0..len).all(|i| unsafe { *p.add(i) } == seed.wrapping_add(i as u8))
}

fn is_zero(p: *const u8, len: usize) -> bool {
    // SAFETY: p has at least len usable bytes.
    (0..len).all(|i| unsafe { *p.add(i) } == 0)
}

#[test]
fn every_small_size_is_aligned_zeroed_and_disjoint() {
    for kind in [
        ObjectKind::Manual,
        ObjectKind::Managed,
        ObjectKind::ManagedNoScan,
    ] {
        let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
        for size in 1..=65536usize {
            if size > 4096
                && size % 61 != 0
                && size != 65536
                && size != MAX_SMALL_SIZE
                && size != MAX_SMALL_SIZE + 1
            {
                continue;
            }
            let p = alloc(size, 1, kind);
            assert!(!p.is_null(), "alloc({size}) failed");
            assert_eq!(p as usize % GRANULE, 0, "size {size}");
            let usable = unsafe { usable_size(p) };
            assert!(usable >= size, "usable {usable} < {size}");
            assert!(is_zero(p, usable), "size {size} not zero-filled");
            let seed = size as u8;
            fill(p, usable, seed);
            live.push((p, usable, seed));
            if live.len() > 300 {
                let (q, u, s) = live.remove(live.len() / 2);
                assert!(check(q, u, s), "object of {u} bytes overwritten");
                unsafe { free(q) };
            }
        }
        for (p, u, s) in live {
            assert!(check(p, u, s), "object of {u} bytes overwritten");
            unsafe { free(p) };
        }
    }
}

#[test]
fn large_sizes() {
    for size in [32769usize, 65536, 100_000, 1 << 20, (8 << 20) + 3] {
        let p = alloc(size, 8, ObjectKind::Manual);
        assert!(!p.is_null());
        assert_eq!(p as usize % PAGE_SIZE, 0);
        let u = unsafe { usable_size(p) };
        assert!(u >= size && u < size + PAGE_SIZE);
        assert!(is_zero(p, u));
        fill(p, u, 7);
        let info = find_object(p as usize + size - 1).unwrap();
        assert_eq!(info.base, p as usize);
        assert_eq!(info.size, u);
        unsafe { free(p) };
        assert_eq!(find_object(p as usize), None);
        // the same pages come back zeroed
        let q = alloc(size, 8, ObjectKind::Manual);
        assert!(is_zero(q, unsafe { usable_size(q) }));
        unsafe { free(q) };
    }
}

#[test]
fn every_power_of_two_alignment() {
    let mut align = 1;
    while align <= 1 << 22 {
        for size in [0usize, 1, 8, 24, 100, 1000, 5000, 40000, 200_000] {
            let p = alloc(size, align, ObjectKind::Manual);
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            let u = unsafe { usable_size(p) };
            assert!(u >= size.max(1));
            assert!(is_zero(p, u));
            fill(p, u, 3);
            unsafe { free(p) };
        }
        align *= 2;
    }
    assert!(
        alloc(16, 3, ObjectKind::Manual).is_null(),
        "non power of two"
    );
    assert!(
        alloc(16, MAX_ALIGN * 2, ObjectKind::Manual).is_null(),
        "align too large"
    );
}

#[test]
fn zero_size_is_one_granule() {
    let a = alloc(0, 1, ObjectKind::Manual);
    let b = alloc(0, 1, ObjectKind::Manual);
    assert!(!a.is_null() && !b.is_null() && a != b);
    assert_eq!(unsafe { usable_size(a) }, GRANULE);
    unsafe {
        free(a);
        free(b);
    }
}

#[test]
fn huge_requests_return_null() {
    assert!(alloc(usize::MAX / 2, 16, ObjectKind::Manual).is_null());
    assert!(alloc(usize::MAX, 16, ObjectKind::Managed).is_null());
    assert!(alloc(DEFAULT_RESERVE + 1, 16, ObjectKind::Manual).is_null());
    // the heap still works
    let p = alloc(64, 16, ObjectKind::Manual);
    assert!(!p.is_null());
    unsafe { free(p) };
}

#[test]
fn realloc_keeps_contents_alignment_and_kind() {
    for align in [16usize, 64, 4096] {
        let mut p = alloc(10, align, ObjectKind::ManagedNoScan);
        fill(p, 10, 9);
        let mut len = 10;
        for new in [20usize, 200, 3000, 40_000, 300_000, 1000, 5, 70_000, 17] {
            let q = unsafe { realloc(p, new, align) };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0);
            let keep = len.min(new);
            assert!(check(q, keep, 9), "realloc {len} -> {new} lost data");
            let u = unsafe { usable_size(q) };
            assert!(u >= new);
            assert!(
                is_zero(unsafe { q.add(keep) }, u - keep),
                "realloc tail not zero"
            );
            assert_eq!(
                find_object(q as usize).unwrap().kind,
                ObjectKind::ManagedNoScan
            );
            fill(q, new, 9);
            p = q;
            len = new;
        }
        unsafe { free(p) };
    }
    // realloc to an impossible size fails and leaves the block alone
    let p = alloc(100, 16, ObjectKind::Manual);
    fill(p, 100, 1);
    assert!(unsafe { realloc(p, usize::MAX / 2, 16) }.is_null());
    assert!(check(p, 100, 1));
    unsafe { free(p) };
}

#[test]
fn find_object_maps_every_byte() {
    let sizes = [
        1usize, 16, 17, 48, 100, 256, 1000, 2048, 4000, 10_000, 32768, 50_000, 200_000,
    ];
    for kind in [ObjectKind::Managed, ObjectKind::Manual] {
        let objs: Vec<(*mut u8, usize)> = sizes.iter().map(|&s| (alloc(s, 16, kind), s)).collect();
        for &(p, _) in &objs {
            let u = unsafe { usable_size(p) };
            let base = p as usize;
            for off in 0..u {
                let info = find_object(base + off).unwrap_or_else(|| panic!("offset {off} of {u}"));
                assert_eq!(
                    info,
                    ObjectInfo {
                        base,
                        size: u,
                        kind
                    }
                );
            }
            let after = find_object(base + u);
            assert!(
                after.is_none_or(|i| i.base == base + u),
                "one past the end maps to {after:?}"
            );
            assert!(find_object(base.wrapping_sub(1)).is_none_or(|i| i.base != base));
        }
        for &(p, _) in &objs {
            unsafe { free(p) };
            assert_eq!(find_object(p as usize), None, "freed slot still maps");
        }
    }
    let (lo, hi) = heap_bounds();
    assert!(lo < hi);
    assert_eq!(find_object(lo.wrapping_sub(8)), None);
    assert_eq!(find_object(hi), None);
    assert_eq!(
        find_object(hi - 1),
        None,
        "top of the reservation is never committed here"
    );
    assert_eq!(find_object(0), None);
    let stack_var = 5u64;
    assert_eq!(find_object(&stack_var as *const u64 as usize), None);
}

#[test]
fn free_slots_in_a_span_are_not_objects() {
    let objs: Vec<*mut u8> = (0..64).map(|_| alloc(48, 16, ObjectKind::Manual)).collect();
    for (i, &p) in objs.iter().enumerate() {
        if i % 2 == 0 {
            unsafe { free(p) };
        }
    }
    for (i, &p) in objs.iter().enumerate() {
        assert_eq!(find_object(p as usize + 5).is_some(), i % 2 == 1);
    }
    for (i, &p) in objs.iter().enumerate() {
        if i % 2 == 1 {
            unsafe { free(p) };
        }
    }
}

#[test]
fn for_each_object_in_sees_exactly_the_range() {
    let objs: Vec<*mut u8> = (0..200)
        .map(|_| alloc(96, 16, ObjectKind::ManagedNoScan))
        .collect();
    let big = alloc(100_000, 16, ObjectKind::ManagedNoScan);
    let lo = objs.iter().map(|&p| p as usize).min().unwrap();
    let hi = objs.iter().map(|&p| p as usize).max().unwrap() + 96;
    let mut seen = Vec::new();
    for_each_object_in(lo, hi, &mut |o| seen.push(o.base));
    for &p in &objs {
        assert!(seen.contains(&(p as usize)));
    }
    for b in &seen {
        let info = find_object(*b).unwrap();
        assert!(info.base + info.size > lo && info.base < hi);
    }
    let mut n = 0;
    for_each_object_in(big as usize + 5000, big as usize + 5001, &mut |o| {
        assert_eq!(o.base, big as usize);
        n += 1;
    });
    assert_eq!(n, 1);
    let mut all = 0;
    for_each_object(Some(ObjectKind::ManagedNoScan), &mut |o| {
        if objs.contains(&(o.base as *mut u8)) || o.base == big as usize {
            all += 1
        }
    });
    assert_eq!(all, 201);
    let mut holding_big = 0;
    for_each_chunk(&mut |start, len| {
        assert!(start % PAGE_SIZE == 0 && len % PAGE_SIZE == 0);
        if start <= big as usize && (big as usize) < start + len {
            holding_big += 1;
        }
    });
    assert_eq!(holding_big, 1, "exactly one chunk holds the object");
    for p in objs {
        unsafe { free(p) };
    }
    unsafe { free(big) };
}

#[test]
fn marks_are_per_object() {
    let a = alloc(64, 16, ObjectKind::Managed);
    let b = alloc(64, 16, ObjectKind::Managed);
    let l = alloc(70_000, 16, ObjectKind::Managed);
    for p in [a, b, l] {
        // allocate-black is off: fresh objects are unmarked
        assert!(!is_marked(p as usize));
    }
    assert!(try_mark(a as usize));
    assert!(!try_mark(a as usize));
    assert!(is_marked(a as usize));
    assert!(!is_marked(b as usize));
    assert!(try_mark(l as usize));
    assert!(is_marked(l as usize));
    assert!(!try_mark(heap_bounds().1));
    unsafe {
        free(a);
        free(b);
        free(l);
    }
}

#[test]
fn init_after_first_allocation_is_refused() {
    let p = alloc(8, 8, ObjectKind::Manual);
    assert!(is_initialized());
    assert_eq!(
        init(HeapConfig::default()),
        Err(HeapError::AlreadyInitialized)
    );
    unsafe { free(p) };
}

#[test]
fn config_errors_name_the_setting() {
    let e = HeapConfig {
        max_heap: 1024,
        reserve: DEFAULT_RESERVE,
    }
    .validate()
    .unwrap_err();
    assert_eq!(e, HeapError::MaxHeapTooSmall { max_heap: 1024 });
    assert!(
        e.to_string()
            .contains("max heap 1024 bytes is below the minimum 4 MiB"),
        "{e}"
    );
    let e = HeapConfig {
        max_heap: MIN_HEAP,
        reserve: MIN_HEAP + 1,
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("reserve"), "{e}");
    let e = HeapConfig {
        max_heap: 1 << 30,
        reserve: 64 << 20,
    }
    .validate()
    .unwrap_err();
    assert!(matches!(e, HeapError::MaxHeapAboveReserve { .. }), "{e}");
    assert!(HeapConfig::default().validate().is_ok());
}
