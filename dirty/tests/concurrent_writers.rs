//! Randomised writers against concurrent harvests, for every source
//! available on this machine: no write may be missed.
//!
//! Writers pick random pages at random times and log `(page, seq before
//! the write, seq after it)` from one global sequence counter; the
//! harvester logs `(seq at start, seq at end, pages)` per harvest. A write
//! that completed before harvest `k` began must be reported by harvest `k`
//! or by an earlier harvest that ended after the write started.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;

use common::{harvest_pages, Mapping};
use oohgc_dirty::{DirtySource, PAGE_SIZE};

const WRITERS: usize = 3;
const PAGES: usize = 512;
/// Harvests at least this many times...
const MIN_HARVESTS: usize = 150;
/// ...and until the writers have made this many writes (slow sources,
/// loaded machine), unless [`MAX_RUN`] passes first.
const MIN_WRITES: usize = 3000;
const MAX_RUN: std::time::Duration = std::time::Duration::from_secs(6);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct HarvestRecord {
    begin: u64,
    end: u64,
    pages: BTreeSet<usize>,
}

fn stress(source: &dyn DirtySource, use_card_barrier: bool) {
    let m = Mapping::new(PAGES);
    source.track(m.range).unwrap();
    source.arm().unwrap();
    let seq = AtomicU64::new(1);
    let write_count = std::sync::atomic::AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let start = Barrier::new(WRITERS + 1);
    let (writes, harvests) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (m, seq, stop, start, write_count) = (&m, &seq, &stop, &start, &write_count);
                scope.spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1234_5678_9ABC));
                    let mut log = Vec::new();
                    start.wait();
                    while !stop.load(Ordering::Relaxed) {
                        let page = (rng.next() % PAGES as u64) as usize;
                        let addr =
                            m.page(page) + (rng.next() % (PAGE_SIZE as u64 / 8)) as usize * 8;
                        let before = seq.fetch_add(1, Ordering::SeqCst);
                        // SAFETY: addr is an aligned word inside the test mapping.
                        unsafe { std::ptr::write_volatile(addr as *mut u64, before) };
                        if use_card_barrier {
                            oohgc_dirty::card::write_barrier(addr);
                        }
                        let after = seq.fetch_add(1, Ordering::SeqCst);
                        log.push((page, before, after));
                        write_count.fetch_add(1, Ordering::Relaxed);
                        match rng.next() % 64 {
                            0 => std::thread::yield_now(),
                            1 => std::thread::sleep(std::time::Duration::from_micros(
                                rng.next() % 200,
                            )),
                            _ => {}
                        }
                    }
                    log
                })
            })
            .collect();
        let mut rng = Rng(0xDEAD_BEEF);
        let mut harvests = Vec::new();
        start.wait();
        let began = std::time::Instant::now();
        for i in 0.. {
            let last = (i >= MIN_HARVESTS && write_count.load(Ordering::Relaxed) >= MIN_WRITES)
                || began.elapsed() > MAX_RUN;
            if last {
                stop.store(true, Ordering::Relaxed);
                // The last harvest runs after every writer has finished.
                while !writers.iter().all(|w| w.is_finished()) {
                    std::thread::yield_now();
                }
            }
            let begin = seq.fetch_add(1, Ordering::SeqCst);
            let pages: BTreeSet<usize> = harvest_pages(source)
                .into_iter()
                .map(|a| (a - m.range.start) / PAGE_SIZE)
                .collect();
            let end = seq.fetch_add(1, Ordering::SeqCst);
            harvests.push(HarvestRecord { begin, end, pages });
            if last {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(rng.next() % 500));
        }
        let writes: Vec<(usize, u64, u64)> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        (writes, harvests)
    });
    source.untrack(m.range).unwrap();

    // Harvest indices reporting each page.
    let mut reported_by: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (k, h) in harvests.iter().enumerate() {
        for &p in &h.pages {
            reported_by.entry(p).or_default().insert(k);
        }
    }
    let mut missed = 0;
    for &(page, before, after) in &writes {
        // First harvest that began after the write completed (the final
        // harvest begins after all writes).
        let due = harvests
            .iter()
            .position(|h| h.begin > after)
            .expect("final harvest");
        // Earliest harvest that could have seen it: one that ended after the write began.
        let earliest = harvests.iter().position(|h| h.end > before).unwrap();
        let ok = reported_by
            .get(&page)
            .is_some_and(|ks| ks.range(earliest..=due).next().is_some());
        if !ok {
            missed += 1;
            if missed < 10 {
                eprintln!(
                    "{}: page {page} written in seq {before}..{after} not reported by harvests {earliest}..={due}",
                    source.name()
                );
            }
        }
    }
    // False positives: a reported page with no write overlapping the
    // window between the previous harvest's start and this harvest's end.
    let mut by_page: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    for &(p, b, a) in &writes {
        by_page.entry(p).or_default().push((b, a));
    }
    let mut false_positives = 0;
    let mut reported = 0;
    for (k, h) in harvests.iter().enumerate() {
        let window_start = if k == 0 { 0 } else { harvests[k - 1].begin };
        for p in &h.pages {
            reported += 1;
            let touched = by_page
                .get(p)
                .is_some_and(|ws| ws.iter().any(|&(b, a)| b < h.end && a > window_start));
            if !touched {
                false_positives += 1;
            }
        }
    }
    println!(
        "{}: {} writes, {} harvests, {} pages reported, {} false positives, {} missed; counters {:?}",
        source.name(),
        writes.len(),
        harvests.len(),
        reported,
        false_positives,
        missed,
        source.counters()
    );
    assert_eq!(
        missed,
        0,
        "{}: {missed} writes were not reported in time",
        source.name()
    );
    assert!(
        writes.len() >= 300,
        "writers made too few writes to be a test"
    );
}

#[test]
fn pagemap_scan_misses_no_write() {
    let s = oohgc_dirty::open("pagemap-scan").unwrap();
    stress(&*s, false);
}

#[test]
fn uffd_misses_no_write() {
    let s = oohgc_dirty::open("uffd").unwrap();
    stress(&*s, false);
}

#[test]
fn mprotect_misses_no_write() {
    let s = oohgc_dirty::open("mprotect").unwrap();
    stress(&*s, false);
}

#[test]
fn card_misses_no_barriered_write() {
    let s = oohgc_dirty::open("card").unwrap();
    stress(&*s, true);
}

#[test]
fn none_misses_no_write() {
    let s = oohgc_dirty::open("none").unwrap();
    stress(&*s, false);
}

/// The checker itself must be able to fail: a "source" that forgets
/// every other harvest's pages is caught.
#[test]
fn checker_catches_a_lossy_source() {
    struct Lossy {
        inner: Box<dyn DirtySource>,
        n: AtomicU64,
    }
    impl DirtySource for Lossy {
        fn name(&self) -> &'static str {
            "lossy"
        }
        fn track(&self, r: oohgc_dirty::PageRange) -> Result<(), oohgc_dirty::DirtyError> {
            self.inner.track(r)
        }
        fn untrack(&self, r: oohgc_dirty::PageRange) -> Result<(), oohgc_dirty::DirtyError> {
            self.inner.untrack(r)
        }
        fn arm(&self) -> Result<(), oohgc_dirty::DirtyError> {
            self.inner.arm()
        }
        fn harvest(
            &self,
            sink: &mut dyn FnMut(oohgc_dirty::PageRange),
        ) -> Result<(), oohgc_dirty::DirtyError> {
            let drop_this = self.n.fetch_add(1, Ordering::Relaxed) % 2 == 1;
            self.inner.harvest(&mut |r| {
                if !drop_this {
                    sink(r)
                }
            })
        }
        fn disarm(&self) -> Result<(), oohgc_dirty::DirtyError> {
            self.inner.disarm()
        }
        fn counters(&self) -> oohgc_dirty::Counters {
            self.inner.counters()
        }
    }
    let lossy = Lossy {
        inner: oohgc_dirty::open("pagemap-scan").unwrap(),
        n: AtomicU64::new(0),
    };
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stress(&lossy, false)));
    assert!(caught.is_err(), "the checker must notice lost writes");
}
