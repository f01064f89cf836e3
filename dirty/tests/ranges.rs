//! Range management on every working source: two disjoint ranges, ranges
//! added and removed while tracking, bad ranges, and a 1 GiB range.

mod common;

use std::collections::BTreeSet;

use common::{harvest_pages, is_exact, tracked_write, Mapping, WORKING_SOURCES};
use oohgc_dirty::{DirtyError, PageRange, PAGE_SIZE};

#[test]
fn two_disjoint_ranges() {
    for name in WORKING_SOURCES {
        let s = oohgc_dirty::open(name).unwrap();
        let a = Mapping::new(16);
        let b = Mapping::new(16);
        s.track(a.range).unwrap();
        s.track(b.range).unwrap();
        s.arm().unwrap();
        tracked_write(&*s, a.page(3), 1);
        tracked_write(&*s, b.page(0), 1);
        tracked_write(&*s, b.page(15), 1);
        let got = harvest_pages(&*s);
        for p in [a.page(3), b.page(0), b.page(15)] {
            assert!(got.contains(&p), "{name}: page {p:#x} missing");
        }
        if is_exact(&*s) {
            assert_eq!(got.len(), 3, "{name}: exactly the written pages");
        } else {
            assert_eq!(got.len(), 32);
        }
        s.untrack(a.range).unwrap();
        s.untrack(b.range).unwrap();
    }
}

#[test]
fn ranges_added_and_removed_while_tracking() {
    for name in WORKING_SOURCES {
        let s = oohgc_dirty::open(name).unwrap();
        let a = Mapping::new(8);
        let b = Mapping::new(8);
        s.track(a.range).unwrap();
        s.arm().unwrap();
        tracked_write(&*s, a.page(1), 1);
        // b written before it is tracked: reported as dirty at first.
        tracked_write(&*s, b.page(2), 1);
        s.track(b.range).unwrap();
        tracked_write(&*s, b.page(5), 1);
        let got = harvest_pages(&*s);
        for p in [a.page(1), b.page(2), b.page(5)] {
            assert!(
                got.contains(&p),
                "{name}: page {p:#x} missing after adding a range"
            );
        }
        // Now b is armed like a.
        tracked_write(&*s, b.page(6), 1);
        let got = harvest_pages(&*s);
        assert!(got.contains(&b.page(6)), "{name}");
        if is_exact(&*s) {
            assert_eq!(got, BTreeSet::from([b.page(6)]), "{name}");
        }
        // Removing a: its writes are no longer reported; b's still are.
        s.untrack(a.range).unwrap();
        a.write(4, 9); // plain write: a is untracked (and writable again)
        tracked_write(&*s, b.page(7), 1);
        let got = harvest_pages(&*s);
        assert!(got.contains(&b.page(7)), "{name}");
        assert!(
            got.iter().all(|p| b.range.contains(*p)),
            "{name}: untracked range reported"
        );
        // a can be tracked again.
        s.track(a.range).unwrap();
        s.untrack(a.range).unwrap();
        s.untrack(b.range).unwrap();
    }
}

#[test]
fn bad_ranges_are_refused_with_reasons() {
    for name in WORKING_SOURCES {
        let s = oohgc_dirty::open(name).unwrap();
        let a = Mapping::new(8);
        let never = Mapping::new(2);
        match s.untrack(never.range) {
            Err(DirtyError::BadRange { what, .. }) => {
                assert!(what.contains("not tracked"), "{name}: {what}")
            }
            other => panic!("{name}: untrack of an untracked range gave {other:?}"),
        }
        s.track(a.range).unwrap();
        match s.track(a.sub(2, 2)) {
            Err(e @ DirtyError::BadRange { .. }) => {
                assert!(e.to_string().contains("overlaps"), "{name}: {e}")
            }
            other => panic!("{name}: overlapping track gave {other:?}"),
        }
        // untrack takes exactly a tracked range.
        assert!(
            matches!(s.untrack(a.sub(0, 4)), Err(DirtyError::BadRange { .. })),
            "{name}"
        );
        s.untrack(a.range).unwrap();
        assert!(
            matches!(s.untrack(a.range), Err(DirtyError::BadRange { .. })),
            "{name}: double untrack"
        );
    }
    let e = PageRange::new(0x1001, PAGE_SIZE).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a non-empty range of whole 4096-byte pages"),
        "{e}"
    );
    assert!(PageRange::new(0x1000, 0).is_err());
}

#[test]
fn kernel_sources_refuse_unmapped_memory() {
    for name in ["pagemap-scan", "uffd", "mprotect"] {
        let s = oohgc_dirty::open(name).unwrap();
        let m = Mapping::new(4);
        let hole = m.range;
        drop(m);
        match s.track(hole) {
            Err(DirtyError::BadRange { what, .. }) => {
                assert!(what.contains("mapped"), "{name}: {what}")
            }
            other => panic!("{name}: tracking unmapped memory gave {other:?}"),
        }
    }
}

#[test]
fn one_gib_range_reports_exactly_the_scattered_writes() {
    const PAGES: usize = (1 << 30) / PAGE_SIZE;
    for name in WORKING_SOURCES {
        let s = oohgc_dirty::open(name).unwrap();
        let m = Mapping::new(PAGES);
        s.track(m.range).unwrap();
        let t = std::time::Instant::now();
        s.arm().unwrap();
        let arm = t.elapsed();
        let mut written = BTreeSet::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = (x % PAGES as u64) as usize;
            tracked_write(&*s, m.page(p) + 64, 7);
            written.insert(m.page(p));
        }
        let t = std::time::Instant::now();
        let got = harvest_pages(&*s);
        let harvest = t.elapsed();
        assert!(written.is_subset(&got), "{name}: a written page is missing");
        if is_exact(&*s) {
            assert_eq!(got, written, "{name}: false positives on a 1 GiB range");
        } else {
            assert_eq!(got.len(), PAGES);
        }
        println!(
            "{name}: 1 GiB, {} pages written: arm {arm:?}, harvest {harvest:?}",
            written.len()
        );
        s.untrack(m.range).unwrap();
    }
}

/// Adjacent ranges (a heap committed chunk after chunk) are scanned as one
/// span by some sources; untracking one of them must still work.
#[test]
fn adjacent_ranges() {
    for name in WORKING_SOURCES {
        let s = oohgc_dirty::open(name).unwrap();
        let m = Mapping::new(24);
        let (a, b, c) = (m.sub(0, 8), m.sub(8, 8), m.sub(16, 8));
        s.track(b).unwrap();
        s.track(a).unwrap();
        s.track(c).unwrap();
        s.arm().unwrap();
        for i in [7, 8, 16, 23] {
            tracked_write(&*s, m.page(i), 1);
        }
        let got = harvest_pages(&*s);
        if is_exact(&*s) {
            assert_eq!(got, common::addrs(&m, &[7, 8, 16, 23]), "{name}");
        } else {
            assert_eq!(got.len(), 24, "{name}");
        }
        s.untrack(b).unwrap();
        m.write(9, 2); // untracked now
        for i in [0, 17] {
            tracked_write(&*s, m.page(i), 3);
        }
        let got = harvest_pages(&*s);
        assert!(
            !got.contains(&m.page(9)),
            "{name}: untracked middle range reported"
        );
        assert!(
            got.contains(&m.page(0)) && got.contains(&m.page(17)),
            "{name}"
        );
        if is_exact(&*s) {
            assert_eq!(got.len(), 2, "{name}");
        }
        s.untrack(a).unwrap();
        s.untrack(c).unwrap();
    }
}
