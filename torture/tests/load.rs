//! The load torture, short: 64 threads for two seconds under each dirty
//! source with the verifier on. Expected for every source: the summary line
//! says `result=PASS` with `checksum_failures=0`, at least one completed
//! cycle (concurrent ones for every source but `none`), threads replaced
//! (`threads_created` > `threads`), and exit 0. A lost object aborts the
//! child in the verifier ("VERIFY FAILED"), which fails the test.
//!
//! Runs are serialised: each one wants the whole (2-core) machine.
//! `TORTURE_SECONDS` lengthens them.

mod common;

use common::{field, run_with};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn seconds() -> String {
    std::env::var("TORTURE_SECONDS").unwrap_or_else(|_| "2".into())
}

fn torture(source: &str) {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let secs = seconds();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torture"));
    cmd.args(["--threads", "64", "--seconds", &secs]);
    let limit = Duration::from_secs_f64(secs.parse::<f64>().unwrap_or(2.0) + 60.0);
    let r = run_with(cmd, &[("OOHGC_DIRTY", source)], limit);
    eprintln!("{}", r.stdout.trim());
    r.assert_ok();
    let line = r.stdout.trim();
    assert_eq!(field(line, "source"), Some(source), "{line}");
    assert_eq!(field(line, "result"), Some("PASS"), "{line}");
    assert_eq!(field(line, "checksum_failures"), Some("0"), "{line}");
    assert_eq!(field(line, "verify"), Some("on"), "{line}");
    assert_eq!(field(line, "threads_held"), Some("64"), "{line}");
    let num = |k: &str| -> u64 {
        field(line, k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    assert!(num("cycles") >= 1, "{line}");
    if source != "none" {
        assert!(num("concurrent_cycles") >= 1, "{line}");
    }
    assert!(num("threads_created") > 64, "{line}");
    assert!(num("objects_allocated") > 10_000, "{line}");
}

#[test]
fn load_torture_epml() {
    torture("epml");
}

#[test]
fn load_torture_spml() {
    torture("spml");
}

#[test]
fn load_torture_pagemap_scan() {
    torture("pagemap-scan");
}

#[test]
fn load_torture_uffd() {
    torture("uffd");
}

#[test]
fn load_torture_mprotect() {
    torture("mprotect");
}

#[test]
fn load_torture_none() {
    torture("none");
}

/// Arguments, environment, and the pieces the error message must contain.
type BadInput = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// Expected: bad command lines and a bad `OOHGC_DIRTY` exit 2 with a
/// message naming what was wrong and what is allowed.
#[test]
fn bad_inputs_are_refused_clearly() {
    let cases: &[BadInput] = &[
        (
            &["--threads", "0"],
            &[],
            &["--threads", "out of range", "from 1 to 4096"],
        ),
        (
            &["--seconds", "soon"],
            &[],
            &["--seconds", "is not a number"],
        ),
        (
            &["--threds", "4"],
            &[],
            &[
                "unknown option",
                "--threads, --seconds, --roots, --seed, --replace-threads",
            ],
        ),
        (
            &["--seconds", "0.1"],
            &[("OOHGC_DIRTY", "soft_dirty")],
            &["OOHGC_DIRTY", "soft-dirty", "pagemap-scan"],
        ),
        (
            &["--seconds", "0.1"],
            &[("OOHGC_MAX_HEAP", "1K")],
            &["OOHGC_MAX_HEAP"],
        ),
    ];
    for (args, env, expect) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_torture"));
        cmd.args(*args);
        let r = run_with(cmd, env, Duration::from_secs(30));
        assert_eq!(r.code(), Some(2), "{args:?} {env:?}: {}", r.describe());
        for e in *expect {
            assert!(
                r.stderr.contains(e),
                "{args:?} {env:?}: expected {e:?} in {}",
                r.describe()
            );
        }
    }
}
