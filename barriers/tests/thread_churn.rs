//! Threads created and exiting in a tight loop while another thread stops
//! the world 500 times: no hang, no crash, and every stop returns. A watchdog
//! (excluded from stops) fails the test instead of hanging forever.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn stop_world_survives_thread_churn() {
    oohgc_barriers::init(Default::default()).unwrap();
    let finished = Arc::new(AtomicBool::new(false));
    common::watchdog(
        finished.clone(),
        Duration::from_secs(60),
        "thread_churn: stop_world hung (60 s watchdog)",
    );
    let spawned = Arc::new(AtomicUsize::new(0));
    let spawners: Vec<_> = (0..2)
        .map(|s| {
            let finished = finished.clone();
            let spawned = spawned.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !finished.load(Ordering::Relaxed) {
                    let register = (n + s).is_multiple_of(2);
                    let child = std::thread::spawn(move || {
                        if register {
                            oohgc_barriers::register_current_thread();
                        }
                        std::hint::black_box(n);
                    });
                    child.join().unwrap();
                    n += 1;
                    spawned.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut max_threads = 0;
    for _ in 0..500 {
        let world = oohgc_barriers::stop_world();
        max_threads = max_threads.max(world.thread_count());
        drop(world);
    }
    finished.store(true, Ordering::Relaxed);
    for s in spawners {
        s.join().unwrap();
    }
    assert!(
        spawned.load(Ordering::Relaxed) > 0,
        "no thread was created during the stops"
    );
    assert!(max_threads >= 2, "the spawner threads were never stopped");
}
