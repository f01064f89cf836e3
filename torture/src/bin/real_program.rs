//! The real program (see `oohgc_torture::workload`) under `GcAllocator`,
//! with a thread forcing a full collection every few milliseconds:
//! `real_program [--scale N] [--collect-every-ms M]`. Prints the digest line
//! on stdout and the number of collections on stderr.

use oohgc_torture::args::{parse, OptionSpec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

const SPECS: &[OptionSpec] = &[
    OptionSpec {
        name: "scale",
        min: 1.0,
        max: 1000.0,
        integer: true,
    },
    OptionSpec {
        name: "collect-every-ms",
        min: 1.0,
        max: 10_000.0,
        integer: true,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let values = parse(&args, SPECS).unwrap_or_else(|e| {
        eprintln!("real_program: {e}");
        std::process::exit(2)
    });
    let scale = values[0].map_or(2, |v| v as usize);
    let every = Duration::from_millis(values[1].map_or(3, |v| v as u64));
    if let Err(e) = oohgc::init() {
        eprintln!("real_program: cannot start the collector: {e}");
        std::process::exit(2);
    }
    let before = oohgc::stats().cycles;
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                oohgc::collect();
                std::thread::sleep(every);
            }
        })
    };
    let digest = oohgc_torture::workload::run(scale);
    stop.store(true, Ordering::Release);
    collector.join().expect("collector thread panicked");
    println!("{digest}");
    eprintln!(
        "real_program: source {} collections {}",
        oohgc::dirty_source_name(),
        oohgc::stats().cycles - before
    );
}
