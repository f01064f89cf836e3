//! The load torture binary: `torture [--threads N] [--seconds S]
//! [--roots R] [--seed X] [--replace-threads 0|1]` under the dirty source
//! `OOHGC_DIRTY` selects, with the verifier on. Prints one summary line on stdout; exits 1 on any failure,
//! 2 on a bad command line or configuration.

use oohgc_torture::args::{parse, OptionSpec};
use oohgc_torture::load::{configure, run, LoadOptions};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

const SPECS: &[OptionSpec] = &[
    OptionSpec {
        name: "threads",
        min: 1.0,
        max: 4096.0,
        integer: true,
    },
    OptionSpec {
        name: "seconds",
        min: 0.05,
        max: 86400.0,
        integer: false,
    },
    OptionSpec {
        name: "roots",
        min: 1.0,
        max: 10_000_000.0,
        integer: true,
    },
    OptionSpec {
        name: "seed",
        min: 0.0,
        max: 9.0e15,
        integer: true,
    },
    OptionSpec {
        name: "replace-threads",
        min: 0.0,
        max: 1.0,
        integer: true,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let values = match parse(&args, SPECS) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("torture: {e}");
            std::process::exit(2);
        }
    };
    let d = LoadOptions::default();
    let opts = LoadOptions {
        threads: values[0].map_or(d.threads, |v| v as usize),
        seconds: values[1].unwrap_or(d.seconds),
        roots: values[2].map_or(d.roots, |v| v as usize),
        seed: values[3].map_or(d.seed, |v| v as u64),
        replace_threads: values[4].map_or(d.replace_threads, |v| v == 1.0),
    };
    if let Err(e) = configure() {
        eprintln!("torture: cannot start the collector: {e}");
        std::process::exit(2);
    }
    let report = run(opts);
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
}
