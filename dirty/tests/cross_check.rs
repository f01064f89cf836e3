//! `CrossCheck`: a deliberately lossy primary must be caught (counted in
//! `Count` mode, abort naming the page and both sources in `Strict` mode);
//! real pairs of sources under random concurrent writers must find nothing;
//! a write the secondary recorded that lands after the last harvest is not
//! a miss;
//! two userfaultfd sources on one range are refused with a clear error.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::cross_check::{CrossCheck, Mode};
use oohgc_dirty::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `mprotect` installs one process-wide handler: run the tests that use it
/// one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A source that forwards to `inner` but drops every page whose index
/// (address / PAGE_SIZE) is a multiple of `drop_every` from its harvests.
struct Lossy {
    inner: Box<dyn DirtySource>,
    drop_every: usize,
}

impl DirtySource for Lossy {
    fn name(&self) -> &'static str {
        "lossy"
    }
    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        self.inner.track(range)
    }
    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        self.inner.untrack(range)
    }
    fn arm(&self) -> Result<(), DirtyError> {
        self.inner.arm()
    }
    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        self.inner.harvest(&mut |r| {
            for p in 0..r.pages() {
                let page = r.start + p * PAGE_SIZE;
                if !(page / PAGE_SIZE).is_multiple_of(self.drop_every) {
                    sink(PageRange::new(page, PAGE_SIZE).unwrap());
                }
            }
        })
    }
    fn disarm(&self) -> Result<(), DirtyError> {
        self.inner.disarm()
    }
    fn counters(&self) -> Counters {
        self.inner.counters()
    }
}

fn lossy(inner: &str) -> Box<dyn DirtySource> {
    Box::new(Lossy {
        inner: oohgc_dirty::open(inner).unwrap(),
        drop_every: 3,
    })
}

#[test]
fn a_lossy_primary_is_counted_and_its_pages_still_reach_the_caller() {
    let _s = serial();
    let check = CrossCheck::with_mode(
        lossy("pagemap-scan"),
        oohgc_dirty::open("mprotect").unwrap(),
        Mode::Count,
    );
    let m = Mapping::new(30);
    check.track(m.range).unwrap();
    check.arm().unwrap();
    for i in 0..30 {
        m.write(i, 1);
    }
    let pages = harvest_pages(&check);
    // Every written page reaches the caller (the missed ones are added).
    assert_eq!(pages.len(), 30);
    // The verdict waits (a write may still be landing) until disarm ...
    assert!(harvest_pages(&check).is_empty());
    assert_eq!(check.false_negatives(), 0);
    check.disarm().unwrap();
    // ... and then exactly the dropped pages are counted.
    let dropped = (0..30)
        .filter(|&i| (m.page(i) / PAGE_SIZE).is_multiple_of(3))
        .count() as u64;
    assert_eq!(check.false_negatives(), dropped);
    assert_eq!(check.pages_checked(), 30);
    // A new epoch: a second write to a dropped page is caught again.
    check.arm().unwrap();
    m.write(0, 2);
    let _ = harvest_pages(&check);
    check.disarm().unwrap();
    let extra = u64::from((m.page(0) / PAGE_SIZE).is_multiple_of(3));
    assert_eq!(check.false_negatives(), dropped + extra);
    let mut named = 0;
    check.for_each_counter(&mut |name, v| {
        if name == "cross_check_false_negatives" {
            named = v;
        }
    });
    assert_eq!(named, check.false_negatives());
    check.untrack(m.range).unwrap();
}

/// Expected: the child aborts (SIGABRT) after printing
/// "CROSS-CHECK FAILED: page 0x... was reported dirty by `none` but not by `lossy`".
#[test]
fn a_lossy_primary_aborts_in_strict_mode() {
    if std::env::var_os("CROSS_CHECK_STRICT_CHILD").is_some() {
        let check = CrossCheck::new(lossy("none"), oohgc_dirty::open("none").unwrap());
        let m = Mapping::new(8);
        check.track(m.range).unwrap();
        check.arm().unwrap();
        m.write(0, 1);
        let _ = harvest_pages(&check);
        check.disarm().unwrap();
        // Not reached: `none` reports all 8 pages, the lossy primary drops some.
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_lossy_primary_aborts_in_strict_mode",
            "--exact",
            "--nocapture",
        ])
        .env("CROSS_CHECK_STRICT_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("CROSS-CHECK FAILED: page 0x")
            && stderr.contains("reported dirty by `none` but not by `lossy`"),
        "{stderr}"
    );
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Three writers hit random pages while the pair is harvested repeatedly;
/// returns (harvests, pages checked, false negatives).
fn random_writers(primary: &str, secondary: &str) -> (u64, u64, u64) {
    let check = CrossCheck::with_mode(
        oohgc_dirty::open(primary).unwrap(),
        oohgc_dirty::open(secondary).unwrap(),
        Mode::Count,
    );
    const PAGES: usize = 256;
    let m = Mapping::new(PAGES);
    check.track(m.range).unwrap();
    check.arm().unwrap();
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (m, stop, writes) = (&m, &stop, &writes);
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t);
                while !stop.load(Ordering::Relaxed) {
                    m.write(rng.next() as usize % PAGES, t as u8);
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            check.harvest(&mut |_| {}).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // A harvest with the writers stopped lets every late write land.
    check.harvest(&mut |_| {}).unwrap();
    check.harvest(&mut |_| {}).unwrap();
    check.disarm().unwrap();
    check.untrack(m.range).unwrap();
    assert!(
        writes.load(Ordering::Relaxed) > 100,
        "the writers did not run"
    );
    (
        check.checks(),
        check.pages_checked(),
        check.false_negatives(),
    )
}

#[test]
fn real_pairs_under_random_writers_find_nothing() {
    let _s = serial();
    for (p, s) in [
        ("pagemap-scan", "mprotect"),
        ("mprotect", "pagemap-scan"),
        ("uffd", "mprotect"),
        ("epml", "mprotect"),
        ("spml", "mprotect"),
    ] {
        let (harvests, checked, missed) = random_writers(p, s);
        eprintln!("{p} vs {s}: {harvests} harvests, {checked} pages checked, {missed} missed");
        assert!(checked > 0, "{p} vs {s}: the secondary reported nothing");
        assert_eq!(missed, 0, "{p} vs {s}: false negatives of {p}");
    }
}

#[test]
fn two_userfaultfd_sources_on_one_range_are_refused_clearly() {
    let check = CrossCheck::new(
        oohgc_dirty::open("pagemap-scan").unwrap(),
        oohgc_dirty::open("uffd").unwrap(),
    );
    let m = Mapping::new(4);
    let err = check
        .track(m.range)
        .expect_err("one userfaultfd per mapping");
    let msg = err.to_string();
    assert!(
        msg.contains("already registered with another userfaultfd"),
        "{msg}"
    );
    // The primary's registration was undone: it can track the range alone.
    let alone = oohgc_dirty::open("uffd").unwrap();
    alone.track(m.range).unwrap();
    alone.untrack(m.range).unwrap();
}

/// A source whose harvests report scripted pages: the `n`th harvest
/// reports `script[n]` (nothing once the script runs out).
struct Scripted {
    script: Vec<Vec<usize>>,
    calls: Mutex<usize>,
}

impl DirtySource for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn track(&self, _range: PageRange) -> Result<(), DirtyError> {
        Ok(())
    }
    fn untrack(&self, _range: PageRange) -> Result<(), DirtyError> {
        Ok(())
    }
    fn arm(&self) -> Result<(), DirtyError> {
        Ok(())
    }
    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let mut calls = self.calls.lock().unwrap();
        if let Some(pages) = self.script.get(*calls) {
            for &p in pages {
                sink(PageRange::new(p, PAGE_SIZE).unwrap());
            }
        }
        *calls += 1;
        Ok(())
    }
    fn disarm(&self) -> Result<(), DirtyError> {
        Ok(())
    }
    fn counters(&self) -> Counters {
        Counters::default()
    }
}

fn scripted(script: Vec<Vec<usize>>) -> Box<dyn DirtySource> {
    Box::new(Scripted {
        script,
        calls: Mutex::new(0),
    })
}

#[test]
fn a_write_landing_after_the_last_harvest_is_not_a_false_negative() {
    const PAGE: usize = 0x7000_0000_0000;
    // The secondary records the write at the last harvest (mprotect does, in
    // its fault handler, before the store runs); the primary sees it only
    // on the harvest after, when the store has landed.
    let late = CrossCheck::with_mode(
        scripted(vec![vec![], vec![PAGE]]),
        scripted(vec![vec![PAGE]]),
        Mode::Count,
    );
    late.arm().unwrap();
    late.harvest(&mut |_| {}).unwrap();
    late.disarm().unwrap();
    assert_eq!(
        late.false_negatives(),
        0,
        "a late write was counted as missed"
    );

    // A primary that never reports the page is still caught, after the wait.
    let lost = CrossCheck::with_mode(
        scripted(vec![vec![]]),
        scripted(vec![vec![PAGE]]),
        Mode::Count,
    );
    lost.arm().unwrap();
    lost.harvest(&mut |_| {}).unwrap();
    let t = Instant::now();
    lost.disarm().unwrap();
    assert_eq!(
        lost.false_negatives(),
        1,
        "a page the primary never reported"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(oohgc_dirty::cross_check::LATE_WRITE_WAIT_MS),
        "the verdict came before the wait for late writes"
    );
}
