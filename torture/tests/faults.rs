//! Faults and hostile conditions. Each test runs one scenario of the
//! `hostile` binary in its own process and asserts on its exit status and
//! output; the expected behaviour is written on each test. A scenario that
//! does not finish within its time limit fails the test as a hang.

mod common;

use common::{field, hostile};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Expected: with OOHGC_MAX_HEAP=32M and a concurrent source, keeping
/// 64 KiB `Gc` objects while cycles run reaches the limit; `Gc::new` (or
/// the `Vec` growing to hold them) gets null and the process aborts
/// (SIGABRT) through `handle_alloc_error`: "memory allocation of N bytes
/// failed". It neither hangs nor grows past the limit.
#[test]
fn gc_new_past_the_max_heap_aborts_with_the_allocation_error() {
    let r = hostile(
        "max-heap-gc",
        &[("OOHGC_MAX_HEAP", "32M"), ("OOHGC_DIRTY", "pagemap-scan")],
        LIMIT,
    );
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    assert!(
        r.stderr.contains("memory allocation of ") && r.stderr.contains(" bytes failed"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("CHECK FAILED"), "{}", r.describe());
}

/// Expected: under the same limit, raw `std::alloc::alloc` of 1 MiB blocks
/// during a concurrent cycle returns null once the heap is full (fewer than
/// 32 blocks fit); after freeing them an allocation succeeds again and
/// further collections run with the kept objects intact (exit 0).
#[test]
fn raw_alloc_past_the_max_heap_returns_null_and_recovers() {
    let r = hostile(
        "max-heap-raw",
        &[("OOHGC_MAX_HEAP", "32M"), ("OOHGC_DIRTY", "pagemap-scan")],
        LIMIT,
    );
    r.assert_ok();
    let mib: usize = field(&r.stdout, "raw_mib_before_null")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure: {}", r.describe()));
    assert!((1..32).contains(&mib), "{mib} MiB fit under a 32 MiB limit");
    assert_eq!(field(&r.stdout, "recovered"), Some("1"));
}

/// Expected (OOHGC_DIRTY=mprotect): the program's SIGSEGV handler,
/// installed before the collector starts, still receives the faults on its
/// own page (the collector's handler chains them), five of five, while heap
/// writes during concurrent cycles are tracked (verifier on, exit 0).
#[test]
fn own_sigsegv_handler_installed_before_the_collector() {
    let r = hostile("segv-handler-before", &[("OOHGC_DIRTY", "mprotect")], LIMIT);
    r.assert_ok();
    assert_eq!(field(&r.stdout, "own_handler_faults"), Some("5"));
    assert_eq!(field(&r.stdout, "source"), Some("mprotect"));
}

/// Expected (OOHGC_DIRTY=mprotect): a SIGSEGV handler installed after the
/// collector's, blocking every signal while it runs and chaining other
/// faults to the previous handler, sees its five faults, and heap writes
/// keep reaching the collector through the chain (exit 0). (A chaining
/// handler that leaves the stop-the-world signal unblocked can be suspended
/// inside the collector's handler: see the mprotect source's docs.)
#[test]
fn own_sigsegv_handler_installed_after_the_collector() {
    let r = hostile("segv-handler-after", &[("OOHGC_DIRTY", "mprotect")], LIMIT);
    r.assert_ok();
    assert_eq!(field(&r.stdout, "own_handler_faults"), Some("5"));
}

/// Expected (OOHGC_DIRTY=mprotect): a real segfault outside the heap with
/// no program handler kills the process with SIGSEGV, as without oohgc.
#[test]
fn a_real_segfault_still_kills_with_sigsegv() {
    let r = hostile("segv-default", &[("OOHGC_DIRTY", "mprotect")], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGSEGV), "{}", r.describe());
    assert_eq!(field(&r.stdout, "about_to_fault"), Some("1"));
}

/// Expected: a program that owns SIGPWR (the default suspend signal) before
/// the collector starts gets, at its first collection, exit status 2 and a
/// message naming SIGPWR and how to move oohgc (OOHGC_SUSPEND_SIGNAL).
#[test]
fn own_sigpwr_handler_is_refused_with_a_clear_message() {
    let r = hostile("sigpwr-handler", &[], LIMIT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("SIGPWR")
            && r.stderr.contains("already has a handler")
            && r.stderr.contains("OOHGC_SUSPEND_SIGNAL"),
        "{}",
        r.describe()
    );
}

/// Expected: the same program with OOHGC_SUSPEND_SIGNAL=SIGRTMIN+3 and
/// OOHGC_RESTART_SIGNAL=SIGRTMIN+4 collects normally, and its own SIGPWR
/// handler still runs (exit 0).
#[test]
fn own_sigpwr_handler_works_once_oohgc_moves_its_signals() {
    let r = hostile(
        "sigpwr-handler",
        &[
            ("OOHGC_SUSPEND_SIGNAL", "SIGRTMIN+3"),
            ("OOHGC_RESTART_SIGNAL", "SIGRTMIN+4"),
        ],
        LIMIT,
    );
    r.assert_ok();
    assert_eq!(field(&r.stdout, "own_sigpwr"), Some("1"));
}

fn fork_under(source: &str) {
    let r = hostile("fork-mid-cycle", &[("OOHGC_DIRTY", source)], LIMIT);
    r.assert_ok();
    assert_eq!(
        field(&r.stdout, "children_ok"),
        Some("5"),
        "{}",
        r.describe()
    );
}

/// Expected: fork() from a program with four mutating threads during
/// concurrent cycles (pagemap-scan): five children each allocate, collect
/// (stop-the-world and concurrent, verifier on) and exit 0; the parent's
/// objects stay intact (exit 0).
#[test]
fn fork_during_a_concurrent_cycle_pagemap_scan() {
    fork_under("pagemap-scan");
}

/// Expected: as above under the default `epml` model.
#[test]
fn fork_during_a_concurrent_cycle_epml() {
    fork_under("epml");
}

/// Expected: a registered mutator thread overflowing its stack while cycles
/// run gets Rust's "has overflowed its stack" message and the process dies
/// of SIGABRT (not a hang), under the default source.
#[test]
fn stack_overflow_in_a_mutator_reports_and_aborts() {
    let r = hostile("stack-overflow", &[], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    assert!(
        r.stderr.contains("thread 'overflower'") && r.stderr.contains("has overflowed its stack"),
        "{}",
        r.describe()
    );
}

/// Expected: the same under `mprotect`, whose SIGSEGV handler sits in front
/// of Rust's guard-page handler and must chain the guard-page fault to it.
#[test]
fn stack_overflow_under_mprotect_reports_and_aborts() {
    let r = hostile("stack-overflow", &[("OOHGC_DIRTY", "mprotect")], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    assert!(
        r.stderr.contains("has overflowed its stack"),
        "{}",
        r.describe()
    );
}

/// Expected: 3000 short-lived threads (a third never joined) exit while
/// collections run back to back, so threads exit while the world is being
/// stopped: no hang, no lost object, exit 0.
#[test]
fn threads_exiting_while_the_world_stops() {
    let r = hostile("exiting-threads", &[], LIMIT);
    r.assert_ok();
    assert_eq!(field(&r.stdout, "threads"), Some("3000"));
}

/// Expected: threads parked in `read(2)`, in `oohgc::blocking(read)` and in
/// `oohgc::blocking(sleep)` for the whole run do not stop 40 cycles from
/// completing; their objects survive (exit 0).
#[test]
fn threads_parked_in_system_calls_across_cycles() {
    let r = hostile("blocked-threads", &[], LIMIT);
    r.assert_ok();
    let cycles: u64 = field(&r.stdout, "cycles_while_parked")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(cycles >= 40, "{}", r.describe());
}

/// Expected: freeing the same `Box` block twice through the global
/// allocator aborts (SIGABRT) with "oohgc-allocator: double free (or free of
/// a slot that is not allocated): 0x<the block>" (checked in release
/// builds too: the allocation byte must be set).
#[test]
fn double_free_is_detected() {
    let r = hostile("double-free", &[], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    let block = field(&r.stdout, "block").expect("block address printed");
    let hex = block.trim_start_matches("0x");
    assert!(
        r.stderr
            .contains("oohgc-allocator: double free (or free of a slot that is not allocated):")
            && r.stderr.contains(hex),
        "{}",
        r.describe()
    );
}

/// Expected: freeing a pointer 8 bytes into a heap block aborts with
/// "oohgc-allocator: a pointer that is not the base of an object".
#[test]
fn interior_pointer_free_is_detected() {
    let r = hostile("interior-free", &[], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    assert!(
        r.stderr
            .contains("oohgc-allocator: a pointer that is not the base of an object"),
        "{}",
        r.describe()
    );
}

/// Expected: freeing a pointer outside the heap that is not one of the
/// collector's own `malloc` blocks (here a static) aborts (SIGABRT) with
/// "oohgc: fatal: dealloc of 0x..., which is not a block of this
/// allocator".
#[test]
fn foreign_pointer_free_is_detected() {
    let r = hostile("outside-free", &[], LIMIT);
    assert_eq!(r.signal(), Some(libc::SIGABRT), "{}", r.describe());
    assert!(
        r.stderr.contains("oohgc: fatal: dealloc of 0x")
            && r.stderr.contains("which is not a block of this allocator"),
        "{}",
        r.describe()
    );
    assert!(!r.stderr.contains("went unnoticed"), "{}", r.describe());
}

/// Expected: an unknown scenario name exits 2 and lists the scenarios.
#[test]
fn unknown_scenario_lists_the_valid_ones() {
    let r = hostile("no-such-scenario", &[], LIMIT);
    assert_eq!(r.code(), Some(2), "{}", r.describe());
    assert!(
        r.stderr.contains("unknown scenario \"no-such-scenario\"")
            && r.stderr.contains("fork-mid-cycle"),
        "{}",
        r.describe()
    );
}

/// Expected: run as the unprivileged user `nobody`, with
/// `vm.unprivileged_userfaultfd` as this machine has it: the default
/// (`epml`) either opens with `UFFD_USER_MODE_ONLY` (no message) or, if it
/// cannot, the documented "falling back to `<source>`" line names the
/// replacement; either way the collector runs, collects correctly with the
/// verifier, and exits 0. Skipped (with a message) when not run as root,
/// as dropping to `nobody` needs it.
#[test]
fn unprivileged_process_gets_a_working_source() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: cannot drop to nobody; nothing to check here");
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostile"));
    cmd.arg("default-source").uid(65534).gid(65534);
    let r = common::run_with(cmd, &[], LIMIT);
    r.assert_ok();
    let source = field(&r.stdout, "source").expect("source printed");
    if r.stderr.contains("falling back to") {
        assert!(
            r.stderr.contains(&format!("falling back to `{source}`")),
            "{}",
            r.describe()
        );
        assert_ne!(source, "epml");
    } else {
        assert_eq!(source, "epml", "{}", r.describe());
    }
    let sysctl =
        std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap_or_default();
    eprintln!(
        "unprivileged (vm.unprivileged_userfaultfd={}): source {source}",
        sysctl.trim()
    );
}
