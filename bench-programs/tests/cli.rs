//! The runner's argument handling: help, and clear errors that name the
//! bad value and every allowed one.

use std::process::{Command, Output};

const RUNNER: &str = env!("CARGO_BIN_EXE_oohgc-bench");

fn runner(args: &[&str]) -> Output {
    Command::new(RUNNER)
        .args(args)
        .output()
        .expect("runner starts")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_the_subcommands_and_options() {
    let out = runner(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "list", "compare", "paper", "ab"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
    assert!(
        !text.contains("worker"),
        "the internal worker subcommand is hidden"
    );
    let out = runner(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--size",
        "--runs",
        "--collectors",
        "--sources",
        "--baseline",
        "--json",
        "--csv",
        "--markdown",
        "--plot",
    ] {
        assert!(text.contains(opt), "run --help lacks {opt}");
    }
}

#[test]
fn unknown_workload_is_named_with_the_allowed_ones() {
    let out = runner(&["run", "gcbnch", "--runs", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("\"gcbnch\"") && e.contains("binary-trees") && e.contains("word-count"),
        "{e}"
    );
}

#[test]
fn unknown_source_is_named_with_the_allowed_ones() {
    let out = runner(&["run", "gcbench", "--sources", "epml,pml"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("\"pml\"") && e.contains("pagemap-scan") && e.contains("mprotect"),
        "{e}"
    );
}

#[test]
fn unknown_collector_and_baseline_are_named_with_the_allowed_ones() {
    let out = runner(&["run", "gcbench", "--collectors", "g1"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("\"g1\"") && e.contains("bdwgc-incr") && e.contains("malloc"),
        "{e}"
    );
    let out = runner(&["run", "gcbench", "--baseline", "oohgc/fast"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--baseline"), "{}", stderr(&out));
}

#[test]
fn bad_size_runs_and_knobs_are_refused() {
    let out = runner(&["run", "gcbench", "--size", "XL"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("'XL'") && stderr(&out).contains("tiny, S, M, L"),
        "{}",
        stderr(&out)
    );
    let out = runner(&["run", "gcbench", "--runs", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--runs"));
    let out = runner(&["run", "array-writer", "--region-mib", "4096"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 ..= 1024"), "{}", stderr(&out));
}

#[test]
fn list_names_every_workload_source_and_collector() {
    let out = runner(&["list"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "gcbench",
        "pointer-mutation",
        "array-writer",
        "epml",
        "soft-dirty",
        "card",
        "bdwgc-incr",
        "malloc",
    ] {
        assert!(text.contains(name), "list lacks {name}");
    }
}
