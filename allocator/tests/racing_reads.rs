//! Lock-free readers (find_object, try_mark, for_each_object_in) racing with
//! threads that allocate and free objects of every size: every answer must be
//! a well-formed object, and objects known to be live must always be found.

use oohgc_allocator::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn well_formed(addr: usize, o: ObjectInfo) {
    assert!(
        o.base <= addr && addr < o.base + o.size,
        "{addr:#x} not in {o:?}"
    );
    assert_eq!(o.base % GRANULE, 0, "{o:?}");
    assert!(o.size >= GRANULE && o.size.is_multiple_of(GRANULE), "{o:?}");
    if o.size > MAX_SMALL_SIZE {
        assert_eq!(o.base % PAGE_SIZE, 0, "{o:?}");
    }
    let (lo, hi) = heap_bounds();
    assert!(lo <= o.base && o.base + o.size <= hi);
}

#[test]
fn readers_race_with_allocation() {
    let stop = AtomicBool::new(false);
    // One object that stays allocated the whole time: always found.
    let anchor = alloc(200, 16, ObjectKind::Manual);
    let anchor_addr = anchor as usize;
    let lookups = AtomicUsize::new(0);
    let hits = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let stop = &stop;
            s.spawn(move || {
                let mut x = 0x1234_5678u64 + t;
                let mut held: Vec<*mut u8> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let size = if x.is_multiple_of(50) {
                        40_000 + (x >> 32) as usize % 100_000
                    } else {
                        1 + (x >> 16) as usize % 4000
                    };
                    let kind = [
                        ObjectKind::Managed,
                        ObjectKind::ManagedNoScan,
                        ObjectKind::Manual,
                    ][(x % 3) as usize];
                    held.push(alloc(size, 16, kind));
                    if held.len() > 200 {
                        let k = (x >> 8) as usize % held.len();
                        // SAFETY: allocated above, freed once.
                        unsafe { free(held.swap_remove(k)) };
                    }
                }
                for p in held {
                    // SAFETY: allocated above, freed once.
                    unsafe { free(p) };
                }
            });
        }
        let (stop, lookups, hits) = (&stop, &lookups, &hits);
        s.spawn(move || {
            let mut x = 99u64;
            let start = std::time::Instant::now();
            while start.elapsed().as_millis() < 1500 {
                let mut extent = 0;
                for_each_chunk(&mut |a, len| extent = a + len);
                let lo = heap_bounds().0;
                for _ in 0..10_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let addr = lo + (x as usize) % (extent - lo);
                    lookups.fetch_add(1, Ordering::Relaxed);
                    if let Some(o) = find_object(addr) {
                        hits.fetch_add(1, Ordering::Relaxed);
                        well_formed(addr, o);
                        try_mark(o.base);
                    }
                }
                let a = lo + (x as usize) % (extent - lo);
                for_each_object_in(a, a + 3 * PAGE_SIZE, &mut |o| {
                    assert!(
                        o.base < a + 3 * PAGE_SIZE && o.base + o.size > a,
                        "{o:?} outside range"
                    );
                    well_formed(o.base, o);
                });
                let o = find_object(anchor_addr + 123).expect("live object not found");
                assert_eq!(o.base, anchor_addr);
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    assert!(
        hits.load(Ordering::Relaxed) > 0,
        "readers never hit an object"
    );
    assert!(lookups.load(Ordering::Relaxed) > hits.load(Ordering::Relaxed));
    // SAFETY: allocated above.
    unsafe { free(anchor) };
}
