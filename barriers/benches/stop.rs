//! Stop-the-world latency: `stop` (call to every thread acknowledged) and
//! `stop+restart` (call to every thread running again: for spinning threads,
//! until each has made progress again; for sleeping threads, until
//! `StoppedWorld` is dropped, since they were asleep anyway), with 1, 4 and 16
//! registered threads, spinning or sleeping; plus the cost of listing
//! `/proc/self/task`. `restart` is the `StoppedWorld` drop alone (it does not
//! wait for threads to resume). Each configuration is measured twice, stop
//! by stop alternately: with the default of the stopper (sleep on the futex
//! at once) and (`/sp`) polling 30 us for acknowledgements first. Prints p50/p99 and ratios against the 1-spinning-thread
//! figure measured in the same run.
//!
//! Run: `cargo bench -p oohgc-barriers --bench stop` (set
//! `OOHGC_BENCH_ITERS` to change the iteration count, default 150).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Summary {
    p50: u64,
    p99: u64,
}

fn summarize(mut samples: Vec<u64>) -> Summary {
    samples.sort_unstable();
    Summary {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Spinning,
    Sleeping,
}

/// Samples of one configuration of the stopper.
#[derive(Default)]
struct Samples {
    stop: Vec<u64>,
    stop_restart: Vec<u64>,
    restart_call: Vec<u64>,
    resends: usize,
}

/// Runs `iterations` stops per entry of `spins` (acknowledgement spin of the
/// stopper), alternating between them stop by stop so both see the same
/// machine load.
fn measure(threads: usize, kind: Kind, iterations: usize, spins: &[u64]) -> Vec<Samples> {
    let done = Arc::new(AtomicBool::new(false));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (done, counters) = (done.clone(), counters.clone());
            std::thread::spawn(move || {
                oohgc_barriers::register_current_thread();
                while !done.load(Ordering::Relaxed) {
                    counters[i].fetch_add(1, Ordering::Relaxed);
                    if kind == Kind::Sleeping {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
        })
        .collect();
    while oohgc_barriers::registered_thread_count() < threads {
        std::thread::yield_now();
    }
    let mut samples: Vec<Samples> = spins.iter().map(|_| Samples::default()).collect();
    let mut before = vec![0u64; threads];
    for iteration in 0..(iterations + 10) * spins.len() {
        let which = iteration % spins.len();
        oohgc_barriers::set_ack_spin_ns(spins[which]);
        for (b, c) in before.iter_mut().zip(counters.iter()) {
            *b = c.load(Ordering::Relaxed);
        }
        let t0 = Instant::now();
        let world = oohgc_barriers::stop_world();
        let t1 = Instant::now();
        let resends = world.stats().resends;
        drop(world);
        let t_restart = Instant::now();
        if kind == Kind::Spinning {
            for (b, c) in before.iter().zip(counters.iter()) {
                while c.load(Ordering::Relaxed) == *b {
                    std::hint::spin_loop();
                }
            }
        }
        let t2 = Instant::now();
        if iteration >= 10 * spins.len() {
            let s = &mut samples[which];
            s.stop.push((t1 - t0).as_nanos() as u64);
            s.stop_restart.push((t2 - t0).as_nanos() as u64);
            s.restart_call.push((t_restart - t1).as_nanos() as u64);
            s.resends += resends;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    done.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    samples
}

fn main() {
    oohgc_barriers::init(oohgc_barriers::SignalConfig::from_env().unwrap()).unwrap();
    let iterations: usize = std::env::var("OOHGC_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);

    let mut listing = Vec::with_capacity(iterations);
    let mut listed = 0;
    for _ in 0..iterations {
        let t0 = Instant::now();
        listed = oohgc_barriers::count_process_threads();
        listing.push(t0.elapsed().as_nanos() as u64);
    }
    let listing = summarize(listing);
    println!(
        "list /proc/self/task ({listed} threads): p50 {:.1} us, p99 {:.1} us",
        us(listing.p50),
        us(listing.p99)
    );

    println!(
        "{:<8} {:>6} {:>10} {:>10} {:>14} {:>14} {:>12} {:>8} {:>10}",
        "threads",
        "kind",
        "stop p50",
        "stop p99",
        "stop+rst p50",
        "stop+rst p99",
        "restart p50",
        "resends",
        "p50 ratio"
    );
    let mut baseline = None;
    let spins = [oohgc_barriers::DEFAULT_ACK_SPIN_NS, 30_000];
    for kind in [Kind::Spinning, Kind::Sleeping] {
        for threads in [1, 4, 16] {
            let results = measure(threads, kind, iterations, &spins);
            for (spin_ns, samples) in spins.iter().zip(results) {
                let resends = samples.resends as f64 / iterations as f64;
                let stop = summarize(samples.stop);
                let restart = summarize(samples.stop_restart);
                let restart_call = summarize(samples.restart_call);
                let base = *baseline.get_or_insert(stop.p50);
                println!(
                    "{:<8} {:>6} {:>8.1}us {:>8.1}us {:>12.1}us {:>12.1}us {:>10.1}us {:>8.2} {:>9.2}x",
                    threads,
                    format!(
                        "{}{}",
                        if kind == Kind::Spinning { "spin" } else { "sleep" },
                        if *spin_ns == oohgc_barriers::DEFAULT_ACK_SPIN_NS { "" } else { "/sp" }
                    ),
                    us(stop.p50),
                    us(stop.p99),
                    us(restart.p50),
                    us(restart.p99),
                    us(restart_call.p50),
                    resends,
                    stop.p50 as f64 / base as f64
                );
            }
        }
    }
    oohgc_barriers::set_ack_spin_ns(oohgc_barriers::DEFAULT_ACK_SPIN_NS);
    println!("(ratio: stop p50 / stop p50 with 1 spinning thread, same run)");
}
