//! `oohgc-bench checkpoint`: bad parameters are refused naming what is
//! allowed, and a small run checkpoints each workload under real sources,
//! keeps the workloads' checksums equal to the uncheckpointed runs', restores its last image byte for byte
//! and prints the dump and slowdown tables with the targets.

use std::process::{Command, Output};

const RUNNER: &str = env!("CARGO_BIN_EXE_oohgc-bench");

fn runner(args: &[&str]) -> Output {
    Command::new(RUNNER)
        .args(args)
        .output()
        .expect("runner starts")
}

#[test]
fn bad_parameters_are_refused_with_what_is_allowed() {
    for (args, want) in [
        (
            &["--kv-mib", "8"][..],
            "--kv-mib 8 is out of range; allowed: 64 ..= 1024",
        ),
        (&["--write-pct", "0"][..], "--write-pct 0 is out of range"),
        (&["--interval-ms", "0"][..], "--interval-ms 0"),
        (
            &["--workloads", "tkrzw"][..],
            "unknown checkpoint workload \"tkrzw\"; allowed: kv-paced, kv, histogram",
        ),
        (
            &["--sources", "card"][..],
            "unknown source \"card\" for checkpointing; allowed: epml, spml",
        ),
        (&["--runs", "0"][..], "--runs 0"),
    ] {
        let mut all = vec!["checkpoint"];
        all.extend_from_slice(args);
        let out = runner(&all);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_small_run_prints_every_table_and_matching_checksums() {
    let out = runner(&[
        "checkpoint",
        "--workloads",
        "kv-paced,matrix-multiply",
        "--sources",
        "pagemap-scan,soft-dirty,none",
        "--runs",
        "1",
        "--kv-mib",
        "64",
        "--dumps",
        "3",
        "--interval-ms",
        "40",
        "--size",
        "tiny",
        "--arena-mib",
        "16",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "kv-paced: 64 MiB store, 1% of its pages written per 40 ms interval, 3 dumps",
        "matrix-multiply (size tiny)",
        "Workload slowdown against no checkpointing (off)",
        "full dump (none) / pagemap-scan:",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }
    assert!(!text.contains("DIFFERS"), "a checksum differs:\n{text}");
    // pagemap-scan and none ran every dump of kv-paced.
    for source in ["pagemap-scan", "none"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(source) && l.split_whitespace().nth(1) == Some("3"))
            .unwrap_or_else(|| panic!("no kv-paced row with 3 dumps for {source}:\n{text}"));
        assert!(!row.contains("not run"), "{row}");
    }
    // soft-dirty is either refused with its reason or ran.
    if let Some(l) = text.lines().find(|l| l.starts_with("soft-dirty: not run")) {
        assert!(l.contains("unavailable"), "{l}");
    }
}
