//! Every workload's checksum is the same on malloc, bdwgc (when built in)
//! and oohgc, run through the real worker binaries at the tiny size; and
//! array-writer's on several dirty sources.

use oohgc_bench::backends::bdwgc;
use oohgc_bench::result::RunResult;
use oohgc_bench::workloads::Workload;
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_oohgc-bench");

/// Run a worker command; panic with its stderr when it fails.
fn run(mut cmd: Command) -> RunResult {
    let out = cmd.output().expect("worker starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    RunResult::from_output(&stdout).expect("worker printed a result line")
}

fn runner_worker(workload: Workload, config: &str) -> RunResult {
    let mut cmd = Command::new(RUNNER);
    cmd.args([
        "worker",
        "--workload",
        workload.name(),
        "--size",
        "tiny",
        "--config",
        config,
    ]);
    run(cmd)
}

#[cfg(feature = "oohgc")]
fn gc_worker(workload: Workload, source: &str) -> RunResult {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oohgc-bench-gc"));
    // A small first budget so that even tiny runs collect, and the
    // collector's verifier re-marks after each concurrent cycle.
    cmd.env("OOHGC_DIRTY", source)
        .env("OOHGC_INITIAL_HEAP", "1M")
        .env("OOHGC_VERIFY", "1");
    let config = format!("oohgc/{source}");
    cmd.args([
        "--workload",
        workload.name(),
        "--size",
        "tiny",
        "--config",
        &config,
    ]);
    run(cmd)
}

#[test]
fn heap_workloads_agree_across_backends() {
    for &w in Workload::ALL.iter().filter(|w| w.uses_heap()) {
        let reference = runner_worker(w, "malloc");
        assert_eq!(reference.workload, w.name());
        assert!(reference.wall_ns > 0);
        let mut others = Vec::new();
        if bdwgc::available() {
            others.push(runner_worker(w, "bdwgc"));
        }
        #[cfg(feature = "oohgc")]
        for source in ["none", "epml"] {
            let r = gc_worker(w, source);
            if w == Workload::BinaryTrees {
                assert!(
                    r.collections > 0,
                    "binary-trees on oohgc/{source} never collected"
                );
            }
            others.push(r);
        }
        for other in others {
            assert_eq!(
                other.checksum, reference.checksum,
                "{w}: {} checksum {:x} differs from malloc's {:x}",
                other.config, other.checksum, reference.checksum
            );
        }
    }
}

#[test]
fn bdwgc_reports_its_collections() {
    if !bdwgc::available() {
        eprintln!("bdwgc not built in; nothing to check");
        return;
    }
    let r = runner_worker(Workload::BinaryTrees, "bdwgc");
    assert!(
        r.collections > 0,
        "binary-trees tiny ran without a bdwgc collection"
    );
    assert!(r.pause_max_ns > 0 && r.pause_max_ns >= r.pause_p50_ns);
    assert!(!r.pauses_ns.is_empty());
}

#[test]
fn array_writer_agrees_across_sources_and_reports_every_page() {
    let mut checksums = Vec::new();
    for source in ["none", "card", "pagemap-scan"] {
        let config = format!("direct/{source}");
        let mut cmd = Command::new(RUNNER);
        cmd.args([
            "worker",
            "--workload",
            "array-writer",
            "--size",
            "tiny",
            "--config",
            &config,
        ]);
        let r = run(cmd);
        let per_harvest = r.extra("pages_per_harvest").unwrap();
        let pages = r.extra("region_bytes").unwrap() / 4096.0;
        assert!(per_harvest >= pages, "{source}: {per_harvest} < {pages}");
        assert!(r.extra("mutator_slowdown").unwrap() > 0.0);
        checksums.push(r.checksum);
    }
    assert!(checksums.windows(2).all(|w| w[0] == w[1]), "{checksums:?}");
}
