//! One `oohgc-peer run`: for each suite, fetch and prepare it, build it
//! plain and run that once (the baseline), build it with oohgc and run
//! every test executable under every dirty source, then judge each run.
//!
//! A run is a failure when the process crashed, hung past the limit, exited
//! non-zero with no failed test to show for it, or had a failed test that
//! neither failed in the baseline nor is in the suite's expected list; and
//! under oohgc also when no exit report came back from the test process
//! (the allocator was not in it) or a report names another source. A suite
//! × source with no collection cycle in any of its processes fails too:
//! with `OOHGC_INITIAL_HEAP=64K` every real suite collects.

use crate::cargo::{cargo, network_failure, test_executables, TestExe};
use crate::exec::{self, End, RunOutput};
use crate::libtest::Counts;
use crate::prepare::{self, PrepareError, Prepared, FEATURE};
use crate::suites::{Set, Suite};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment of every oohgc run besides `OOHGC_DIRTY`.
pub const OOHGC_ENV: &[(&str, &str)] = &[("OOHGC_INITIAL_HEAP", "64K"), ("OOHGC_VERIFY", "1")];

/// Where things go and how hard to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Dirty sources to run under.
    pub sources: Vec<String>,
    /// Test executables run at once.
    pub jobs: usize,
    /// `target/peer`: fetch scratch packages, prepared copies, logs.
    pub work: PathBuf,
    /// `CARGO_TARGET_DIR` of the builds.
    pub build_dir: PathBuf,
    /// The `oohgc-peer-hook` crate.
    pub hook: PathBuf,
    /// CI (a suite's `ci_tests`) or full.
    pub set: Set,
    /// Overrides every suite's per-executable limit.
    pub timeout: Option<Duration>,
}

/// Something that makes the run fail.
#[derive(Clone, Debug)]
pub struct Problem {
    /// `lib`, `test:<name>`...
    pub target: String,
    /// What happened, with the messages that tell why.
    pub message: String,
}

/// One suite under one configuration (the baseline or a source).
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// libtest's counts, summed over the executables.
    pub counts: Counts,
    /// Collection cycles, summed over every reporting process.
    pub cycles: u64,
    /// Processes that reported (test executables and what they started).
    pub processes: usize,
    /// Failures that count.
    pub problems: Vec<Problem>,
    /// Failed tests that do not count, with why.
    pub excused: Vec<String>,
    /// Distinct `oohgc:` lines seen on stderr.
    pub oohgc_lines: BTreeSet<String>,
    /// Wall time of the executables, added up.
    pub run_time: Duration,
}

/// How a suite went.
#[derive(Debug)]
pub enum SuiteStatus {
    /// crates.io could not be reached: skipped, with the note.
    Skipped(String),
    /// Fetching, preparing or building failed.
    Broken(String),
    /// It ran.
    Ran,
}

/// A suite's results.
#[derive(Debug)]
pub struct SuiteResult {
    /// The suite.
    pub suite: &'static Suite,
    /// Ran, skipped or broken.
    pub status: SuiteStatus,
    /// Notes (targets left out, build times).
    pub notes: Vec<String>,
    /// The plain run.
    pub baseline: Cell,
    /// Per source, in `Options::sources` order.
    pub cells: Vec<(String, Cell)>,
}

impl SuiteResult {
    /// Whether anything in it counts as a failure.
    pub fn failed(&self) -> bool {
        matches!(self.status, SuiteStatus::Broken(_))
            || self.cells.iter().any(|(_, c)| !c.problems.is_empty())
    }
}

/// Runs one suite.
pub fn run_suite(suite: &'static Suite, o: &Options) -> SuiteResult {
    let mut r = SuiteResult {
        suite,
        status: SuiteStatus::Ran,
        notes: Vec::new(),
        baseline: Cell::default(),
        cells: Vec::new(),
    };
    match run_suite_inner(suite, o, &mut r) {
        Ok(()) => {}
        Err(PrepareError::Network(n)) => r.status = SuiteStatus::Skipped(n),
        Err(PrepareError::Failed(m)) => r.status = SuiteStatus::Broken(m),
    }
    r
}

fn run_suite_inner(
    suite: &'static Suite,
    o: &Options,
    r: &mut SuiteResult,
) -> Result<(), PrepareError> {
    let t = Instant::now();
    let src = prepare::fetch(suite, &o.work)?;
    let prepared = prepare::prepare(suite, &src, &o.work, &o.hook)?;
    for (rel, why) in &prepared.skipped {
        r.notes.push(format!("{rel}: {why}"));
    }
    let logs = o.work.join("logs").join(suite.dir_name());
    std::fs::create_dir_all(&logs).map_err(|e| PrepareError::Failed(format!("logs: {e}")))?;

    let plain = build(suite, &prepared, false, o, &logs)?;
    let plain_built = t.elapsed();
    let plain_runs = run_all(suite, &prepared, &plain, &[None], o, &logs);
    let mut baseline_failures: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (exe, _, out) in &plain_runs {
        baseline_failures
            .entry(exe.target.clone())
            .or_default()
            .extend(out.parsed.failed.keys().cloned());
    }
    r.baseline = judge(suite, None, &plain_runs, &BTreeMap::new());

    let t2 = Instant::now();
    let with = build(suite, &prepared, true, o, &logs)?;
    let with_built = t2.elapsed();
    let skipped: Vec<PathBuf> = prepared
        .skipped
        .iter()
        .map(|(rel, _)| prepared.dir.join(rel))
        .collect();
    let runnable: Vec<TestExe> = with
        .into_iter()
        .filter(|e| !skipped.contains(&e.src_path))
        .collect();
    let sources: Vec<Option<&str>> = o.sources.iter().map(|s| Some(s.as_str())).collect();
    let runs = run_all(suite, &prepared, &runnable, &sources, o, &logs);
    for s in &o.sources {
        let these: Vec<_> = runs
            .iter()
            .filter(|(_, src, _)| src.as_deref() == Some(s.as_str()))
            .cloned()
            .collect();
        r.cells
            .push((s.clone(), judge(suite, Some(s), &these, &baseline_failures)));
    }
    r.notes.push(format!(
        "{} test executables; built plain in {:.0} s (with fetching), with oohgc in {:.0} s; logs in {}",
        runnable.len(),
        plain_built.as_secs_f64(),
        with_built.as_secs_f64(),
        logs.display()
    ));
    Ok(())
}

fn build(
    suite: &Suite,
    p: &Prepared,
    with_oohgc: bool,
    o: &Options,
    logs: &Path,
) -> Result<Vec<TestExe>, PrepareError> {
    let mut features: Vec<&str> = suite.features.to_vec();
    if with_oohgc {
        features.push(FEATURE);
    }
    let features = features.join(",");
    let mut args = vec![
        "test",
        "--no-run",
        "--profile",
        "peer",
        "--message-format=json-render-diagnostics",
    ];
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    let tests = suite.tests_in(o.set);
    if tests.is_empty() {
        args.push("--tests");
    } else {
        for t in tests {
            args.extend(["--test", t]);
        }
    }
    let out = cargo(&p.dir, &args, &[("CARGO_TARGET_DIR", &o.build_dir)])
        .map_err(|e| PrepareError::Failed(format!("cargo test --no-run: {e}")))?;
    let which = if with_oohgc { "oohgc" } else { "plain" };
    let log = logs.join(format!("build-{which}.log"));
    let _ = std::fs::write(&log, &out.stderr);
    if !out.success {
        let tail: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = tail[tail.len().saturating_sub(15)..].join("\n");
        return Err(if network_failure(&out.stderr) {
            PrepareError::Network(tail.lines().last().unwrap_or("").to_string())
        } else {
            PrepareError::Failed(format!(
                "the {which} build failed (log {}):\n{tail}",
                log.display()
            ))
        });
    }
    let exes = test_executables(&out.stdout);
    if exes.is_empty() {
        return Err(PrepareError::Failed(format!(
            "the {which} build produced no test executable"
        )));
    }
    Ok(exes)
}

type Run = (TestExe, Option<String>, std::sync::Arc<RunOutput>);

fn run_all(
    suite: &Suite,
    p: &Prepared,
    exes: &[TestExe],
    sources: &[Option<&str>],
    o: &Options,
    logs: &Path,
) -> Vec<Run> {
    let jobs: Vec<(TestExe, Option<String>)> = sources
        .iter()
        .flat_map(|s| exes.iter().map(move |e| (e.clone(), s.map(str::to_string))))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Run)>> = Mutex::new(Vec::new());
    let limit = o.timeout.unwrap_or(Duration::from_secs(suite.timeout_s));
    std::thread::scope(|scope| {
        for _ in 0..o.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((exe, source)) = jobs.get(i) else {
                    break;
                };
                let mut env: Vec<(String, String)> = vec![
                    ("CARGO_MANIFEST_DIR".into(), p.dir.display().to_string()),
                    ("CARGO_PKG_NAME".into(), suite.name.into()),
                    ("CARGO_PKG_VERSION".into(), suite.version.into()),
                    ("CARGO_CRATE_NAME".into(), suite.name.replace('-', "_")),
                ];
                if let Some(s) = source {
                    env.push(("OOHGC_DIRTY".into(), s.clone()));
                    env.extend(
                        OOHGC_ENV
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string())),
                    );
                }
                let tag = format!(
                    "{}.{}",
                    source.as_deref().unwrap_or("baseline"),
                    exe.target.replace(':', "-")
                );
                eprintln!(
                    "oohgc-peer: {} {} {}",
                    suite.name,
                    source.as_deref().unwrap_or("baseline"),
                    exe.target
                );
                // Outside the repository: a scratch directory inside a git
                // work tree changes what ripgrep and ignore see.
                let tmp = std::env::temp_dir()
                    .join(format!("oohgc-peer-{}", std::process::id()))
                    .join(suite.dir_name())
                    .join(&tag);
                let mut out =
                    exec::run(&exe.path, &[], &p.dir, &env, &logs.join(&tag), &tmp, limit)
                        .unwrap_or_else(|e| RunOutput {
                            end: End::Exited(-1),
                            parsed: Default::default(),
                            oohgc_lines: Vec::new(),
                            stderr_tail: format!("could not run {}: {e}", exe.path.display()),
                            reports: Vec::new(),
                            elapsed: Duration::ZERO,
                            log: PathBuf::new(),
                        });
                if let End::Signal(_) = out.end {
                    // libtest keeps a test's output (and the panic message
                    // of a thread it started) until the test ends: a crash
                    // loses it. Once more without capturing, for the message.
                    let again = exec::run(
                        &exe.path,
                        &["--nocapture"],
                        &p.dir,
                        &env,
                        &logs.join(format!("{tag}.nocapture")),
                        &tmp,
                        limit,
                    );
                    if let Ok(again) = again {
                        out.stderr_tail = format!(
                            "{}; again with --nocapture ({:?}): {}",
                            out.stderr_tail, again.end, again.stderr_tail
                        );
                    }
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, (exe.clone(), source.clone(), std::sync::Arc::new(out))));
            });
        }
    });
    let mut r = results.into_inner().unwrap_or_else(|p| p.into_inner());
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, run)| run).collect()
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Judges the runs of one configuration (`source` `None`: the baseline).
fn judge(
    suite: &Suite,
    source: Option<&str>,
    runs: &[Run],
    baseline_failures: &BTreeMap<String, BTreeSet<String>>,
) -> Cell {
    let mut c = Cell::default();
    for (exe, _, out) in runs {
        let target = exe.target.clone();
        let problem = |message: String| Problem {
            target: target.clone(),
            message,
        };
        let mut problems = Vec::new();
        if let Some(s) = out.parsed.summary {
            c.counts += s;
        } else if out.end == End::Exited(0) {
            // A test without libtest (harness = false) passing.
            c.counts.passed += 1;
        }
        c.run_time += out.elapsed;
        c.oohgc_lines.extend(out.oohgc_lines.iter().cloned());
        for (test, msg) in &out.parsed.failed {
            let in_baseline = baseline_failures
                .get(&target)
                .is_some_and(|f| f.contains(test));
            let expected = source.and_then(|s| suite.expected_failure(&target, test, s));
            if source.is_some() && in_baseline {
                c.excused
                    .push(format!("{target} {test}: fails without oohgc too"));
            } else if let Some(e) = expected {
                c.excused
                    .push(format!("{target} {test}: expected ({})", e.reason));
            } else {
                problems.push(problem(format!("{test} FAILED: {}", first_lines(msg, 6))));
            }
        }
        let oohgc_said = if out.oohgc_lines.is_empty() {
            String::new()
        } else {
            format!("; oohgc said: {}", out.oohgc_lines.join(" | "))
        };
        match out.end {
            End::Timeout => problems.push(problem(format!(
                "HANG: still running after {:.0} s, killed (tests not finished: {}){oohgc_said}",
                out.elapsed.as_secs_f64(),
                if out.parsed.still_running.is_empty() {
                    "unknown".to_string()
                } else {
                    out.parsed.still_running.join(", ")
                }
            ))),
            End::Signal(sig) => problems.push(problem(format!(
                "CRASH: killed by signal {sig} ({}){oohgc_said}; stderr: {}",
                signal_name(sig),
                first_lines(&out.stderr_tail, 8)
            ))),
            End::Exited(0) => {}
            End::Exited(code) => {
                if out.parsed.failed.is_empty() {
                    problems.push(problem(format!(
                        "exit status {code} without a failed test{oohgc_said}; stderr: {}",
                        first_lines(&out.stderr_tail, 8)
                    )));
                } else if code != 101 {
                    problems.push(problem(format!("exit status {code}{oohgc_said}")));
                }
            }
        }
        let exe_path = exe.path.display().to_string();
        match source {
            None => {
                if !out.reports.is_empty() {
                    problems.push(problem(format!(
                        "the plain build ran oohgc code in {} process(es) (a stale binary?)",
                        out.reports.len()
                    )));
                }
            }
            Some(s) => {
                c.processes += out.reports.len();
                c.cycles += out.reports.iter().map(|r| r.cycles).sum::<u64>();
                let own = out.reports.iter().any(|r| r.exe == exe_path);
                if !own && matches!(out.end, End::Exited(_)) {
                    problems.push(problem(
                        "no exit report from the test process: the oohgc allocator is not in it"
                            .into(),
                    ));
                }
                for r in &out.reports {
                    if r.source != s && r.source != "-" {
                        problems.push(problem(format!(
                            "{} ran under {} instead of {s}",
                            r.exe, r.source
                        )));
                    }
                }
            }
        }
        c.problems.extend(problems);
    }
    if source.is_some() && c.cycles == 0 && !runs.is_empty() {
        c.problems.push(Problem {
            target: "(all)".into(),
            message: "no collection cycle in any process: OOHGC_INITIAL_HEAP was not honoured or the allocator is not oohgc's".into(),
        });
    }
    c
}

/// A signal's name.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGFPE => "SIGFPE",
        libc::SIGPWR => "SIGPWR",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGTRAP => "SIGTRAP",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Report;
    use crate::libtest;
    use crate::suites::{Expected, SUITES};
    use std::sync::Arc;

    const EXPECTED: &[Expected] = &[Expected {
        target: "test:t",
        test: "malloc_specific",
        sources: &[],
        reason: "asserts on malloc's behaviour",
    }];

    fn run(stdout: &str, end: End, reports: Vec<Report>) -> Run {
        let exe = TestExe {
            target: "test:t".into(),
            src_path: PathBuf::from("/p/tests/t.rs"),
            path: PathBuf::from("/b/t-1"),
        };
        let out = RunOutput {
            end,
            parsed: libtest::parse(stdout),
            oohgc_lines: Vec::new(),
            stderr_tail: String::new(),
            reports,
            elapsed: Duration::from_millis(5),
            log: PathBuf::new(),
        };
        (exe, Some("uffd".into()), Arc::new(out))
    }

    fn report(cycles: u64, source: &str) -> Report {
        Report {
            cycles,
            concurrent: cycles,
            source: source.into(),
            exe: "/b/t-1".into(),
        }
    }

    const FAILED_TWO: &str = "test a ... FAILED\ntest malloc_specific ... FAILED\ntest b ... ok\n\
        test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0s\n";

    #[test]
    fn failures_in_the_baseline_or_the_expected_list_do_not_count() {
        let suite = Suite {
            expected: EXPECTED,
            ..SUITES[0]
        };
        let runs = vec![run(FAILED_TWO, End::Exited(101), vec![report(3, "uffd")])];
        // `a` is oohgc's until the baseline shows it failing too.
        let c = judge(&suite, Some("uffd"), &runs, &BTreeMap::new());
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
        assert!(c.problems[0].message.starts_with("a FAILED"));
        assert_eq!(c.excused.len(), 1);
        assert_eq!((c.counts.passed, c.counts.failed, c.cycles), (1, 2, 3));
        let baseline = BTreeMap::from([("test:t".to_string(), BTreeSet::from(["a".to_string()]))]);
        let c = judge(&suite, Some("uffd"), &runs, &baseline);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.excused.len(), 2);
    }

    #[test]
    fn crashes_hangs_missing_reports_and_no_cycles_count() {
        let suite = SUITES[0];
        let ok = "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0s\n";
        let none = BTreeMap::new();
        let good = judge(
            &suite,
            Some("uffd"),
            &[run(ok, End::Exited(0), vec![report(2, "uffd")])],
            &none,
        );
        assert!(good.problems.is_empty(), "{:?}", good.problems);

        let crash = judge(
            &suite,
            Some("uffd"),
            &[run("", End::Signal(libc::SIGSEGV), vec![])],
            &none,
        );
        assert!(crash.problems.iter().any(|p| p
            .message
            .starts_with("CRASH: killed by signal 11 (SIGSEGV)")));
        let hang = judge(
            &suite,
            Some("uffd"),
            &[run("", End::Timeout, vec![report(1, "uffd")])],
            &none,
        );
        assert!(hang.problems[0].message.starts_with("HANG"));
        let status = judge(
            &suite,
            Some("uffd"),
            &[run(ok, End::Exited(3), vec![report(1, "uffd")])],
            &none,
        );
        assert!(status.problems[0]
            .message
            .starts_with("exit status 3 without a failed test"));

        let no_report = judge(
            &suite,
            Some("uffd"),
            &[run(ok, End::Exited(0), vec![])],
            &none,
        );
        assert!(no_report
            .problems
            .iter()
            .any(|p| p.message.contains("allocator is not in it")));
        assert!(no_report
            .problems
            .iter()
            .any(|p| p.message.starts_with("no collection cycle")));
        let wrong = judge(
            &suite,
            Some("uffd"),
            &[run(ok, End::Exited(0), vec![report(1, "none")])],
            &none,
        );
        assert!(wrong.problems[0]
            .message
            .ends_with("ran under none instead of uffd"));

        // The plain build must not contain oohgc.
        let plain = judge(
            &suite,
            None,
            &[run(ok, End::Exited(0), vec![report(0, "-")])],
            &none,
        );
        assert!(plain.problems[0]
            .message
            .starts_with("the plain build ran oohgc code"));
    }
}
