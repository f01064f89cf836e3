//! The DirtySource contract for `epml` and `spml` over both engines:
//! exact reports for scripted writes, and a randomized test with several
//! writer threads and harvests at random times (zero false negatives).

mod common;
use common::map_pages;
use oohgc_dirty::pml::{open_source, Engine};
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn write_page(base: usize, page: usize, value: u8) {
    // SAFETY: callers pass pages inside a mapping they own.
    unsafe { ((base + page * PAGE_SIZE + 64) as *mut u8).write_volatile(value) };
}

fn harvest_pages(src: &dyn DirtySource, base: usize) -> Vec<usize> {
    let mut pages = Vec::new();
    src.harvest(&mut |r: PageRange| {
        for p in 0..r.pages() {
            pages.push((r.start - base) / PAGE_SIZE + p);
        }
    })
    .unwrap();
    pages.sort();
    pages.dedup();
    pages
}

const CONFIGS: [(&str, Engine); 4] = [
    ("epml", Engine::Async),
    ("epml", Engine::Sync),
    ("spml", Engine::Async),
    ("spml", Engine::Sync),
];

#[test]
fn scripted_writes_are_reported_exactly() {
    for (name, engine) in CONFIGS {
        let src = open_source(name, engine).unwrap();
        let base = map_pages(64);
        let range = PageRange::new(base, 64 * PAGE_SIZE).unwrap();
        src.track(range).unwrap();
        // A newly tracked range counts as dirty until reported.
        assert_eq!(
            harvest_pages(&*src, base).len(),
            64,
            "{name}/{engine:?}: fresh range"
        );
        src.arm().unwrap();
        assert!(
            harvest_pages(&*src, base).is_empty(),
            "{name}/{engine:?}: nothing written"
        );
        for p in [3, 7, 8, 63] {
            write_page(base, p, 9);
        }
        write_page(base, 7, 10);
        assert_eq!(
            harvest_pages(&*src, base),
            vec![3, 7, 8, 63],
            "{name}/{engine:?}"
        );
        assert!(
            harvest_pages(&*src, base).is_empty(),
            "{name}/{engine:?}: re-armed"
        );
        write_page(base, 8, 1);
        assert_eq!(
            harvest_pages(&*src, base),
            vec![8],
            "{name}/{engine:?}: second epoch"
        );
        // Disarmed: writes are not watched, so a harvest reports everything.
        src.disarm().unwrap();
        write_page(base, 9, 1);
        assert_eq!(
            harvest_pages(&*src, base).len(),
            64,
            "{name}/{engine:?}: disarmed"
        );
        src.arm().unwrap();
        write_page(base, 10, 1);
        assert_eq!(
            harvest_pages(&*src, base),
            vec![10],
            "{name}/{engine:?}: re-armed"
        );
        let c = src.counters();
        assert_eq!(c.harvests, 7);
        assert!(
            c.write_traps >= 6,
            "{name}/{engine:?}: entries logged {}",
            c.write_traps
        );
        src.untrack(range).unwrap();
        assert!(src.untrack(range).is_err(), "untracking twice is refused");
        // SAFETY: unmapping our own mapping after untrack.
        unsafe { libc::munmap(base as *mut _, 64 * PAGE_SIZE) };
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Several threads write random pages at random times while one thread
/// harvests at random times. Harvest `h` begins after `started` went from
/// `h` to `h + 1` and ends before `done` goes from `h` to `h + 1`. A writer
/// reads `d = done` before its write and `s = started` after it: harvest
/// `s` began after the write completed, harvests `d..s` may have run
/// during the write (a page scanned and re-protected by one of them after
/// the write landed is reported there), harvests before `d` ended before
/// the write began. So some harvest in `d..=s` must report the page, and
/// when no harvest overlapped the write (`d == s`), exactly harvest `s`.
fn randomized(name: &'static str, engine: Engine, seed: u64) {
    const PAGES: usize = 512;
    const WRITERS: usize = 3;
    // OOHGC_PML_STRESS_HARVESTS=n runs a longer stress.
    let harvests: usize = std::env::var("OOHGC_PML_STRESS_HARVESTS")
        .map(|v| {
            v.parse()
                .expect("OOHGC_PML_STRESS_HARVESTS: a whole number")
        })
        .unwrap_or(150);
    let src: Arc<dyn DirtySource> = Arc::from(open_source(name, engine).unwrap());
    let base = map_pages(PAGES);
    src.track(PageRange::new(base, PAGES * PAGE_SIZE).unwrap())
        .unwrap();
    src.arm().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let started = Arc::clone(&started);
            let done = Arc::clone(&done);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut rng = XorShift(seed ^ ((w as u64 + 1) * 0x9E37_79B9));
                let mut log = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let page = (rng.next() % PAGES as u64) as usize;
                    let d = done.load(Ordering::SeqCst);
                    write_page(base, page, rng.next() as u8);
                    log.push((page, d, started.load(Ordering::SeqCst)));
                    if rng.next().is_multiple_of(8) {
                        std::thread::sleep(Duration::from_micros(rng.next() % 300));
                    }
                }
                log
            })
        })
        .collect();
    let mut rng = XorShift(seed);
    let mut reports: Vec<HashSet<usize>> = Vec::new();
    for h in 0..harvests {
        std::thread::sleep(Duration::from_micros(rng.next() % 2000));
        assert_eq!(started.fetch_add(1, Ordering::SeqCst), h);
        reports.push(harvest_pages(&*src, base).into_iter().collect());
        done.fetch_add(1, Ordering::SeqCst);
    }
    stop.store(true, Ordering::SeqCst);
    let mut checked = 0;
    for w in writers {
        for (page, d, s) in w.join().unwrap() {
            if s < harvests {
                assert!(
                    (d..=s).any(|h| reports[h].contains(&page)),
                    "{name}/{engine:?}: page {page} written while harvests {d}..{s} ran, before harvest {s} began, \
                     reported by none of harvests {d}..={s}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 100,
        "{name}/{engine:?}: only {checked} writes checked"
    );
    let mut pml_entries = 0;
    src.for_each_counter(&mut |n, v| {
        if n == "pml_entries_logged" {
            pml_entries = v;
        }
    });
    assert!(
        pml_entries > 0,
        "{name}/{engine:?}: the model logged nothing"
    );
}

#[test]
fn randomized_epml_async() {
    randomized("epml", Engine::Async, 0x1234_5678);
}

#[test]
fn randomized_epml_sync() {
    randomized("epml", Engine::Sync, 0x2345_6789);
}

#[test]
fn randomized_spml_async() {
    randomized("spml", Engine::Async, 0x3456_789A);
}

#[test]
fn randomized_spml_sync() {
    randomized("spml", Engine::Sync, 0x4567_89AB);
}

#[test]
fn unknown_names_and_bad_ranges_are_refused() {
    let e = open_source("pml", Engine::Async).err().unwrap();
    assert!(e.to_string().contains("epml"), "{e}");
    let src = open_source("epml", Engine::Async).unwrap();
    let base = map_pages(8);
    src.track(PageRange::new(base, 8 * PAGE_SIZE).unwrap())
        .unwrap();
    let overlap = PageRange::new(base + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert!(src.track(overlap).is_err());
    assert!(src.untrack(overlap).is_err());
    let start = Instant::now();
    drop(src);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn selection_by_name_reaches_the_model() {
    for name in ["epml", "spml"] {
        let src = oohgc_dirty::open(name).unwrap();
        assert_eq!(src.name(), name);
        let mut modelled = false;
        src.for_each_counter(&mut |n, _| modelled |= n.ends_with("_modelled_ns"));
        assert!(modelled, "{name}: modelled counters are exposed");
    }
}
