//! Two threads stopping the world at the same time: each stopper is a
//! target of the other while it waits for the world lock, which must not
//! deadlock. A watchdog (excluded from stops) fails the test instead of
//! hanging.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn two_stoppers_take_turns_without_deadlock() {
    oohgc_barriers::init(Default::default()).unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    common::watchdog(
        finished.clone(),
        Duration::from_secs(60),
        "concurrent_stoppers: deadlock (60 s watchdog)",
    );
    let progress = Arc::new(AtomicU64::new(0));
    let worker = {
        let (finished, progress) = (finished.clone(), progress.clone());
        std::thread::spawn(move || {
            oohgc_barriers::register_current_thread();
            while !finished.load(Ordering::Relaxed) {
                progress.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let stoppers: Vec<_> = (0..2)
        .map(|_| {
            let progress = progress.clone();
            std::thread::spawn(move || {
                oohgc_barriers::register_current_thread();
                for _ in 0..200 {
                    let world = oohgc_barriers::stop_world();
                    let frozen = progress.load(Ordering::Relaxed);
                    std::hint::black_box(world.thread_count());
                    assert_eq!(
                        progress.load(Ordering::Relaxed),
                        frozen,
                        "the worker ran while a stopper held the world"
                    );
                    drop(world);
                }
            })
        })
        .collect();
    for s in stoppers {
        s.join().unwrap();
    }
    finished.store(true, Ordering::Relaxed);
    worker.join().unwrap();
}
