//! Writers on other threads keep running between dumps and are stopped
//! during them — by `ThreadFreezer` (signals) and by a freeze/thaw pair of
//! callbacks (the program's own pause) — under every source. Each image
//! must equal the memory as it was while the writers were stopped.

mod common;

use common::{available_sources, Mapping, Rng, Scratch};
use oohgc_checkpoint::{fn_freezer, Checkpointer, Freezer, Image, ThreadFreezer, PAGE_SIZE};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAGES: usize = 2048;
const WRITERS: usize = 2;
const DUMPS: usize = 4;

/// Wraps a freezer: once the writers are stopped, copies the tracked
/// memory (into a buffer allocated beforehand) — the expected image.
struct Snapshotting<F: Freezer> {
    inner: F,
    mapping: Arc<Mapping>,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl<F: Freezer> Freezer for Snapshotting<F> {
    fn freeze(&mut self) -> Result<(), String> {
        self.inner.freeze()?;
        let mut copy = self.copy.lock().unwrap();
        self.mapping.copy_into(&mut copy);
        Ok(())
    }
    fn thaw(&mut self) {
        self.inner.thaw()
    }
}

/// A writer: random words of random pages, counting its stores.
fn writer(m: &Mapping, seed: u64, stop: &AtomicBool, stores: &AtomicU64, poll: &dyn Fn()) {
    let mut rng = Rng(seed);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let p = rng.below(m.pages());
            n += 1;
            m.write_word(p, rng.below(PAGE_SIZE / 8), seed << 40 | n);
        }
        stores.store(n, Ordering::Relaxed);
        poll();
    }
}

fn check_images(source: &str, dir: &Scratch, expected: &[Vec<u8>]) {
    for (i, copy) in expected.iter().enumerate() {
        let image = Image::open(dir.join(&format!("g{}", i + 1))).unwrap();
        let fresh = Mapping::new(PAGES * PAGE_SIZE);
        image.restore_to(|_| Some(fresh.addr)).unwrap();
        if let Some(p) = fresh.first_difference(copy) {
            panic!(
                "{source}: generation {} differs from the frozen memory at page {p}",
                i + 1
            );
        }
    }
}

fn with_thread_freezer(source: &str) {
    let m = Arc::new(Mapping::new(PAGES * PAGE_SIZE));
    let dir = Scratch::new(source);
    let mut ck = Checkpointer::new(source).unwrap();
    ck.track(m.range()).unwrap();
    let freezer = ThreadFreezer::new().unwrap();
    let registrar = freezer.registrar();
    let copy = Arc::new(Mutex::new(vec![0u8; m.len]));
    ck.set_freezer(Snapshotting {
        inner: freezer,
        mapping: m.clone(),
        copy: copy.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stores: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (m, stop, stores, ready, registrar) = (
                m.clone(),
                stop.clone(),
                stores.clone(),
                ready.clone(),
                registrar.clone(),
            );
            std::thread::spawn(move || {
                let _reg = registrar.register_current_thread().unwrap();
                ready.fetch_add(1, Ordering::SeqCst);
                writer(&m, i as u64 + 1, &stop, &stores[i], &|| {});
            })
        })
        .collect();
    while ready.load(Ordering::SeqCst) < WRITERS {
        std::thread::yield_now();
    }
    let mut expected = Vec::new();
    let mut before: Vec<u64> = vec![0; WRITERS];
    for g in 1..=DUMPS {
        // Let every writer store between dumps.
        for (i, s) in stores.iter().enumerate() {
            while s.load(Ordering::Relaxed) <= before[i] + 1000 {
                std::thread::sleep(Duration::from_millis(1));
            }
            before[i] = s.load(Ordering::Relaxed);
        }
        let r = ck.dump(dir.join(&format!("g{g}"))).unwrap();
        assert_eq!(r.generation as usize, g);
        expected.push(copy.lock().unwrap().clone());
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    check_images(source, &dir, &expected);
}

/// The program's own pause: writers poll a flag at each batch and wait
/// there while it is set.
fn with_callbacks(source: &str) {
    let m = Arc::new(Mapping::new(PAGES * PAGE_SIZE));
    let dir = Scratch::new(source);
    let mut ck = Checkpointer::new(source).unwrap();
    ck.track(m.range()).unwrap();
    let pause = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicUsize::new(0));
    let (p1, a1) = (pause.clone(), paused.clone());
    let p2 = pause.clone();
    let copy = Arc::new(Mutex::new(vec![0u8; m.len]));
    ck.set_freezer(Snapshotting {
        inner: fn_freezer(
            move || {
                p1.store(true, Ordering::SeqCst);
                while a1.load(Ordering::SeqCst) < WRITERS {
                    std::thread::yield_now();
                }
                Ok(())
            },
            move || p2.store(false, Ordering::SeqCst),
        ),
        mapping: m.clone(),
        copy: copy.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stores: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (m, stop, stores, pause, paused) = (
                m.clone(),
                stop.clone(),
                stores.clone(),
                pause.clone(),
                paused.clone(),
            );
            std::thread::spawn(move || {
                let poll = || {
                    if pause.load(Ordering::SeqCst) {
                        paused.fetch_add(1, Ordering::SeqCst);
                        while pause.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        paused.fetch_sub(1, Ordering::SeqCst);
                    }
                };
                writer(&m, i as u64 + 11, &stop, &stores[i], &poll);
            })
        })
        .collect();
    let mut expected = Vec::new();
    for g in 1..=DUMPS {
        let before = stores[0].load(Ordering::Relaxed);
        while stores[0].load(Ordering::Relaxed) < before + 1000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Writers that left the pause of the last dump must be back at work.
        while paused.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        ck.dump(dir.join(&format!("g{g}"))).unwrap();
        expected.push(copy.lock().unwrap().clone());
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    check_images(source, &dir, &expected);
}

#[test]
fn writers_frozen_by_signal_under_every_source() {
    for source in available_sources() {
        eprintln!("source {source}");
        with_thread_freezer(source);
    }
}

#[test]
fn writers_frozen_by_callbacks_under_every_source() {
    for source in available_sources() {
        eprintln!("source {source}");
        with_callbacks(source);
    }
}

#[test]
fn a_freeze_that_cannot_stop_the_writers_fails_the_dump_and_loses_nothing() {
    let m = Mapping::new(64 * PAGE_SIZE);
    let dir = Scratch::new("nofreeze");
    let mut ck = Checkpointer::new("none").unwrap();
    ck.track(m.range()).unwrap();
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    ck.set_freezer(fn_freezer(
        move || {
            if f.load(Ordering::SeqCst) {
                Err("writer 3 is in an uninterruptible section".into())
            } else {
                Ok(())
            }
        },
        || {},
    ));
    let e = ck.dump(dir.join("g1")).unwrap_err();
    assert!(
        e.to_string().contains("cannot stop the writers: writer 3"),
        "{e}"
    );
    assert!(!dir.join("g1").join("image").exists());
    fail.store(false, Ordering::SeqCst);
    m.fill_page(5, 9);
    let r = ck.dump(dir.join("g1")).unwrap();
    assert_eq!((r.generation, r.full), (1, true));
}
