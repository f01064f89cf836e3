//! `oohgc-bench checkpoint`: incremental checkpointing of running
//! workloads with `oohgc-checkpoint`, per dirty source — the shape of the
//! OoH paper's CRIU evaluation (frozen time, memory-dump time, pages
//! scanned and written, per tracker) plus the workload's slowdown.
//!
//! Every (workload, source) run is its own process (the hidden
//! `checkpoint-worker`, module [`worker`]); runs of the configurations
//! alternate, and [`summary`] takes medians and ratios against `off` (the
//! same workload, no checkpointer) measured in the same invocation.
//! Workloads: [`kv`] (tkrzw-like store; `kv-paced` writes a set fraction
//! of its pages per interval, `kv` updates flat out), and the Phoenix
//! kernels on [`arena::ArenaHeap`] inside the tracked [`region`].

pub mod arena;
pub mod kv;
pub mod region;
pub mod summary;
pub mod worker;

use crate::workloads::{Size, Workload};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Workload and dump parameters shared by the runner and its workers.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// Size of the key-value store, MiB (64 ..= 1024).
    #[arg(long, default_value_t = 1024)]
    pub kv_mib: u64,
    /// kv-paced: percent of the store's pages written per interval (0 < p <= 100).
    #[arg(long, default_value_t = 1.0)]
    pub write_pct: f64,
    /// Milliseconds between dumps.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// kv-paced: intervals (one dump each, after the first, full one).
    #[arg(long, default_value_t = 10)]
    pub dumps: u64,
    /// kv: seconds of updates, as fast as possible.
    #[arg(long, default_value_t = 3.0)]
    pub kv_secs: f64,
    /// Phoenix kernels: workload size.
    #[arg(long, value_enum, default_value = "M")]
    pub size: Size,
    /// Phoenix kernels: size of the tracked arena they allocate in, MiB.
    #[arg(long, default_value_t = 512)]
    pub arena_mib: u64,
}

impl Params {
    /// Check every parameter; the error names the flag and what is allowed.
    pub fn check(&self) -> Result<(), String> {
        if !(64..=1024).contains(&self.kv_mib) {
            return Err(format!(
                "--kv-mib {} is out of range; allowed: 64 ..= 1024",
                self.kv_mib
            ));
        }
        if !(self.write_pct > 0.0 && self.write_pct <= 100.0) {
            return Err(format!(
                "--write-pct {} is out of range; allowed: more than 0, at most 100",
                self.write_pct
            ));
        }
        if self.interval_ms == 0 {
            return Err("--interval-ms 0: allowed values are 1 or more".into());
        }
        if !(self.kv_secs > 0.0 && self.kv_secs <= 600.0) {
            return Err(format!(
                "--kv-secs {} is out of range; allowed: more than 0, at most 600",
                self.kv_secs
            ));
        }
        if self.dumps == 0 {
            return Err("--dumps 0: allowed values are 1 or more".into());
        }
        if self.arena_mib == 0 || self.arena_mib > 16 * 1024 {
            return Err(format!(
                "--arena-mib {} is out of range; allowed: 1 ..= 16384",
                self.arena_mib
            ));
        }
        Ok(())
    }
}

/// Default sources: the paper's trackers and the kernel's, then `none`
/// (a full dump every time: the baseline a checkpointer without tracking
/// is held to).
pub const DEFAULT_SOURCES: &str = "epml,spml,pagemap-scan,uffd,mprotect,soft-dirty,none";

/// Arguments of `checkpoint`.
#[derive(clap::Args, Debug)]
pub struct CheckpointArgs {
    /// Workloads, comma-separated: kv-paced, kv, and Phoenix kernels
    /// (histogram, kmeans, matrix-multiply, pca, string-match, word-count).
    #[arg(long, default_value = "kv-paced,kv,histogram,matrix-multiply")]
    pub workloads: String,
    /// Dirty sources, comma-separated (`off`, no checkpointing, is always run).
    #[arg(long, default_value = DEFAULT_SOURCES)]
    pub sources: String,
    /// Sources also run tracking alone (`track:NAME`: harvest every
    /// interval, no dump): the slowdown from tracking itself.
    #[arg(long, default_value = "epml,pagemap-scan")]
    pub track_only: String,
    /// Runs per configuration (medians are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Directory for the images (default: /dev/shm when present, so that
    /// the disk of a shared machine does not time the writes).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Kill a worker that runs longer than this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Write the tables as Markdown.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write every run as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Workload and dump parameters.
    #[command(flatten)]
    pub params: Params,
}

fn parse_workloads(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for w in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ok = w == "kv" || w == "kv-paced" || Workload::PHOENIX.iter().any(|p| p.name() == w);
        if !ok {
            return Err(format!(
                "unknown checkpoint workload {w:?}; allowed: kv-paced, kv, {}",
                Workload::PHOENIX
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push(w.to_string());
    }
    if out.is_empty() {
        return Err("--workloads is empty; name at least one".into());
    }
    Ok(out)
}

fn parse_sources(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !oohgc_checkpoint::usable_sources().any(|n| n == s) {
            return Err(format!(
                "unknown source {s:?} for checkpointing; allowed: {}",
                oohgc_checkpoint::usable_sources()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push(s.to_string());
    }
    out.push("off".into());
    Ok(out)
}

/// Run one worker process; its result line, or why it gave none.
fn spawn_worker(
    workload: &str,
    source: &str,
    dir: &std::path::Path,
    params: &Params,
    timeout: Duration,
) -> worker::RunResult {
    let failed = |e: String| worker::RunResult {
        workload: workload.into(),
        source: source.into(),
        error: Some(e),
        ..Default::default()
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(format!("cannot find this executable: {e}")),
    };
    let mut cmd = Command::new(exe);
    cmd.arg("checkpoint-worker")
        .args(["--workload", workload, "--source", source])
        .arg("--dir")
        .arg(dir)
        .args(["--kv-mib", &params.kv_mib.to_string()])
        .args(["--write-pct", &params.write_pct.to_string()])
        .args(["--interval-ms", &params.interval_ms.to_string()])
        .args(["--dumps", &params.dumps.to_string()])
        .args(["--kv-secs", &params.kv_secs.to_string()])
        .args(["--size", params.size.name()])
        .args(["--arena-mib", &params.arena_mib.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start the worker: {e}")),
    };
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return failed(format!("worker: {e}")),
        Err(_) => {
            // SAFETY: kill has no memory preconditions; `pid` is our child.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return failed(format!("worker killed after {timeout:?}"));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().rev().find(|l| l.starts_with('{')) {
        Some(line) => serde_json::from_str(line)
            .unwrap_or_else(|e| failed(format!("unreadable worker line: {e}"))),
        None => failed(format!(
            "worker exited with {} and no result: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The `checkpoint` subcommand.
pub fn run(args: CheckpointArgs) -> Result<(), String> {
    args.params.check()?;
    if args.runs == 0 {
        return Err("--runs 0: allowed values are 1 or more".into());
    }
    let workloads = parse_workloads(&args.workloads)?;
    let mut sources = parse_sources(&args.sources)?;
    let off = sources.pop();
    for t in parse_sources(&args.track_only)? {
        if t != "off" {
            sources.push(format!("track:{t}"));
        }
    }
    sources.extend(off);
    let base = args.dir.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let dir = base.join(format!("oohgc-checkpoint-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let timeout = Duration::from_secs(args.timeout);
    let total = workloads.len() * sources.len() * args.runs;
    let mut results = Vec::with_capacity(total);
    let mut n = 0;
    for run in 0..args.runs {
        for w in &workloads {
            for s in &sources {
                n += 1;
                eprintln!("[{n}/{total}] {w} / {s} (run {})", run + 1);
                let r = spawn_worker(w, s, &dir, &args.params, timeout);
                if let Some(e) = &r.error {
                    eprintln!("  {w} / {s}: {e}");
                }
                results.push(r);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let report = summary::Report::new(
        &args.params,
        args.runs,
        &base,
        &workloads,
        &sources,
        results,
    );
    print!("{}", report.render_text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, report.render_markdown())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.runs)
            .map_err(|e| format!("cannot encode the runs: {e}"))?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod default_sources_tests {
    /// The CLI's default list (a constant clap needs) is every source a
    /// checkpoint can use, as the source table says.
    #[test]
    fn default_sources_are_the_usable_ones() {
        let usable: Vec<&str> = oohgc_checkpoint::usable_sources().collect();
        assert_eq!(super::DEFAULT_SOURCES, usable.join(","));
    }
}
