//! Allocation backtraces in leak reports (`OOHGC_LEAK_BACKTRACES=1` with
//! `OOHGC_FIND_LEAKS=1`, or `Config::leak_backtraces`): a forgotten `Box`
//! is reported with the function that allocated it; freed blocks leave no
//! entry behind; with capture off there are no frames, and the summary says
//! how to turn them on; the depth setting bounds the frames. Each scenario
//! runs in a child process, since the settings are read when the heap
//! starts.

mod common;

use common::{assert_child_ok, is_child, run_in_child};
use std::hint::black_box;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// Addresses are kept XOR-masked so no stray copy keeps the leak reachable.
const KEY: usize = 0x5A5A_5A5A_5A5A_5A5A;

/// The allocation site the reports must name.
#[inline(never)]
fn leaky_site_for_backtrace_test() -> usize {
    let forgotten = Box::new([0x33u8; 3000]);
    let addr = &*forgotten as *const [u8; 3000] as usize;
    std::mem::forget(forgotten);
    addr ^ KEY
}

#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 4096];
    black_box(&mut buf);
}

/// Unmask and print in a frame of its own, which `clobber_stack` then
/// overwrites (an unoptimised build keeps the unmasked temporary there).
#[inline(never)]
fn print_address(label: &str, masked: usize) {
    println!("{label} {:#x}", masked ^ KEY);
}

/// Child body: leak one `Box`, print its address, collect from another
/// thread (so this thread is scanned from where it waits, not from the
/// collector's frames, whose dead slots may still hold the address).
fn leak_and_collect() {
    let masked = leaky_site_for_backtrace_test();
    clobber_stack();
    print_address("FORGOTTEN", masked);
    clobber_stack();
    for _ in 0..3 {
        std::thread::spawn(oohgc::collect).join().unwrap();
    }
    let (blocks, sites) = oohgc::leak_backtrace_counts();
    println!("COUNTS {blocks} {sites}");
}

/// Run `test` in a child with `env`; (stdout, stderr) of a successful run.
fn child(test: &str, env: &[(&str, &str)]) -> (String, String) {
    let out = run_in_child(test, env);
    assert_child_ok(&out);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `prefix` on the child's stdout (the harness may print
/// the test's name before it on the same line).
fn stdout_value(stdout: &str, prefix: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split(prefix).nth(1))
        .unwrap_or_else(|| panic!("child printed no {prefix:?} line:\n{stdout}"))
        .trim()
        .to_owned()
}

/// The frame lines printed under the leak line of block `addr`.
fn frames_under(stderr: &str, addr: &str) -> Vec<String> {
    let mut lines = stderr.lines();
    lines
        .find(|l| l.contains("oohgc: leak:") && l.contains(&format!("at {addr} ")))
        .unwrap_or_else(|| panic!("block {addr} was not reported:\n{stderr}"));
    lines
        .take_while(|l| l.starts_with("oohgc:     "))
        .map(str::to_owned)
        .collect()
}

/// The summary line of the cycle that reported block `addr`.
fn summary_of_leak(stderr: &str, addr: &str) -> String {
    stderr
        .lines()
        .skip_while(|l| !(l.contains("oohgc: leak:") && l.contains(&format!("at {addr} "))))
        .find(|l| l.starts_with("oohgc: leak summary"))
        .unwrap_or_else(|| panic!("no summary after the leak of {addr}:\n{stderr}"))
        .to_owned()
}

/// The last line mentioning leaks must be the summary.
fn assert_summary_last(stderr: &str) {
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("oohgc: leak") || l.starts_with("oohgc:     "))
        .unwrap_or_else(|| panic!("no leak report:\n{stderr}"));
    assert!(
        last.starts_with("oohgc: leak summary"),
        "the report does not end with its summary:\n{stderr}"
    );
}

/// Check a report with backtraces: the leak's first shown frame is the
/// allocating function, in this file; at most 16 frames; no hint.
fn assert_site_reported(stdout: &str, stderr: &str) {
    let addr = stdout_value(stdout, "FORGOTTEN ");
    let frames = frames_under(stderr, &addr);
    assert!(!frames.is_empty(), "no frames under the leak:\n{stderr}");
    assert!(frames.len() <= 16, "more than 16 frames:\n{stderr}");
    assert!(
        frames[0].contains("at leak_backtraces::leaky_site_for_backtrace_test (")
            && frames[0].contains("leak_backtraces.rs:"),
        "the first frame is not the allocating function (allocator frames not skipped?):\n{stderr}"
    );
    assert!(
        !frames.iter().any(|f| f.contains("oohgc::")),
        "the collector's own frames are shown:\n{stderr}"
    );
    assert_summary_last(stderr);
    let summary = summary_of_leak(stderr, &addr);
    assert!(
        !summary.contains("OOHGC_LEAK_BACKTRACES"),
        "the hint is shown although capture is on: {summary}"
    );
}

#[test]
fn forgotten_box_is_reported_with_its_allocating_function() {
    if is_child() {
        return leak_and_collect();
    }
    let (stdout, stderr) = child(
        "forgotten_box_is_reported_with_its_allocating_function",
        &[("OOHGC_FIND_LEAKS", "1"), ("OOHGC_LEAK_BACKTRACES", "1")],
    );
    assert_site_reported(&stdout, &stderr);
}

#[test]
fn the_depth_setting_bounds_the_recorded_frames() {
    if is_child() {
        return leak_and_collect();
    }
    let (stdout, stderr) = child(
        "the_depth_setting_bounds_the_recorded_frames",
        &[
            ("OOHGC_FIND_LEAKS", "1"),
            ("OOHGC_LEAK_BACKTRACES", "1"),
            ("OOHGC_LEAK_BACKTRACE_DEPTH", "3"),
        ],
    );
    assert_site_reported(&stdout, &stderr);
    // Three frames: the allocator's entry, the allocating function and its
    // caller; the test harness, several frames further out, is not reached.
    let frames = frames_under(&stderr, &stdout_value(&stdout, "FORGOTTEN "));
    assert!(
        !frames.iter().any(|f| f.contains("test::run_test")),
        "frames beyond the depth of 3 were recorded:\n{stderr}"
    );
}

#[test]
fn config_builder_turns_backtraces_on() {
    if is_child() {
        oohgc::Config::from_env()
            .expect("environment")
            .find_leaks(true)
            .leak_backtraces(true)
            .apply()
            .expect("apply");
        return leak_and_collect();
    }
    let (stdout, stderr) = child("config_builder_turns_backtraces_on", &[]);
    assert_site_reported(&stdout, &stderr);
}

#[test]
fn without_backtraces_there_are_no_frames_and_the_summary_says_how() {
    if is_child() {
        return leak_and_collect();
    }
    let (stdout, stderr) = child(
        "without_backtraces_there_are_no_frames_and_the_summary_says_how",
        &[("OOHGC_FIND_LEAKS", "1")],
    );
    let addr = stdout_value(&stdout, "FORGOTTEN ");
    assert!(
        frames_under(&stderr, &addr).is_empty(),
        "frames shown with capture off:\n{stderr}"
    );
    assert_summary_last(&stderr);
    let summary = summary_of_leak(&stderr, &addr);
    assert!(
        summary.contains("set OOHGC_LEAK_BACKTRACES=1"),
        "the summary does not say how to get backtraces: {summary}"
    );
    assert_eq!(
        stdout_value(&stdout, "COUNTS "),
        "0 0",
        "sites recorded with capture off"
    );
}

#[test]
fn backtraces_alone_do_not_turn_leak_reports_on() {
    if is_child() {
        return leak_and_collect();
    }
    let (stdout, stderr) = child(
        "backtraces_alone_do_not_turn_leak_reports_on",
        &[("OOHGC_LEAK_BACKTRACES", "1")],
    );
    assert!(
        !stderr.contains("oohgc: leak"),
        "leak reports without OOHGC_FIND_LEAKS:\n{stderr}"
    );
    assert_eq!(
        stdout_value(&stdout, "COUNTS "),
        "0 0",
        "sites recorded without leak reports"
    );
}

/// Allocate and free `n` boxes and a growing `Vec` (realloc moves).
#[inline(never)]
fn churn_boxes(n: usize) {
    for i in 0..n {
        let b = Box::new([i as u64; 4]);
        black_box(&b);
        let mut v: Vec<u64> = Vec::new();
        for k in 0..(i % 64) as u64 {
            v.push(k);
        }
        black_box(&v);
    }
}

#[test]
fn freed_blocks_leave_no_entries() {
    if !is_child() {
        let (stdout, _) = child(
            "freed_blocks_leave_no_entries",
            &[("OOHGC_FIND_LEAKS", "1"), ("OOHGC_LEAK_BACKTRACES", "1")],
        );
        assert!(stdout.contains("CHURN OK"), "{stdout}");
        return;
    }
    churn_boxes(1000);
    let (before, sites_before) = oohgc::leak_backtrace_counts();
    let held: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
    let (holding, _) = oohgc::leak_backtrace_counts();
    assert!(
        holding >= before + 1000,
        "1000 live boxes but the table grew from {before} to {holding} entries"
    );
    drop(held);
    churn_boxes(100_000);
    let (after, sites_after) = oohgc::leak_backtrace_counts();
    assert!(
        after <= before + 16,
        "the table grew from {before} to {after} entries over a churn of freed blocks"
    );
    assert!(
        sites_after <= sites_before + 16,
        "distinct sites grew from {sites_before} to {sites_after}: one call site is stored many times"
    );
    println!("CHURN OK {before} {holding} {after} {sites_before} {sites_after}");
}
