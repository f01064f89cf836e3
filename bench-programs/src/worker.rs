//! The worker side: run one workload in one configuration, in this process,
//! and print one [`RunResult`] line.
//!
//! The runner starts a worker per run: `oohgc-bench worker ...` for
//! `malloc`, `bdwgc`, `bdwgc-incr` and `direct/<source>` (array-writer), and
//! `oohgc-bench-gc ...` (whose global allocator is oohgc's) for `oohgc`.

use crate::heap::Heap;
use crate::result::{RunResult, MAX_PAUSES_KEPT};
use crate::workloads::{array_writer, Knobs, Size, Workload};
use std::time::Instant;

/// Arguments of a worker run.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// The workload.
    #[arg(long, value_parser = parse_workload)]
    pub workload: Workload,
    /// The size.
    #[arg(long, value_enum, default_value = "S")]
    pub size: Size,
    /// The configuration label to report (e.g. `oohgc/epml`, `malloc`).
    #[arg(long)]
    pub config: String,
    /// Workload knobs.
    #[command(flatten)]
    pub knobs: Knobs,
}

/// clap value parser for workload names.
pub fn parse_workload(name: &str) -> Result<Workload, String> {
    Workload::from_name(name)
}

/// (CPU ns, peak RSS KiB) of this process so far.
pub fn process_usage() -> (u64, u64) {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv_ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    (
        tv_ns(usage.ru_utime) + tv_ns(usage.ru_stime),
        usage.ru_maxrss as u64,
    )
}

/// Run a heap workload on `heap` and gather every figure.
pub fn run_on_heap<H: Heap>(args: &WorkerArgs, heap: &mut H) -> RunResult {
    heap.meter().restart();
    let start = Instant::now();
    let checksum = args.workload.run(heap, args.size, &args.knobs);
    let wall_ns = start.elapsed().as_nanos() as u64;
    heap.meter().sample();
    let max_stall_ns = heap.meter().max_gap_ns();
    let figures = heap.figures();
    let (cpu_ns, max_rss_kb) = process_usage();
    let mut pauses = figures.pauses_ns;
    pauses.truncate(MAX_PAUSES_KEPT);
    RunResult {
        workload: args.workload.name().into(),
        size: args.size.name().into(),
        config: args.config.clone(),
        checksum,
        wall_ns,
        cpu_ns,
        max_rss_kb,
        collections: figures.collections,
        heap_size: figures.heap_size,
        total_pause_ns: figures.total_pause_ns,
        pause_p50_ns: figures.pause_p50_ns,
        pause_p99_ns: figures.pause_p99_ns,
        pause_max_ns: figures.pause_max_ns,
        max_stall_ns,
        dirty_pages: figures.dirty_pages,
        dirty_source: figures.dirty_source,
        counters: figures.counters,
        pauses_ns: pauses,
        extra: Vec::new(),
    }
}

/// Run array-writer on the source in `args.config` (`direct/<source>`).
pub fn run_array_writer(args: &WorkerArgs) -> Result<RunResult, String> {
    let source = args.config.strip_prefix("direct/").ok_or_else(|| {
        format!(
            "array-writer runs as direct/<source>, not {:?}",
            args.config
        )
    })?;
    let start = Instant::now();
    let (checksum, f) = array_writer::run(source, args.size, &args.knobs)?;
    let wall_ns = start.elapsed().as_nanos() as u64;
    let (cpu_ns, max_rss_kb) = process_usage();
    let pages: u64 = f
        .counters
        .iter()
        .find(|(n, _)| n == "pages_reported")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    Ok(RunResult {
        workload: args.workload.name().into(),
        size: args.size.name().into(),
        config: args.config.clone(),
        checksum,
        wall_ns,
        cpu_ns,
        max_rss_kb,
        dirty_pages: pages,
        dirty_source: source.to_string(),
        extra: vec![
            ("region_bytes".into(), f.region_bytes as f64),
            ("tracked_passes".into(), f.tracked_passes as f64),
            ("untracked_pass_ns".into(), f.untracked_pass_ns),
            ("tracked_pass_ns".into(), f.tracked_pass_ns),
            ("harvest_pass_ns".into(), f.harvest_pass_ns),
            ("pages_per_harvest".into(), f.pages_per_harvest),
            ("mutator_slowdown".into(), f.mutator_slowdown()),
            ("total_slowdown".into(), f.total_slowdown()),
        ],
        counters: f.counters,
        ..RunResult::default()
    })
}

/// Make a panic end with one line `panic at FILE:LINE: MESSAGE` on stderr
/// (after the usual report and any backtrace), which is the line the
/// runner shows in its table.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".into());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "?".into());
        eprintln!("panic at {at}: {message}");
    }));
}

/// Print the result line, or the error on stderr and exit 2.
pub fn finish(result: Result<RunResult, String>) -> ! {
    match result {
        Ok(r) => {
            println!("{}", r.to_line());
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    }
}
