//! A program that uses `Gc` without `#[global_allocator] GcAllocator` (the
//! one line forgotten, or declared in a crate that is not linked) keeps its
//! `Gc`s in `malloc` memory, which the collector never scans: every object
//! held only by a `Vec` would be freed while in use. It must be refused with
//! a message naming the fix, never corrupt anything silently.
//!
//! This binary deliberately declares no global allocator.

mod common;

use oohgc::Gc;

/// The shape the problem was found in: 100,000 `Gc`s in a `Vec`, cycles
/// with garbage in between, then every object checked.
fn keep_gcs_in_a_vec() -> usize {
    let v: Vec<Gc<[u64; 4]>> = (0..100_000u64).map(|i| Gc::new([i; 4])).collect();
    for _ in 0..5 {
        common::churn(4);
        oohgc::collect();
    }
    v.iter()
        .enumerate()
        .filter(|(i, g)| ***g != [*i as u64; 4])
        .count()
}

#[test]
fn gc_without_the_global_allocator_is_refused() {
    let refused = std::panic::catch_unwind(keep_gcs_in_a_vec)
        .expect_err("Gc::new must refuse to run without GcAllocator as the global allocator");
    let msg = refused
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        msg.contains("#[global_allocator] static GC: oohgc::GcAllocator = oohgc::GcAllocator;"),
        "the refusal must name the fix: {msg}"
    );
    // And it keeps refusing: no Gc slips through after the first refusal.
    assert!(std::panic::catch_unwind(|| Gc::new(1u64)).is_err());
    let e = oohgc::init().expect_err("init must refuse too");
    assert_eq!(e, oohgc::InitError::NoGlobalAllocator);
    assert!(e.to_string().contains("GcAllocator"), "{e}");
}

#[test]
fn opting_out_is_explicit_and_then_allowed() {
    if !common::is_child() {
        let out = common::run_in_child(
            "opting_out_is_explicit_and_then_allowed",
            &[("OOHGC_REQUIRE_GLOBAL_ALLOCATOR", "0")],
        );
        common::assert_child_ok(&out);
        return;
    }
    // Gc objects kept only inside other Gc objects and on the stack are
    // safe without the global allocator: the program said so explicitly.
    let root = Gc::new([Gc::new(7u64), Gc::new(8u64)]);
    for _ in 0..3 {
        common::churn(2);
        oohgc::collect();
    }
    assert_eq!((*root[0], *root[1]), (7, 8));
    oohgc::init().expect("init is allowed once the program opted out");
}
