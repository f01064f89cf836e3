//! Bad configuration is a clear error naming the setting and the allowed
//! values; good values take effect.

mod common;

use common::{is_child, run_in_child};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

fn child_stderr(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = run_in_child(test, env);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn starts_the_collector() {
    // Run by the children below; on its own it just collects once.
    let g = oohgc::Gc::new(5u64);
    oohgc::collect();
    assert_eq!(*g, 5);
    if is_child() {
        eprintln!(
            "SOURCE={} CYCLES={}",
            oohgc::dirty_source_name(),
            oohgc::stats().cycles
        );
    }
}

#[test]
fn bad_environment_values_name_the_variable_and_the_allowed_values() {
    if is_child() {
        return;
    }
    let cases: &[(&str, &str, &str)] = &[
        ("OOHGC_MAX_HEAP", "1k", "at least 4M"),
        ("OOHGC_MAX_HEAP", "lots", "at least 4M"),
        (
            "OOHGC_DIRTY",
            "bogus",
            "epml, spml, pagemap-scan, uffd, mprotect, soft-dirty, card, none",
        ),
        ("OOHGC_PML_ENGINE", "fast", "async or sync"),
        ("OOHGC_VERIFY", "yes", "0 or 1"),
        ("OOHGC_STATS", "2", "0 or 1"),
        ("OOHGC_FIND_LEAKS", "true", "0 or 1"),
        ("OOHGC_LEAK_BACKTRACES", "on", "0 or 1"),
        ("OOHGC_PARALLEL_MARK", "2", "0 or 1"),
        ("OOHGC_LEAK_BACKTRACE_DEPTH", "0", "1 to 32"),
        ("OOHGC_LEAK_BACKTRACE_DEPTH", "33", "1 to 32"),
        ("OOHGC_COLLECTOR", "maybe", "on or off"),
        ("OOHGC_FREE_SPACE_DIVISOR", "0", "1 to 100"),
        ("OOHGC_INITIAL_HEAP", "-3", "K, M, G or T"),
        ("OOHGC_SUSPEND_SIGNAL", "SIGSEGV", "signal number or name"),
        ("OOHGC_CROSS_CHECK", "nothing", "epml, spml, pagemap-scan"),
    ];
    for (var, value, allowed) in cases {
        let (ok, err) = child_stderr("starts_the_collector", &[(var, value)]);
        assert!(!ok, "{var}={value} was accepted");
        assert!(
            err.contains(var),
            "{var}={value}: message does not name the variable: {err}"
        );
        assert!(
            err.contains(value),
            "{var}={value}: message does not show the value: {err}"
        );
        assert!(
            err.contains(allowed),
            "{var}={value}: message does not list what is allowed: {err}"
        );
    }
}

#[test]
fn good_environment_values_take_effect() {
    if is_child() {
        return;
    }
    let (ok, err) = child_stderr(
        "starts_the_collector",
        &[("OOHGC_DIRTY", "none"), ("OOHGC_STATS", "1")],
    );
    assert!(ok, "{err}");
    assert!(err.contains("SOURCE=none"), "{err}");
    assert!(
        err.contains("oohgc: cycle 1"),
        "OOHGC_STATS=1 printed no cycle line: {err}"
    );
    let (ok, err) = child_stderr("starts_the_collector", &[("OOHGC_DIRTY", "pagemap-scan")]);
    assert!(ok, "{err}");
    assert!(err.contains("SOURCE=pagemap-scan"), "{err}");
}

#[test]
fn an_unavailable_explicit_source_is_an_error() {
    if is_child() {
        return;
    }
    let (ok, err) = child_stderr("starts_the_collector", &[("OOHGC_DIRTY", "soft-dirty")]);
    assert!(!ok, "soft-dirty was accepted on a kernel without it: {err}");
    assert!(err.contains("soft-dirty"), "{err}");
    assert!(err.contains("CONFIG_MEM_SOFT_DIRTY"), "{err}");
}

#[test]
fn builder_errors() {
    let e = oohgc::Config::new().max_heap(1 << 20).unwrap_err();
    assert!(e.to_string().contains("Config::max_heap"), "{e}");
    let e = oohgc::Config::new().dirty_source("nope").unwrap_err();
    assert!(e.to_string().contains("pagemap-scan"), "{e}");
    let e = oohgc::Config::new().pml_engine("x").unwrap_err();
    assert!(e.to_string().contains("async or sync"), "{e}");
}

#[test]
fn leak_backtraces_default_off_and_builder_sets_it() {
    let c = oohgc::Config::new();
    assert!(!c.leak_backtraces, "leak backtraces on by default");
    let on = c.find_leaks(true).leak_backtraces(true);
    assert!(on.leak_backtraces && on.find_leaks);
    assert!(!on.leak_backtraces(false).leak_backtraces);
    assert_eq!(c.leak_backtrace_depth, 16);
    assert_eq!(c.leak_backtrace_depth(4).unwrap().leak_backtrace_depth, 4);
    let e = c.leak_backtrace_depth(0).unwrap_err().to_string();
    assert!(
        e.contains("Config::leak_backtrace_depth") && e.contains("1 to 32"),
        "{e}"
    );
    assert!(c.leak_backtrace_depth(33).is_err());
}

/// Run by the children below: allocate 48 MiB of garbage with automatic
/// collection and report what the settings did.
#[test]
fn report_effects() {
    if !is_child() {
        return;
    }
    static VERIFY_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    oohgc::on_cycle(Some(|c| {
        VERIFY_NS.fetch_add(c.verify_ns, std::sync::atomic::Ordering::Relaxed);
    }));
    for i in 0..(48 << 20) / 64 {
        std::hint::black_box(oohgc::Gc::new([i as u64; 6]));
    }
    if oohgc::start_cycle() {
        oohgc::wait_for_cycles(1);
    }
    let s = oohgc::stats();
    eprintln!(
        "EFFECTS source={} cycles={} verify_ns={} counters={:?}",
        oohgc::dirty_source_name(),
        s.cycles,
        VERIFY_NS.load(std::sync::atomic::Ordering::Relaxed),
        s.source_counters
            .iter()
            .filter(|(n, _)| n.starts_with("pml_engine"))
            .collect::<Vec<_>>()
    );
}

fn effects(env: &[(&str, &str)]) -> String {
    let (ok, err) = child_stderr("report_effects", env);
    assert!(ok, "{env:?}: {err}");
    err.lines()
        .find(|l| l.contains("EFFECTS"))
        .unwrap_or_else(|| panic!("{env:?}: no report: {err}"))
        .to_owned()
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn each_setting_takes_effect() {
    if is_child() {
        return;
    }
    // Initial heap and divisor: a smaller budget means more cycles.
    // (Measured stop-the-world, where a cycle's pause ends its budget and
    // pacing caps what mutators allocate before and during it to
    // 2 x PACING_BUDGETS more: 48 MiB at 1 MiB is at least ten cycles.
    // Concurrent cycles overlap allocation longer and vary more.)
    let small = field(
        &effects(&[
            ("OOHGC_DIRTY", "none"),
            ("OOHGC_INITIAL_HEAP", "1M"),
            ("OOHGC_FREE_SPACE_DIVISOR", "100"),
        ]),
        "cycles",
    );
    let large = field(
        &effects(&[("OOHGC_DIRTY", "none"), ("OOHGC_INITIAL_HEAP", "32M")]),
        "cycles",
    );
    assert!(
        small > large * 4 && small > 8,
        "OOHGC_INITIAL_HEAP had no effect: {small} vs {large} cycles"
    );
    // Collector off: no automatic cycles (only the explicit request at the
    // end: start_cycle, and wait_for_cycles may ask for one more if the
    // first finished before it looked).
    let off = field(
        &effects(&[("OOHGC_COLLECTOR", "off"), ("OOHGC_INITIAL_HEAP", "1M")]),
        "cycles",
    );
    assert!(off <= 2, "OOHGC_COLLECTOR=off still collected {off} times");
    // Verifier: verification time is recorded only when it is on.
    let v_on = field(
        &effects(&[("OOHGC_VERIFY", "1"), ("OOHGC_INITIAL_HEAP", "4M")]),
        "verify_ns",
    );
    let v_off = field(
        &effects(&[("OOHGC_VERIFY", "0"), ("OOHGC_INITIAL_HEAP", "4M")]),
        "verify_ns",
    );
    assert!(
        v_on > 0 && v_off == 0,
        "OOHGC_VERIFY had no effect: {v_on} / {v_off}"
    );
    // PML engine: the async engine works by PAGEMAP_SCAN calls, the sync
    // engine never makes one (it traps each first write instead; how many
    // depends on what the program wrote to protected pages).
    let sync = effects(&[
        ("OOHGC_DIRTY", "epml"),
        ("OOHGC_PML_ENGINE", "sync"),
        ("OOHGC_INITIAL_HEAP", "4M"),
    ]);
    let asyn = effects(&[
        ("OOHGC_DIRTY", "epml"),
        ("OOHGC_PML_ENGINE", "async"),
        ("OOHGC_INITIAL_HEAP", "4M"),
    ]);
    assert!(sync.contains("source=epml"), "{sync}");
    assert!(
        sync.contains("(\"pml_engine_pagemap_scan_calls\", 0)"),
        "OOHGC_PML_ENGINE=sync scanned: {sync}"
    );
    assert!(
        !asyn.contains("(\"pml_engine_pagemap_scan_calls\", 0)"),
        "OOHGC_PML_ENGINE=async did not scan: {asyn}"
    );
    // Signals: a collector on real-time signals works.
    let sig = effects(&[
        ("OOHGC_SUSPEND_SIGNAL", "SIGRTMIN+3"),
        ("OOHGC_RESTART_SIGNAL", "SIGRTMIN+4"),
    ]);
    assert!(field(&sig, "cycles") > 0, "{sig}");
    // Cross-check: a second source runs beside the first; the run completes
    // (no page the second saw written was missed by the first).
    let (ok, err) = child_stderr(
        "report_effects",
        &[
            ("OOHGC_DIRTY", "mprotect"),
            ("OOHGC_CROSS_CHECK", "pagemap-scan"),
            ("OOHGC_INITIAL_HEAP", "4M"),
        ],
    );
    assert!(ok, "{err}");
    assert!(err.contains("source=mprotect"), "{err}");
    // Leak reports print a summary per cycle.
    let (ok, err) = child_stderr(
        "report_effects",
        &[("OOHGC_FIND_LEAKS", "1"), ("OOHGC_INITIAL_HEAP", "8M")],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains("leak summary"),
        "OOHGC_FIND_LEAKS=1 printed no report: {err}"
    );
}

#[test]
fn config_api_max_heap_takes_effect() {
    if !is_child() {
        // Stop-the-world, so no collector thread allocates while the test
        // holds the heap full.
        let out = run_in_child(
            "config_api_max_heap_takes_effect",
            &[("OOHGC_DIRTY", "none")],
        );
        common::assert_child_ok(&out);
        return;
    }
    oohgc::Config::from_env()
        .unwrap()
        .max_heap(16 << 20)
        .unwrap()
        .apply()
        .unwrap();
    let layout = std::alloc::Layout::from_size_align(1 << 20, 8).unwrap();
    let mut blocks = [std::ptr::null_mut::<u8>(); 32];
    let mut n = 0;
    // Called through the allocator value, not `std::alloc::alloc`: the
    // compiler may remove an unused `__rust_alloc` and fold its null check.
    loop {
        // SAFETY: a valid layout; every block is freed below.
        let p = unsafe { std::hint::black_box(std::alloc::GlobalAlloc::alloc(&GC, layout)) };
        if p.is_null() {
            break;
        }
        assert!(n < 16, "more than 16 MiB allocated under a 16 MiB limit");
        blocks[n] = p;
        n += 1;
    }
    for &p in &blocks[..n] {
        // SAFETY: blocks allocated above with `layout`.
        unsafe { std::alloc::GlobalAlloc::dealloc(&GC, p, layout) };
    }
    assert!(n >= 8, "only {n} MiB allocated under a 16 MiB limit");
}

/// Whether this process has a thread named `name`.
fn has_thread(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        let comm = t.unwrap().path().join("comm");
        std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == name)
    })
}

#[test]
fn parallel_mark_setting_starts_or_skips_the_marker_thread() {
    if is_child() {
        let keep: Vec<oohgc::Gc<u64>> = (0..10_000).map(oohgc::Gc::new).collect();
        for _ in 0..3 {
            oohgc::collect();
        }
        assert!(keep.iter().enumerate().all(|(i, g)| **g == i as u64));
        // The helper announces itself shortly after the collector starts.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while !has_thread("oohgc-marker") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        eprintln!("MARKER={}", has_thread("oohgc-marker"));
        return;
    }
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    for (value, expected) in [("0", false), ("1", two_cpus)] {
        let (ok, err) = child_stderr(
            "parallel_mark_setting_starts_or_skips_the_marker_thread",
            &[("OOHGC_PARALLEL_MARK", value), ("OOHGC_DIRTY", "none")],
        );
        assert!(ok, "{err}");
        assert!(
            err.contains(&format!("MARKER={expected}")),
            "OOHGC_PARALLEL_MARK={value}: expected MARKER={expected}: {err}"
        );
    }
}
