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
        ("OOHGC_COLLECTOR", "maybe", "on or off"),
        ("OOHGC_FREE_SPACE_DIVISOR", "0", "1 to 100"),
        ("OOHGC_INITIAL_HEAP", "-3", "K, M, G or T"),
        ("OOHGC_SUSPEND_SIGNAL", "SIGSEGV", "signal number or name"),
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
