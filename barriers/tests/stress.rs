//! Everything at once: spinning workers (registered or not) that enter and
//! leave blocking regions and spawn short-lived children, and two threads
//! stopping the world in turn. During every stop no worker counter may move
//! (a worker leaving a blocking region waits for the restart). A watchdog
//! (excluded) fails the run instead of hanging. Short by default; set
//! `OOHGC_BARRIERS_STRESS_SECS` for a long run.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKERS: usize = 8;

#[test]
fn stop_world_under_mixed_load() {
    oohgc_barriers::init(Default::default()).unwrap();
    let seconds: u64 = std::env::var("OOHGC_BARRIERS_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let finished = Arc::new(AtomicBool::new(false));
    common::watchdog(
        finished.clone(),
        Duration::from_secs(seconds + 60),
        "stress: hung (watchdog)",
    );
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..WORKERS).map(|_| AtomicU64::new(0)).collect());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (finished, counters) = (finished.clone(), counters.clone());
            std::thread::spawn(move || {
                if w % 2 == 0 {
                    oohgc_barriers::register_current_thread();
                }
                let mut n = 0u64;
                while !finished.load(Ordering::Relaxed) {
                    n += 1;
                    counters[w].fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(50_000) && w % 4 == 0 {
                        let _region = oohgc_barriers::enter_blocking();
                        std::thread::sleep(Duration::from_micros(500));
                    }
                    if n.is_multiple_of(200_000) && w % 4 == 1 {
                        std::thread::spawn(move || std::hint::black_box(n))
                            .join()
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    let stops = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let stoppers: Vec<_> = (0..2)
        .map(|_| {
            let (counters, stops) = (counters.clone(), stops.clone());
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    let world = oohgc_barriers::stop_world();
                    let frozen: Vec<u64> =
                        counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                    for _ in 0..2000 {
                        std::hint::spin_loop();
                    }
                    for (w, c) in counters.iter().enumerate() {
                        assert_eq!(
                            c.load(Ordering::Relaxed),
                            frozen[w],
                            "worker {w} moved while the world was stopped"
                        );
                    }
                    drop(world);
                    stops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(300));
                }
            })
        })
        .collect();
    for s in stoppers {
        s.join().unwrap();
    }
    finished.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(stops.load(Ordering::Relaxed) > 0);
}
