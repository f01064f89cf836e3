//! A real program (serde_json, regex, hashbrown, crossbeam channels, rayon)
//! under `GcAllocator` with a full collection forced every 2 ms, against
//! the same program under the system allocator. Expected: identical digests
//! (the collector freed nothing the program used, under any source), and
//! collections really ran during the program.

mod common;

use common::{field, run_with};
use std::process::Command;
use std::time::Duration;

/// Work done per run (about half a second on the project's VM).
const SCALE: &str = "150";

/// The output line of the program under the system allocator.
fn reference_output() -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_real_program_system"));
    cmd.args(["--scale", SCALE]);
    let r = run_with(cmd, &[], Duration::from_secs(120));
    r.assert_ok();
    assert!(field(&r.stdout, "digest").is_some(), "{}", r.describe());
    r.stdout.trim().to_string()
}

fn under_gc(source: &str, reference: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_real_program"));
    cmd.args(["--scale", SCALE, "--collect-every-ms", "2"]);
    let r = run_with(
        cmd,
        &[("OOHGC_DIRTY", source), ("OOHGC_VERIFY", "1")],
        Duration::from_secs(120),
    );
    r.assert_ok();
    assert_eq!(
        r.stdout.trim(),
        reference,
        "{source}: the outputs differ from the system allocator's"
    );
    let collections: u64 = r
        .stderr
        .split("collections ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no collection count: {}", r.describe()));
    assert!(
        collections >= 5,
        "{source}: only {collections} collections: {}",
        r.describe()
    );
    eprintln!("{source}: same digest, {collections} forced collections");
}

#[test]
fn same_digest_as_the_system_allocator_under_every_source() {
    let reference = reference_output();
    for source in ["epml", "pagemap-scan", "uffd", "mprotect", "none"] {
        under_gc(source, &reference);
    }
}

/// Expected: a bad option exits 2 naming it and the allowed values.
#[test]
fn bad_option_is_refused() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_real_program"));
    cmd.args(["--scale", "0"]);
    let r = run_with(cmd, &[], Duration::from_secs(30));
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr
            .contains("--scale 0 is out of range; allowed: a whole number from 1 to 1000"),
        "{}",
        r.describe()
    );
}
