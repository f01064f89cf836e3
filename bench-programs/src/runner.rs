//! The runner side: spawn one worker process per run, collect the result
//! lines, and aggregate medians and ratios against a baseline.

use crate::config::{ConfigKind, RunConfig};
use crate::figures::median;
use crate::result::RunResult;
use crate::workloads::{Knobs, Size, Workload};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Name of the oohgc worker binary, expected next to the runner.
pub const GC_WORKER: &str = "oohgc-bench-gc";

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Workloads with the configurations each runs in.
    pub cells: Vec<(Workload, Vec<RunConfig>)>,
    /// The size.
    pub size: Size,
    /// Runs per configuration.
    pub runs: usize,
    /// Workload knobs.
    pub knobs: Knobs,
    /// Kill a worker after this long.
    pub timeout: Duration,
}

impl Plan {
    /// Total number of worker runs.
    pub fn total_runs(&self) -> usize {
        self.cells.iter().map(|(_, c)| c.len()).sum::<usize>() * self.runs
    }
}

/// Medians over the runs of one workload in one configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Workload name.
    pub workload: String,
    /// Size name.
    pub size: String,
    /// Configuration label.
    pub config: String,
    /// Runs that produced a result.
    pub runs_ok: usize,
    /// Why the configuration did not run (`unavailable: ...` / `failed: ...`).
    pub error: Option<String>,
    /// The checksum (None when runs disagreed or none succeeded).
    pub checksum: Option<u64>,
    /// Whether every configuration of this workload had the same checksum.
    pub checksum_agrees: bool,
    /// Median wall time, ms.
    pub wall_ms: f64,
    /// Median CPU time, ms.
    pub cpu_ms: f64,
    /// Median peak RSS, MiB.
    pub rss_mib: f64,
    /// Median collections.
    pub collections: f64,
    /// Median total pause, ms.
    pub total_pause_ms: f64,
    /// Median p50 pause, ms.
    pub pause_p50_ms: f64,
    /// Median p99 pause, ms.
    pub pause_p99_ms: f64,
    /// Median max pause, ms.
    pub pause_max_ms: f64,
    /// Median longest mutator stall, ms.
    pub max_stall_ms: f64,
    /// Median dirty pages harvested.
    pub dirty_pages: f64,
    /// Median modelled hardware time (see `RunResult::modelled_ns`), ms.
    pub modelled_ms: f64,
    /// Median measured time inside the source's harvests (`harvest_ns`), ms.
    pub harvest_ms: f64,
    /// Median PML log entries (`pml_entries_logged`; 0 for other sources).
    pub pml_entries: f64,
    /// Median of each counter, by name.
    pub counters: Vec<(String, f64)>,
    /// Median of each workload-specific figure, by name.
    pub extra: Vec<(String, f64)>,
    /// Wall time / baseline's wall time (same workload, same run).
    pub wall_vs_baseline: Option<f64>,
    /// Max pause / baseline's max pause.
    pub pause_vs_baseline: Option<f64>,
    /// For `oohgc/<source>`: wall time / `oohgc/none`'s (tracking overhead).
    pub tracking_overhead: Option<f64>,
    /// Every pause of every run, ns (distribution plots).
    pub pauses_ns: Vec<u64>,
}

/// A whole suite's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The size run.
    pub size: String,
    /// Runs per configuration.
    pub runs: usize,
    /// The baseline configuration label.
    pub baseline: String,
    /// One summary per workload and configuration.
    pub summaries: Vec<Summary>,
    /// Every individual result.
    pub results: Vec<RunResult>,
}

/// Find the worker binaries next to the running executable.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The runner itself (malloc / bdwgc / direct workers).
    pub runner: PathBuf,
    /// The oohgc worker.
    pub gc_worker: PathBuf,
}

impl Binaries {
    /// The current executable and, when `need_gc_worker`, its sibling
    /// `oohgc-bench-gc`. Started by `cargo run` (`$CARGO` set), the runner
    /// has cargo bring the worker up to date with the same profile first
    /// (a no-op when it is); otherwise a missing worker is an error and an
    /// older one a warning.
    pub fn locate(need_gc_worker: bool) -> Result<Binaries, String> {
        let runner =
            std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
        let dir = runner.parent().unwrap_or(Path::new(".")).to_path_buf();
        let gc_worker = dir.join(GC_WORKER);
        if !need_gc_worker {
            return Ok(Binaries { runner, gc_worker });
        }
        let stale = match (mtime(&gc_worker), mtime(&runner)) {
            (Some(w), Some(r)) => w < r,
            _ => true,
        };
        if let Some(cargo) = std::env::var_os("CARGO") {
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "oohgc-bench", "--bin", GC_WORKER]);
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            if stale {
                eprintln!("building {GC_WORKER} (the oohgc worker) ...");
            }
            let status = cmd
                .status()
                .map_err(|e| format!("cannot run cargo to build {GC_WORKER}: {e}"))?;
            if !status.success() {
                return Err(format!("building {GC_WORKER} failed ({status})"));
            }
        } else if !gc_worker.exists() {
            return Err(format!(
                "{} not found (it runs the oohgc configurations); build it with \
                 `cargo build --release -p oohgc-bench --bins`",
                gc_worker.display()
            ));
        } else if stale {
            eprintln!(
                "warning: {} is older than this runner; rebuild it with \
                 `cargo build --release -p oohgc-bench --bins`",
                gc_worker.display()
            );
        }
        Ok(Binaries { runner, gc_worker })
    }
}

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The command line that runs `workload` once in `config`.
pub fn worker_command(
    bins: &Binaries,
    workload: Workload,
    config: &RunConfig,
    size: Size,
    knobs: &Knobs,
) -> Command {
    let mut cmd = match &config.kind {
        ConfigKind::Oohgc { source } => {
            let mut cmd = Command::new(&bins.gc_worker);
            cmd.env("OOHGC_DIRTY", source);
            cmd
        }
        _ => {
            let mut cmd = Command::new(&bins.runner);
            cmd.arg("worker");
            cmd
        }
    };
    cmd.args([
        "--workload",
        workload.name(),
        "--size",
        size.name(),
        "--config",
        &config.label,
    ]);
    let knob_args = [
        ("--graph-nodes", knobs.graph_nodes),
        ("--store-rate", knobs.store_rate),
        ("--region-mib", knobs.region_mib),
        ("--passes", knobs.passes),
    ];
    for (flag, value) in knob_args {
        if let Some(v) = value {
            cmd.args([flag, &v.to_string()]);
        }
    }
    cmd
}

/// Run one worker; the error is a table-ready `unavailable: ...` or
/// `failed: ...`.
pub fn run_worker(mut cmd: Command, timeout: Duration) -> Result<RunResult, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed: cannot start {:?}: {e}", cmd.get_program()))?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("failed: timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("failed: waiting for the worker: {e}")),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        // The last two meaningful lines: a panic prints its location, then
        // its message; a collector prints one line.
        let mut lines: Vec<&str> = stderr
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note:"))
            .take(2)
            .collect();
        lines.reverse();
        let last = match lines.as_slice() {
            [.., last] if last.starts_with("panic at ") => last.to_string(),
            [first, second] if first.contains("panicked at") => format!("{first} {second}"),
            [.., only] => only.to_string(),
            [] => String::new(),
        };
        let why = if last.is_empty() {
            format!("{status}")
        } else {
            last
        };
        return Err(
            if why.contains("unavailable")
                || why.contains("not built in")
                || why.contains("refused")
            {
                format!("unavailable: {why}")
            } else {
                format!("failed: {why}")
            },
        );
    }
    RunResult::from_output(&stdout).map_err(|e| format!("failed: {e}"))
}

/// Run the whole plan, calling `progress(done, label)` after each run.
/// Runs are interleaved (round-robin over configurations) so that drift in
/// machine load spreads over all configurations alike.
pub fn execute(
    plan: &Plan,
    bins: &Binaries,
    baseline: &str,
    mut progress: impl FnMut(&str),
) -> Report {
    let mut results: Vec<RunResult> = Vec::new();
    let mut errors: Vec<(String, String, String)> = Vec::new();
    for _ in 0..plan.runs {
        for (workload, configs) in &plan.cells {
            for config in configs {
                if errors
                    .iter()
                    .any(|(w, c, _)| w == workload.name() && *c == config.label)
                {
                    progress(&format!("{workload} {} (skipped)", config.label));
                    continue;
                }
                let cmd = worker_command(bins, *workload, config, plan.size, &plan.knobs);
                match run_worker(cmd, plan.timeout) {
                    Ok(r) => results.push(r),
                    Err(e) => errors.push((workload.name().into(), config.label.clone(), e)),
                }
                progress(&format!("{workload} {}", config.label));
            }
        }
    }
    let mut summaries = Vec::new();
    for (workload, configs) in &plan.cells {
        for config in configs {
            let runs: Vec<&RunResult> = results
                .iter()
                .filter(|r| r.workload == workload.name() && r.config == config.label)
                .collect();
            let error = errors
                .iter()
                .find(|(w, c, _)| w == workload.name() && *c == config.label)
                .map(|(_, _, e)| e.clone());
            summaries.push(summarize(
                workload.name(),
                plan.size.name(),
                &config.label,
                &runs,
                error,
            ));
        }
    }
    add_comparisons(&mut summaries, baseline);
    Report {
        size: plan.size.name().into(),
        runs: plan.runs,
        baseline: baseline.into(),
        summaries,
        results,
    }
}

/// Medians over `runs`.
pub fn summarize(
    workload: &str,
    size: &str,
    config: &str,
    runs: &[&RunResult],
    error: Option<String>,
) -> Summary {
    let med = |f: &dyn Fn(&RunResult) -> f64| {
        median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()).unwrap_or(0.0)
    };
    let ms = |ns: u64| ns as f64 / 1e6;
    let checksum = runs
        .first()
        .map(|r| r.checksum)
        .filter(|c| runs.iter().all(|r| r.checksum == *c));
    let counters = names_of(runs.iter().map(|r| &r.counters))
        .into_iter()
        .map(|n| {
            let v = med(&|r| {
                r.counters
                    .iter()
                    .find(|(m, _)| *m == n)
                    .map(|(_, v)| *v as f64)
                    .unwrap_or(0.0)
            });
            (n, v)
        })
        .collect();
    let extra = names_of(runs.iter().map(|r| &r.extra))
        .into_iter()
        .map(|n| {
            let v = med(&|r| r.extra(&n).unwrap_or(0.0));
            (n, v)
        })
        .collect();
    Summary {
        workload: workload.into(),
        size: size.into(),
        config: config.into(),
        runs_ok: runs.len(),
        error,
        checksum,
        checksum_agrees: true,
        wall_ms: med(&|r| ms(r.wall_ns)),
        cpu_ms: med(&|r| ms(r.cpu_ns)),
        rss_mib: med(&|r| r.max_rss_kb as f64 / 1024.0),
        collections: med(&|r| r.collections as f64),
        total_pause_ms: med(&|r| ms(r.total_pause_ns)),
        pause_p50_ms: med(&|r| ms(r.pause_p50_ns)),
        pause_p99_ms: med(&|r| ms(r.pause_p99_ns)),
        pause_max_ms: med(&|r| ms(r.pause_max_ns)),
        max_stall_ms: med(&|r| ms(r.max_stall_ns)),
        dirty_pages: med(&|r| r.dirty_pages as f64),
        modelled_ms: med(&|r| ms(r.modelled_ns())),
        harvest_ms: med(&|r| ms(r.counter("harvest_ns"))),
        pml_entries: med(&|r| r.counter("pml_entries_logged") as f64),
        counters,
        extra,
        wall_vs_baseline: None,
        pause_vs_baseline: None,
        tracking_overhead: None,
        pauses_ns: runs
            .iter()
            .flat_map(|r| r.pauses_ns.iter().copied())
            .collect(),
    }
}

/// The distinct names in several `(name, value)` lists, in first-seen order.
fn names_of<'a, T: 'a>(lists: impl Iterator<Item = &'a Vec<(String, T)>>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for list in lists {
        for (n, _) in list {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    names
}

/// Fill in ratios against `baseline`, tracking overhead against
/// `oohgc/none`, and whether checksums agree across configurations.
pub fn add_comparisons(summaries: &mut [Summary], baseline: &str) {
    let snapshot: Vec<Summary> = summaries.to_vec();
    let find = |workload: &str, config: &str| {
        snapshot
            .iter()
            .find(|s| s.workload == workload && s.config == config && s.runs_ok > 0)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { Some(a / b) } else { None };
    for s in summaries.iter_mut() {
        if s.runs_ok == 0 {
            continue;
        }
        if let Some(base) = find(&s.workload, baseline) {
            s.wall_vs_baseline = ratio(s.wall_ms, base.wall_ms);
            s.pause_vs_baseline = ratio(s.pause_max_ms, base.pause_max_ms);
        }
        if s.config.starts_with("oohgc/") {
            if let Some(none) = find(&s.workload, "oohgc/none") {
                s.tracking_overhead = ratio(s.wall_ms, none.wall_ms);
            }
        }
        // Configurations whose own runs disagree are flagged on their row
        // (checksum None) and do not count against the others.
        let sums: Vec<u64> = snapshot
            .iter()
            .filter(|o| o.workload == s.workload && o.runs_ok > 0)
            .filter_map(|o| o.checksum)
            .collect();
        s.checksum_agrees = s.checksum.is_some_and(|c| sums.iter().all(|o| *o == c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(config: &str, wall_ns: u64, checksum: u64) -> RunResult {
        RunResult {
            workload: "gcbench".into(),
            config: config.into(),
            wall_ns,
            checksum,
            pause_max_ns: wall_ns / 10,
            ..RunResult::default()
        }
    }

    #[test]
    fn medians_ratios_and_checksum_agreement() {
        let a = [
            result("malloc", 100_000_000, 7),
            result("malloc", 300_000_000, 7),
            result("malloc", 200_000_000, 7),
        ];
        let b = [result("oohgc/none", 400_000_000, 7)];
        let c = [result("oohgc/epml", 500_000_000, 8)];
        let refs = |v: &[RunResult]| -> Vec<RunResult> { v.to_vec() };
        let (a, b, c) = (refs(&a), refs(&b), refs(&c));
        let mut sums = vec![
            summarize(
                "gcbench",
                "S",
                "malloc",
                &a.iter().collect::<Vec<_>>(),
                None,
            ),
            summarize(
                "gcbench",
                "S",
                "oohgc/none",
                &b.iter().collect::<Vec<_>>(),
                None,
            ),
            summarize(
                "gcbench",
                "S",
                "oohgc/epml",
                &c.iter().collect::<Vec<_>>(),
                None,
            ),
        ];
        add_comparisons(&mut sums, "malloc");
        assert_eq!(sums[0].wall_ms, 200.0);
        assert_eq!(sums[1].wall_vs_baseline, Some(2.0));
        assert_eq!(sums[2].tracking_overhead, Some(1.25));
        assert!(!sums[2].checksum_agrees, "checksum 8 differs from 7");
        assert!(!sums[0].checksum_agrees);

        // A configuration whose own runs disagree is flagged alone.
        let d = [result("bdwgc", 1, 7), result("bdwgc", 1, 9)];
        let mut sums = vec![
            summarize(
                "gcbench",
                "S",
                "malloc",
                &a.iter().collect::<Vec<_>>(),
                None,
            ),
            summarize("gcbench", "S", "bdwgc", &d.iter().collect::<Vec<_>>(), None),
        ];
        add_comparisons(&mut sums, "malloc");
        assert_eq!(sums[1].checksum, None);
        assert!(!sums[1].checksum_agrees);
        assert!(
            sums[0].checksum_agrees,
            "malloc agrees with every checksum that exists"
        );
    }
}

#[cfg(test)]
mod worker_tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn worker_failures_become_table_notes() {
        let e = run_worker(
            sh("echo 'dirty source `x` is unavailable: no kernel support' >&2; exit 2"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "unavailable: dirty source `x` is unavailable: no kernel support"
        );
        let e = run_worker(sh("echo boom >&2; exit 3"), Duration::from_secs(10)).unwrap_err();
        assert_eq!(e, "failed: boom");
        let e = run_worker(
            sh("printf \"thread 'main' panicked at src/x.rs:1:2:\\nboom\\nnote: run with RUST_BACKTRACE=1\\n\" >&2; exit 101"),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(e, "failed: thread 'main' panicked at src/x.rs:1:2: boom");
        let e = run_worker(sh("kill -SEGV $$"), Duration::from_secs(10)).unwrap_err();
        assert!(e.starts_with("failed: ") && e.contains("SIGSEGV"), "{e}");
        let e = run_worker(sh("exit 0"), Duration::from_secs(10)).unwrap_err();
        assert!(e.contains("no result line"), "{e}");
    }

    #[test]
    fn a_hung_worker_is_killed_at_the_timeout() {
        let start = Instant::now();
        let e = run_worker(sh("exec sleep 30"), Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_result_line_is_read_from_the_worker() {
        let r = RunResult {
            workload: "pca".into(),
            checksum: 42,
            ..RunResult::default()
        };
        let line = r.to_line().replace('\'', "'\\''");
        let got = run_worker(
            sh(&format!("echo noise; echo '{line}'")),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(got, r);
    }
}
