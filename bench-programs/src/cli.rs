//! The runner's command line: `run`, `list`, `compare`, `paper`, `ab`,
//! `checkpoint`, and the hidden `worker` and `checkpoint-worker` that the
//! runner itself starts.

use crate::backends::{bdwgc, malloc::MallocHeap};
use crate::config::{self, parse_list, parse_workloads, RunConfig, COLLECTOR_NAMES};
use crate::report;
use crate::runner::{self, Binaries, Plan, Report};
use crate::worker::{self, WorkerArgs};
use crate::workloads::{Knobs, Size, Workload};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Benchmarks for oohgc: GC workloads on oohgc (per dirty source), bdwgc
/// and malloc, each configuration in its own process, with medians and
/// ratios against a baseline measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "oohgc-bench", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run workloads and print a table (default: gcbench, size S, 5 runs).
    Run(RunArgs),
    /// List workloads, dirty sources and collectors, and which work here.
    List,
    /// Compare two --json reports (second against first).
    Compare {
        /// The reference report.
        a: PathBuf,
        /// The report compared against it.
        b: PathBuf,
    },
    /// Reproduce the shape of the OoH paper's Boehm evaluation: GC time and
    /// application overhead per dirty source on GCBench and the Phoenix
    /// kernels, and array-writer slowdowns.
    Paper(PaperArgs),
    /// Compare two builds of `oohgc-bench-gc` on one workload: their runs
    /// alternate, and the medians of the per-pair ratios B/A are printed
    /// (steadier than ratios of medians on a shared machine whose speed
    /// drifts).
    Ab(AbArgs),
    /// Checkpoint running workloads (a tkrzw-like key-value store and
    /// Phoenix kernels) every N ms with each dirty source: frozen time,
    /// dump time, pages and image bytes per dump, and the workload's
    /// slowdown against no checkpointing (the OoH paper's CRIU client).
    Checkpoint(crate::checkpoint::CheckpointArgs),
    /// (internal) Run one workload in this process and print its result line.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// (internal) Run one checkpoint configuration and print its result line.
    #[command(hide = true)]
    CheckpointWorker(crate::checkpoint::worker::WorkerArgs),
}

/// Output files shared by `run` and `paper`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct OutputArgs {
    /// Write the full report (summaries and every run) as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the summary table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a Markdown report.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write charts (SVG and PNG) into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Arguments of `run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Workloads (names, `all`, `phoenix`); default gcbench.
    pub workloads: Vec<String>,
    /// Workload size.
    #[arg(long, value_enum, default_value = "S")]
    pub size: Size,
    /// Runs per configuration (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Collectors, comma-separated: oohgc, bdwgc, bdwgc-incr, malloc.
    #[arg(long, default_value = "oohgc,bdwgc,malloc")]
    pub collectors: String,
    /// Dirty sources for oohgc (and array-writer), comma-separated:
    /// epml, spml, pagemap-scan, uffd, mprotect, soft-dirty, card, none.
    #[arg(long, default_value = "epml,none")]
    pub sources: String,
    /// The configuration ratios are computed against (e.g. malloc,
    /// bdwgc, oohgc/none).
    #[arg(long, default_value = "malloc")]
    pub baseline: String,
    /// Kill a worker that runs longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Workload knobs.
    #[command(flatten)]
    pub knobs: Knobs,
    /// Output files.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `paper`.
#[derive(clap::Args, Debug)]
pub struct PaperArgs {
    /// Workload size (the paper ran S, M and L).
    #[arg(long, value_enum, default_value = "S")]
    pub size: Size,
    /// Runs per configuration.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Dirty sources to compare, comma-separated (`none` is the
    /// no-tracking reference the overheads are computed against).
    #[arg(
        long,
        default_value = "soft-dirty,spml,epml,pagemap-scan,uffd,mprotect,none"
    )]
    pub sources: String,
    /// Kill a worker that runs longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Output files.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Arguments of `ab`.
#[derive(clap::Args, Debug)]
pub struct AbArgs {
    /// The reference worker: a copy of an earlier
    /// `target/release/oohgc-bench-gc`.
    pub a: PathBuf,
    /// The worker compared against it.
    pub b: PathBuf,
    /// The workload (one that runs on a heap).
    #[arg(long, default_value = "gcbench")]
    pub workload: String,
    /// Workload size.
    #[arg(long, value_enum, default_value = "S")]
    pub size: Size,
    /// The dirty source both workers run under.
    #[arg(long, default_value = "none")]
    pub source: String,
    /// Alternating pairs of runs.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Kill a worker that runs longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Workload knobs.
    #[command(flatten)]
    pub knobs: Knobs,
}

/// The sources the paper compared (soft-dirty is its `/proc`), then the
/// kernel's newer ones, then `none` (the no-tracking reference).
pub const PAPER_SOURCES: &[&str] = &[
    "soft-dirty",
    "spml",
    "epml",
    "pagemap-scan",
    "uffd",
    "mprotect",
    "none",
];

/// Parse the process arguments and run; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("oohgc-bench: {e}");
            1
        }
    }
}

fn dispatch(command: Command) -> Result<(), String> {
    match command {
        Command::Run(args) => run(args),
        Command::List => {
            print!("{}", list());
            Ok(())
        }
        Command::Compare { a, b } => {
            let a = report::json::read(&a)?;
            let b = report::json::read(&b)?;
            print!("{}", report::table::compare(&a, &b));
            Ok(())
        }
        Command::Paper(args) => paper(args),
        Command::Ab(args) => ab(args),
        Command::Worker(args) => worker_main(args),
        Command::Checkpoint(args) => crate::checkpoint::run(args),
        Command::CheckpointWorker(args) => {
            let result = crate::checkpoint::worker::run(&args);
            let line = serde_json::to_string(&result)
                .map_err(|e| format!("cannot encode the result: {e}"))?;
            println!("{line}");
            Ok(())
        }
    }
}

/// The hidden `worker` subcommand: malloc, bdwgc, bdwgc-incr, direct/<source>.
fn worker_main(args: WorkerArgs) -> ! {
    worker::install_panic_hook();
    if !args.workload.uses_heap() {
        worker::finish(worker::run_array_writer(&args));
    }
    let config = match RunConfig::from_label(&args.config) {
        Ok(c) => c,
        Err(e) => worker::finish(Err(e)),
    };
    let result = match config.kind {
        config::ConfigKind::Malloc => Ok(worker::run_on_heap(&args, &mut MallocHeap::new())),
        config::ConfigKind::Bdwgc { incremental } => bdwgc::BdwgcHeap::open(incremental)
            .map(|mut heap| worker::run_on_heap(&args, &mut heap)),
        _ => Err(format!(
            "configuration {} runs in {} or as array-writer, not in this worker",
            args.config,
            runner::GC_WORKER
        )),
    };
    worker::finish(result)
}

fn run(args: RunArgs) -> Result<(), String> {
    let workloads = parse_workloads(&args.workloads)?;
    let collectors = parse_list(&args.collectors, COLLECTOR_NAMES, "collector")?;
    let sources = parse_list(&args.sources, config::source_names(), "dirty source")?;
    RunConfig::from_label(&args.baseline).map_err(|e| format!("--baseline: {e}"))?;
    if args.runs == 0 {
        return Err("--runs 0: allowed values are 1 or more".into());
    }
    if workloads.contains(&Workload::ArrayWriter) {
        crate::workloads::array_writer::params(args.size, &args.knobs)?;
    }
    let mut skipped = Vec::new();
    let mut skipped_oohgc = false;
    let cells = workloads
        .iter()
        .map(|&w| {
            let configs = config::configs_for(w, &collectors, &sources)
                .into_iter()
                .filter(|c| {
                    let bdwgc_row = matches!(c.kind, config::ConfigKind::Bdwgc { .. });
                    let oohgc_row = matches!(c.kind, config::ConfigKind::Oohgc { .. });
                    if oohgc_row && !cfg!(feature = "oohgc") {
                        if !skipped_oohgc {
                            eprintln!("skipping the oohgc rows: {OOHGC_NOT_BUILT}");
                            skipped_oohgc = true;
                        }
                        return false;
                    }
                    if bdwgc_row && !bdwgc::available() {
                        if !skipped.contains(&c.label) {
                            skipped.push(c.label.clone());
                        }
                        return false;
                    }
                    true
                })
                .collect();
            (w, configs)
        })
        .collect();
    if !skipped.is_empty() {
        eprintln!("skipping {}: {}", skipped.join(", "), bdwgc::NOT_BUILT);
    }
    let plan = Plan {
        cells,
        size: args.size,
        runs: args.runs,
        knobs: args.knobs,
        timeout: Duration::from_secs(args.timeout),
    };
    let report = execute(&plan, &args.baseline, args.quiet)?;
    print!("{}", report::table::render(&report));
    report::write_outputs(&report, &args.output)
}

fn paper(args: PaperArgs) -> Result<(), String> {
    let mut sources = parse_list(&args.sources, config::source_names(), "dirty source")?;
    if !sources.iter().any(|s| s == "none") {
        sources.push("none".into());
    }
    if args.runs == 0 {
        return Err("--runs 0: allowed values are 1 or more".into());
    }
    let oohgc = vec!["oohgc".to_string()];
    let mut cells: Vec<(Workload, Vec<RunConfig>)> = std::iter::once(Workload::GcBench)
        .chain(Workload::PHOENIX.iter().copied())
        .map(|w| (w, config::configs_for(w, &oohgc, &sources)))
        .collect();
    cells.push((
        Workload::ArrayWriter,
        config::configs_for(Workload::ArrayWriter, &oohgc, &sources),
    ));
    let plan = Plan {
        cells,
        size: args.size,
        runs: args.runs,
        knobs: Knobs::default(),
        timeout: Duration::from_secs(args.timeout),
    };
    let report = execute(&plan, "oohgc/none", args.quiet)?;
    let names: Vec<&str> = sources.iter().map(String::as_str).collect();
    print!("{}", report::table::paper(&report, &names));
    let mut output = args.output.clone();
    if let Some(path) = output.markdown.take() {
        std::fs::write(&path, report::markdown::render_paper(&report, &names))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    report::write_outputs(&report, &output)
}

fn ab(args: AbArgs) -> Result<(), String> {
    let plan = crate::ab::AbPlan::new(args)?;
    let bar = indicatif::ProgressBar::new(plan.pairs as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} pairs, {elapsed}")
            .expect("the progress template is valid"),
    );
    let pairs = crate::ab::execute(&plan, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let rows = crate::ab::compare(&pairs?);
    print!(
        "{}",
        crate::ab::render(plan.workload.name(), &plan.source, plan.pairs, &rows)
    );
    Ok(())
}

/// Run a plan with a progress bar on stderr.
fn execute(plan: &Plan, baseline: &str, quiet: bool) -> Result<Report, String> {
    let need_gc_worker = plan
        .cells
        .iter()
        .flat_map(|(_, configs)| configs)
        .any(|c| matches!(c.kind, config::ConfigKind::Oohgc { .. }));
    let bins = Binaries::locate(need_gc_worker)?;
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(plan.total_runs() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} runs, {elapsed} {msg}")
            .expect("the progress template is valid"),
    );
    let report = runner::execute(plan, &bins, baseline, |label| {
        bar.inc(1);
        bar.set_message(label.to_string());
    });
    bar.finish_and_clear();
    Ok(report)
}

/// What to tell a user whose build left out the oohgc configurations.
pub const OOHGC_NOT_BUILT: &str =
    "this oohgc-bench was built without the `oohgc` feature; rebuild with default features";

/// The text of `oohgc-bench list`.
pub fn list() -> String {
    let mut out = String::from("workloads (sizes tiny, S, M, L):\n");
    for w in Workload::ALL {
        out += &format!("  {:<17} {}\n", w.name(), w.describe());
    }
    out += "dirty sources (oohgc --sources, and array-writer):\n";
    for name in config::source_names() {
        let status = match oohgc_dirty::probe(name) {
            Ok(_) => "available".to_string(),
            Err(e) => format!("unavailable: {e}"),
        };
        out += &format!("  {name:<17} {status}\n");
    }
    out += "collectors (--collectors):\n";
    if cfg!(feature = "oohgc") {
        out += "  oohgc             available (worker oohgc-bench-gc, one row per source)\n";
    } else {
        out += &format!("  oohgc             unavailable: {OOHGC_NOT_BUILT}\n");
    }
    let bdwgc_status = if bdwgc::available() {
        "available".to_string()
    } else {
        format!("unavailable: {}", bdwgc::NOT_BUILT)
    };
    out += &format!("  bdwgc             {bdwgc_status}\n");
    out += &format!("  bdwgc-incr        {bdwgc_status} (incremental mode)\n");
    out += "  malloc            available (system allocator, explicit frees)\n";
    out
}
