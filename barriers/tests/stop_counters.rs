//! While the world is stopped, spinning threads make no progress; after the
//! restart they do again. Registered and never-registered threads alike.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const ROUNDS: usize = 200;

fn wait_until_all_move(counters: &[AtomicU64], before: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, counter) in counters.iter().enumerate() {
        while counter.load(Ordering::Relaxed) == before[i] {
            assert!(
                Instant::now() < deadline,
                "thread {i} did not resume after restart"
            );
            std::thread::yield_now();
        }
    }
}

#[test]
fn stopped_threads_do_not_move_and_resume_after_restart() {
    oohgc_barriers::init(oohgc_barriers::SignalConfig::default()).unwrap();
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..THREADS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let counters = counters.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                if i.is_multiple_of(2) {
                    oohgc_barriers::register_current_thread();
                }
                while !stop.load(Ordering::Relaxed) {
                    counters[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let zeros = vec![0; THREADS];
    wait_until_all_move(&counters, &zeros);

    for round in 0..ROUNDS {
        let world = oohgc_barriers::stop_world();
        assert!(
            world.thread_count() >= THREADS,
            "round {round}: only {} threads stopped",
            world.thread_count()
        );
        let frozen: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let until = Instant::now() + Duration::from_micros(300);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        for (i, counter) in counters.iter().enumerate() {
            assert_eq!(
                counter.load(Ordering::Relaxed),
                frozen[i],
                "round {round}: thread {i} moved while the world was stopped"
            );
        }
        drop(world);
        wait_until_all_move(&counters, &frozen);
    }
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.join().unwrap();
    }
}
