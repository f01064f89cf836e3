//! `oohgc-bench-gc`: the worker that runs a workload on oohgc, with
//! `oohgc::GcAllocator` as the global allocator. The runner starts it with
//! `OOHGC_DIRTY=<source>` in its environment; it prints one result line.

use clap::Parser;
use oohgc_bench::backends::oohgc::OohgcHeap;
use oohgc_bench::worker::{finish, run_on_heap, WorkerArgs};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// Run one workload on oohgc and print its result line.
#[derive(Parser, Debug)]
#[command(name = "oohgc-bench-gc", version)]
struct Args {
    #[command(flatten)]
    worker: WorkerArgs,
}

fn main() {
    let args = Args::parse();
    oohgc_bench::worker::install_panic_hook();
    if !args.worker.workload.uses_heap() {
        finish(Err(format!(
            "{} runs on dirty sources directly; run it through `oohgc-bench worker`",
            args.worker.workload
        )));
    }
    // Start the collector (and open OOHGC_DIRTY's source) before the
    // workload, so that an unavailable source is reported as such even by
    // a workload too small to trigger a collection.
    if let Err(e) = oohgc::init() {
        finish(Err(format!("oohgc: {e}")));
    }
    let mut heap = OohgcHeap::new();
    finish(Ok(run_on_heap(&args.worker, &mut heap)))
}
