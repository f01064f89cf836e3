//! `oohgc-peer run [--set ci|full] [--crates a,b] [--sources x,y] [--jobs N]`:
//! real crates' own test suites under every dirty source; the exit status
//! is non-zero on any failure that counts (see `runner`).

use clap::{Parser, Subcommand, ValueEnum};
use oohgc_peer::runner::{self, Options, SuiteStatus};
use oohgc_peer::suites::{self, Set};
use oohgc_peer::{available_sources, report};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Real crates' own test suites under oohgc")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum SetArg {
    /// The fast suites CI runs.
    Ci,
    /// Every pinned suite (ripgrep and tokio too).
    Full,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fetch, build and run the suites; print the crate × source table.
    Run {
        /// Which suites (ignored when --crates names some).
        #[arg(long, value_enum, default_value = "ci")]
        set: SetArg,
        /// Pinned suites by name, comma-separated.
        #[arg(long, value_delimiter = ',')]
        crates: Vec<String>,
        /// Dirty sources, comma-separated (default: every available one).
        #[arg(long, value_delimiter = ',')]
        sources: Vec<String>,
        /// Test executables run at once.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Seconds one test executable may run (default: the suite's).
        #[arg(long)]
        timeout: Option<u64>,
        /// Cargo target directory of the builds.
        #[arg(long)]
        build_dir: Option<PathBuf>,
    },
    /// List the pinned suites.
    List,
}

fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or(manifest.clone(), |p| p.to_path_buf())
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Cmd::List => {
            for s in suites::SUITES {
                println!("{} {} [{:?}]: {}", s.name, s.version, s.set, s.exercises);
            }
        }
        Cmd::Run {
            set,
            crates,
            sources,
            jobs,
            timeout,
            build_dir,
        } => {
            let set = match set {
                SetArg::Ci => Set::Ci,
                SetArg::Full => Set::Full,
            };
            let chosen = suites::select(set, &crates).unwrap_or_else(|e| fail(&e));
            let (sources, left_out) = available_sources(&sources).unwrap_or_else(|e| fail(&e));
            for l in &left_out {
                println!("oohgc-peer: source not available here, left out: {l}");
            }
            if sources.is_empty() {
                fail("no dirty source available");
            }
            let root = repo_root();
            let o = Options {
                sources: sources.clone(),
                jobs,
                set,
                work: root.join("target").join("peer"),
                build_dir: build_dir.unwrap_or_else(|| root.join("target").join("peer-build")),
                hook: root.join("peer").join("hook"),
                timeout: timeout.map(Duration::from_secs),
            };
            let start = Instant::now();
            let mut results = Vec::new();
            for s in chosen {
                println!("oohgc-peer: {} {} ...", s.name, s.version);
                let r = runner::run_suite(s, &o);
                if let SuiteStatus::Skipped(n) = &r.status {
                    // The others fail as fast; their results stay reported.
                    println!(
                        "oohgc-peer: crates.io could not be reached, {} skipped ({n})",
                        s.name
                    );
                }
                results.push(r);
            }
            // The runs' scratch directories are gone; their parents too.
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("oohgc-peer-{}", std::process::id())),
            );
            print!("{}", report::render(&results, &sources));
            let (passed, failed) = report::totals(&results);
            println!(
                "\noohgc-peer: {} suites x {} sources in {:.0} s; env OOHGC_DIRTY=<source> {}",
                results.len(),
                sources.len(),
                start.elapsed().as_secs_f64(),
                runner::OOHGC_ENV
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!("peer: {passed} passed, {failed} failed");
            if failed > 0 || results.iter().any(|r| r.failed()) {
                std::process::exit(1);
            }
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("oohgc-peer: {msg}");
    std::process::exit(2);
}
