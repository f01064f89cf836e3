//! `oohgc-bench ab`: compare two builds of the oohgc worker
//! (`oohgc-bench-gc`) on one workload.
//!
//! Runs alternate — A then B, then B then A, and so on — and what is
//! reported is the median over the pairs of B's figure divided by A's. On a
//! shared machine whose speed drifts by tens of percent over minutes, two
//! runs made a second apart see nearly the same machine, so the ratio of a
//! pair is steadier than the ratio of two medians taken at different times
//! (this is how every change to the collector's speed was measured).
//!
//! Typical use: keep a copy of the worker before a change
//! (`cp target/release/oohgc-bench-gc /tmp/before`), rebuild, then
//! `oohgc-bench ab /tmp/before target/release/oohgc-bench-gc`.

use crate::cli::AbArgs;
use crate::config::{self, parse_list, RunConfig};
use crate::figures::median;
use crate::result::RunResult;
use crate::runner::{self, Binaries};
use crate::workloads::{Knobs, Size, Workload};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads one figure from a run's result.
pub type Figure = fn(&RunResult) -> u64;

/// What `ab` compares, each taken from one run's result.
pub const FIGURES: [(&str, Figure); 6] = [
    ("wall", |r| r.wall_ns),
    ("pause", |r| r.total_pause_ns),
    ("mark", |r| r.counter("total_mark_ns")),
    ("sweep", |r| r.counter("total_sweep_ns")),
    ("mutator", |r| r.wall_ns.saturating_sub(r.total_pause_ns)),
    ("rss", |r| r.max_rss_kb),
];

/// One compared figure: the median ratio and each side's median.
#[derive(Clone, Debug, PartialEq)]
pub struct Compared {
    /// The figure's name (see [`FIGURES`]).
    pub name: &'static str,
    /// Median over the pairs of B / A (None when A's figure was 0 in
    /// every pair).
    pub ratio: Option<f64>,
    /// A's median.
    pub a: f64,
    /// B's median.
    pub b: f64,
}

/// Medians of the per-pair ratios of every figure in [`FIGURES`].
pub fn compare(pairs: &[(RunResult, RunResult)]) -> Vec<Compared> {
    FIGURES
        .iter()
        .map(|&(name, get)| {
            let ratios: Vec<f64> = pairs
                .iter()
                .filter(|(a, _)| get(a) > 0)
                .map(|(a, b)| get(b) as f64 / get(a) as f64)
                .collect();
            let side = |pick: fn(&(RunResult, RunResult)) -> &RunResult| {
                median(
                    &pairs
                        .iter()
                        .map(|p| get(pick(p)) as f64)
                        .collect::<Vec<_>>(),
                )
                .unwrap_or(0.0)
            };
            Compared {
                name,
                ratio: median(&ratios),
                a: side(|p| &p.0),
                b: side(|p| &p.1),
            }
        })
        .collect()
}

/// The table `ab` prints.
pub fn render(workload: &str, source: &str, pairs: usize, rows: &[Compared]) -> String {
    let mut out = format!(
        "{workload} under {source}, {pairs} alternating pairs; B/A is the median of the per-pair ratios\n\n"
    );
    out += &format!(
        "{:<8} {:>8} {:>12} {:>12}\n",
        "figure", "B/A", "A median", "B median"
    );
    for c in rows {
        let (unit, scale) = if c.name == "rss" {
            ("MiB", 1024.0)
        } else {
            ("ms", 1e6)
        };
        let ratio = c.ratio.map_or("-".to_string(), |r| format!("{r:.3}"));
        out += &format!(
            "{:<8} {:>8} {:>9.1} {unit:<3}{:>9.1} {unit}\n",
            c.name,
            ratio,
            c.a / scale,
            c.b / scale
        );
    }
    out
}

/// What `ab` is asked to do.
#[derive(Clone, Debug)]
pub struct AbPlan {
    /// The reference worker.
    pub a: PathBuf,
    /// The worker compared against it.
    pub b: PathBuf,
    /// The workload (one that runs on a heap).
    pub workload: Workload,
    /// Its size.
    pub size: Size,
    /// The dirty source both workers use.
    pub source: String,
    /// Alternating pairs of runs.
    pub pairs: usize,
    /// Workload knobs.
    pub knobs: Knobs,
    /// Kill a run that takes longer.
    pub timeout: Duration,
}

impl AbPlan {
    /// Check the arguments of `oohgc-bench ab`; errors name the argument
    /// and what it allows.
    pub fn new(args: AbArgs) -> Result<AbPlan, String> {
        for (which, path) in [("A", &args.a), ("B", &args.b)] {
            if !path.is_file() {
                return Err(format!(
                    "worker {which} {}: no such file (give two builds of {})",
                    path.display(),
                    runner::GC_WORKER
                ));
            }
        }
        let workload = Workload::from_name(&args.workload)?;
        if !workload.uses_heap() {
            return Err(format!(
                "--workload {}: ab compares collectors, and this workload runs on dirty sources directly",
                workload.name()
            ));
        }
        let source = parse_list(&args.source, config::source_names(), "dirty source")?;
        let [source] = source.as_slice() else {
            return Err("--source: give one dirty source".into());
        };
        if args.pairs == 0 {
            return Err("--pairs 0: allowed values are 1 or more".into());
        }
        Ok(AbPlan {
            a: args.a,
            b: args.b,
            workload,
            size: args.size,
            source: source.clone(),
            pairs: args.pairs,
            knobs: args.knobs,
            timeout: Duration::from_secs(args.timeout),
        })
    }
}

/// Run the pairs; `progress` is called after each.
pub fn execute(
    plan: &AbPlan,
    mut progress: impl FnMut(usize),
) -> Result<Vec<(RunResult, RunResult)>, String> {
    let config = RunConfig::from_label(&format!("oohgc/{}", plan.source))?;
    let run = |worker: &Path| {
        // An `oohgc/<source>` configuration runs `gc_worker`; `runner` is
        // never used for it.
        let bins = Binaries {
            runner: worker.to_path_buf(),
            gc_worker: worker.to_path_buf(),
        };
        let cmd = runner::worker_command(&bins, plan.workload, &config, plan.size, &plan.knobs);
        runner::run_worker(cmd, plan.timeout).map_err(|e| format!("{}: {e}", worker.display()))
    };
    let mut pairs = Vec::with_capacity(plan.pairs);
    for i in 0..plan.pairs {
        let (a, b) = if i % 2 == 0 {
            let a = run(&plan.a)?;
            (a, run(&plan.b)?)
        } else {
            let b = run(&plan.b)?;
            (run(&plan.a)?, b)
        };
        if a.checksum != b.checksum {
            return Err(format!(
                "the two workers computed different checksums ({:x} vs {:x}): one of them is wrong",
                a.checksum, b.checksum
            ));
        }
        pairs.push((a, b));
        progress(i + 1);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(wall_ms: u64, pause_ms: u64, mark_ms: u64) -> RunResult {
        RunResult {
            wall_ns: wall_ms * 1_000_000,
            total_pause_ns: pause_ms * 1_000_000,
            counters: vec![("total_mark_ns".into(), mark_ms * 1_000_000)],
            max_rss_kb: 1024,
            ..RunResult::default()
        }
    }

    #[test]
    fn ratios_are_medians_over_pairs_not_ratios_of_medians() {
        // The machine slows down between pairs; B is 10% faster in each.
        let pairs = vec![
            (result(100, 40, 30), result(90, 36, 27)),
            (result(200, 80, 60), result(180, 72, 54)),
            (result(300, 120, 90), result(270, 108, 81)),
        ];
        let rows = compare(&pairs);
        let get = |n: &str| rows.iter().find(|c| c.name == n).unwrap().clone();
        assert!((get("wall").ratio.unwrap() - 0.9).abs() < 1e-9);
        assert!((get("mark").ratio.unwrap() - 0.9).abs() < 1e-9);
        assert!((get("mutator").ratio.unwrap() - 0.9).abs() < 1e-9);
        assert_eq!(get("wall").a, 200e6);
        assert_eq!(get("wall").b, 180e6);
        // No sweep counter: no ratio, not a division by zero.
        assert_eq!(get("sweep").ratio, None);
        assert!((get("rss").ratio.unwrap() - 1.0).abs() < 1e-9);
        let table = render("gcbench", "none", 3, &rows);
        assert!(table.contains("wall        0.900"), "{table}");
        assert!(table.contains("sweep           -"), "{table}");
    }

    /// A stand-in worker: a script that prints `result`'s line and
    /// appends its name to `log` (so the test sees the order of runs).
    fn fake_worker(dir: &Path, name: &str, result: &RunResult, log: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        let script = format!(
            "#!/bin/sh\necho {name} >> '{}'\necho '{}'\n",
            log.display(),
            result.to_line()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn runs_alternate_and_disagreeing_checksums_are_an_error() {
        let dir = std::env::temp_dir().join(format!("oohgc-ab-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("order");
        let mut slow = result(100, 40, 30);
        slow.checksum = 7;
        let mut fast = result(80, 20, 15);
        fast.checksum = 7;
        let a = fake_worker(&dir, "a", &slow, &log);
        let b = fake_worker(&dir, "b", &fast, &log);
        let plan = |a: &Path, b: &Path| {
            AbPlan::new(AbArgs {
                a: a.to_path_buf(),
                b: b.to_path_buf(),
                workload: "gcbench".into(),
                size: Size::Tiny,
                source: "none".into(),
                pairs: 4,
                timeout: 10,
                knobs: Knobs::default(),
            })
            .unwrap()
        };
        let mut seen = Vec::new();
        let pairs = execute(&plan(&a, &b), |n| seen.push(n)).unwrap();
        assert_eq!(seen, [1, 2, 3, 4]);
        let order = std::fs::read_to_string(&log).unwrap().replace('\n', "");
        assert_eq!(order, "abbaabba");
        let rows = compare(&pairs);
        assert!((rows[0].ratio.unwrap() - 0.8).abs() < 1e-9, "{rows:?}");

        let mut other = fast.clone();
        other.checksum = 8;
        let c = fake_worker(&dir, "c", &other, &log);
        let e = execute(&plan(&a, &c), |_| {}).unwrap_err();
        assert!(e.contains("different checksums"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_arguments_name_what_is_allowed() {
        let exe = std::env::current_exe().unwrap();
        let plan = |a: &Path, workload: &str, source: &str, pairs: usize| {
            AbPlan::new(AbArgs {
                a: a.to_path_buf(),
                b: exe.clone(),
                workload: workload.into(),
                size: Size::Tiny,
                source: source.into(),
                pairs,
                timeout: 5,
                knobs: Knobs::default(),
            })
        };
        let e = plan(Path::new("/nonexistent/worker"), "gcbench", "none", 3).unwrap_err();
        assert!(
            e.contains("worker A /nonexistent/worker: no such file"),
            "{e}"
        );
        let e = plan(&exe, "no-such-workload", "none", 3).unwrap_err();
        assert!(e.contains("gcbench"), "{e}");
        let e = plan(&exe, "array-writer", "none", 3).unwrap_err();
        assert!(e.contains("dirty sources directly"), "{e}");
        let e = plan(&exe, "gcbench", "epml,none", 3).unwrap_err();
        assert!(e.contains("one dirty source"), "{e}");
        let e = plan(&exe, "gcbench", "nosuch", 3).unwrap_err();
        assert!(e.contains("the dirty sources are"), "{e}");
        let e = plan(&exe, "gcbench", "none", 0).unwrap_err();
        assert!(e.contains("--pairs 0"), "{e}");
        assert!(plan(&exe, "gcbench", "none", 3).is_ok());
    }
}
