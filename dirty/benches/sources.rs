//! Costs of each dirty source over a 256 MiB range (4 KiB pages, THP off):
//!
//! * `first_write/<source>`: one store to a clean (armed) page, i.e. the
//!   write-trap cost; `none` is the baseline of a plain store to a
//!   populated page.
//! * `harvest/<source>/<p>%`: harvest + re-arm after `p`% of the pages
//!   were written (spread evenly); the writes are not timed.
//! * `cycle/pagemap-scan/<policy>/<p>%`: `pagemap-scan` between two
//!   cycles (disarm, the mutator writes `p`% of the pages, arm) under both
//!   disarm policies.
//!
//! Besides criterion's own report, the bench prints a table of medians
//! from the same run and the ratios against DESIGN.md's reference figures
//! and against `mprotect`. Sources: `OOHGC_BENCH_SOURCES=a,b,...` (default
//! [`DEFAULT_SOURCES`]); [`bench_sources`] takes any name list, so the
//! modelled `epml` / `spml` rows are one name away.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use oohgc_dirty::pagemap_scan::{DisarmPolicy, PagemapScanSource};
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};

const RANGE_BYTES: usize = 256 << 20;
const PAGES: usize = RANGE_BYTES / PAGE_SIZE;
/// First writes visit pages in this stride (coprime with PAGES): scattered.
const STRIDE: usize = 17;
const DEFAULT_SOURCES: &[&str] = &["pagemap-scan", "uffd", "mprotect", "card", "none"];
const FRACTIONS_PERCENT: &[usize] = &[0, 1, 10, 100];

/// DESIGN.md's raw kernel figures for pagemap-scan on this VM (reference
/// points to compare against, not measurements of this run).
const DESIGN_FIRST_WRITE_NS: f64 = 700.0;
const DESIGN_HARVEST_1PCT_NS: f64 = 106_000.0;

/// Per-operation nanoseconds of every timed batch, by (group, row).
static SAMPLES: Mutex<BTreeMap<(String, String), Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(group: &str, row: &str, ns_per_op: f64) {
    SAMPLES
        .lock()
        .unwrap()
        .entry((group.into(), row.into()))
        .or_default()
        .push(ns_per_op);
}

fn median(group: &str, row: &str) -> Option<f64> {
    let samples = SAMPLES.lock().unwrap();
    let mut v = samples.get(&(group.to_string(), row.to_string()))?.clone();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(v[v.len() / 2])
}

/// A 256 MiB anonymous mapping, populated, without transparent huge pages.
struct Region {
    range: PageRange,
}

impl Region {
    fn new() -> Region {
        // SAFETY: an anonymous private mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                RANGE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: advising our own mapping.
        unsafe { libc::madvise(p, RANGE_BYTES, libc::MADV_NOHUGEPAGE) };
        let region = Region {
            range: PageRange::new(p as usize, RANGE_BYTES).unwrap(),
        };
        for i in 0..PAGES {
            write_page(region.page(i), false);
        }
        region
    }
    fn page(&self, i: usize) -> usize {
        self.range.start + i * PAGE_SIZE
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(self.range.start as *mut _, RANGE_BYTES) };
    }
}

#[inline]
fn write_page(addr: usize, card: bool) {
    // SAFETY: addr is inside a bench mapping.
    unsafe { std::ptr::write_volatile(addr as *mut u64, addr as u64) };
    if card {
        oohgc_dirty::card::write_barrier(addr);
    }
}

fn open(name: &str) -> Option<Box<dyn DirtySource>> {
    match oohgc_dirty::open(name) {
        Ok(s) => Some(s),
        Err(e) => {
            println!("skipping {name}: {e}");
            None
        }
    }
}

fn drain(source: &dyn DirtySource) -> usize {
    let mut pages = 0;
    source.harvest(&mut |r| pages += r.pages()).unwrap();
    pages
}

/// Every row for the sources in `names`.
pub fn bench_sources(c: &mut Criterion, names: &[&str]) {
    for &name in names {
        let Some(source) = open(name) else { continue };
        let card = oohgc_dirty::registry::capabilities_of(name).needs_barrier;
        let region = Region::new();
        source.track(region.range).unwrap();
        source.arm().unwrap();

        let mut group = c.benchmark_group("first_write");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        let mut next = 0usize;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    if next == PAGES {
                        drain(&*source); // re-arm every page (untimed)
                        next = 0;
                    }
                    let batch = ((iters - done) as usize).min(PAGES - next);
                    let t = Instant::now();
                    for k in next..next + batch {
                        write_page(region.page(k * STRIDE % PAGES), card);
                    }
                    let elapsed = t.elapsed();
                    total += elapsed;
                    record(
                        "first_write",
                        name,
                        elapsed.as_nanos() as f64 / batch as f64,
                    );
                    next += batch;
                    done += batch as u64;
                }
                total
            })
        });
        group.finish();

        let mut group = c.benchmark_group("harvest");
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.warm_up_time(Duration::from_millis(100));
        group.measurement_time(Duration::from_secs(1));
        for &percent in FRACTIONS_PERCENT {
            let row = format!("{name}/{percent}%");
            drain(&*source);
            group.bench_function(row.as_str(), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if let Some(step) = 100usize.checked_div(percent) {
                            for i in (0..PAGES).step_by(step) {
                                write_page(region.page(i), card);
                            }
                        }
                        let t = Instant::now();
                        let reported = drain(&*source);
                        let elapsed = t.elapsed();
                        assert!(
                            reported >= PAGES * percent / 100,
                            "{name}: harvest lost pages"
                        );
                        total += elapsed;
                        record("harvest", &row, elapsed.as_nanos() as f64);
                    }
                    total
                })
            });
        }
        group.finish();
        source.untrack(region.range).unwrap();
    }
}

/// Pages written by the mutator between two cycles, in percent of the range.
const BETWEEN_CYCLES_PERCENT: &[usize] = &[1, 10, 50];

/// `pagemap-scan` between cycles under both disarm policies.
fn bench_disarm_policies(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.warm_up_time(Duration::from_millis(100));
    group.measurement_time(Duration::from_secs(1));
    for (policy_name, policy) in [
        ("unprotect", DisarmPolicy::Unprotect),
        ("keep-protected", DisarmPolicy::KeepProtected),
    ] {
        let Ok(source) = PagemapScanSource::with_disarm_policy(policy) else {
            println!("skipping pagemap-scan/{policy_name}: pagemap-scan unavailable");
            continue;
        };
        let region = Region::new();
        source.track(region.range).unwrap();
        source.arm().unwrap();
        for &percent in BETWEEN_CYCLES_PERCENT {
            let row = format!("pagemap-scan/{policy_name}/{percent}%");
            group.bench_function(row.as_str(), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        drain(&source); // end of a cycle (untimed)
                        let t = Instant::now();
                        source.disarm().unwrap();
                        for i in (0..PAGES).step_by(100 / percent) {
                            write_page(region.page(i), false);
                        }
                        source.arm().unwrap();
                        let elapsed = t.elapsed();
                        total += elapsed;
                        record("cycle", &row, elapsed.as_nanos() as f64);
                    }
                    total
                })
            });
        }
        source.untrack(region.range).unwrap();
    }
    group.finish();
}

fn sources_from_env() -> Vec<String> {
    match std::env::var("OOHGC_BENCH_SOURCES") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
    }
}

fn print_table(names: &[String]) {
    let us = |ns: Option<f64>| ns.map_or("-".to_string(), |v| format!("{:.2}", v / 1000.0));
    println!("\nMedians of this run (microseconds), 256 MiB range, 4 KiB pages:");
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "source", "first write", "harvest 0%", "harvest 1%", "harvest 10%", "harvest 100%"
    );
    for name in names {
        let h = |p: usize| us(median("harvest", &format!("{name}/{p}%")));
        println!(
            "{:<14} {:>12} {:>12} {:>12} {:>12} {:>12}",
            name,
            us(median("first_write", name)),
            h(0),
            h(1),
            h(10),
            h(100)
        );
    }
    for percent in BETWEEN_CYCLES_PERCENT {
        let unprotect = median("cycle", &format!("pagemap-scan/unprotect/{percent}%"));
        let keep = median("cycle", &format!("pagemap-scan/keep-protected/{percent}%"));
        if let (Some(u), Some(k)) = (unprotect, keep) {
            println!(
                "between cycles (disarm + {percent}% of pages written + arm): unprotect {:.0} us, \
                 keep-protected {:.0} us (keep / unprotect = {:.2})",
                u / 1000.0,
                k / 1000.0,
                k / u
            );
        }
    }
    let first_pm = median("first_write", "pagemap-scan");
    let first_mp = median("first_write", "mprotect");
    let harvest_pm = median("harvest", "pagemap-scan/1%");
    if let Some(pm) = first_pm {
        println!(
            "pagemap-scan first write: {:.2} us = {:.2}x DESIGN.md's ~0.7 us",
            pm / 1000.0,
            pm / DESIGN_FIRST_WRITE_NS
        );
    }
    if let Some(h) = harvest_pm {
        println!(
            "pagemap-scan harvest at 1%: {:.1} us = {:.2}x DESIGN.md's ~106 us",
            h / 1000.0,
            h / DESIGN_HARVEST_1PCT_NS
        );
    }
    if let (Some(pm), Some(mp)) = (first_pm, first_mp) {
        println!(
            "mprotect / pagemap-scan per first write: {:.1}x (target >= 5x)",
            mp / pm
        );
    }
    if let (Some(base), Some(pm)) = (median("first_write", "none"), first_pm) {
        println!(
            "pagemap-scan first write / plain store (none): {:.0}x",
            pm / base
        );
    }
}

fn benches(c: &mut Criterion) {
    let names = sources_from_env();
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    bench_sources(c, &refs);
    if refs.contains(&"pagemap-scan") {
        bench_disarm_policies(c);
    }
    print_table(&names);
}

criterion_group!(sources, benches);
criterion_main!(sources);
