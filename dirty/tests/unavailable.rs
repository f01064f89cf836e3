//! Refusals: soft-dirty on a kernel without it, unknown names, and the
//! "best available" fallback reporting what it skipped.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::{DirtyError, SOURCE_NAMES};

#[test]
fn soft_dirty_is_refused_exactly_when_the_kernel_lacks_it() {
    match oohgc_dirty::open("soft-dirty") {
        Err(DirtyError::Unavailable { source, reason }) => {
            assert_eq!(source, "soft-dirty");
            assert!(reason.contains("CONFIG_MEM_SOFT_DIRTY"), "{reason}");
            assert!(reason.contains("bit 55"), "{reason}");
            assert_eq!(
                oohgc_dirty::probe("soft-dirty"),
                Err(DirtyError::Unavailable { source, reason })
            );
            println!(
                "soft-dirty refused: {}",
                oohgc_dirty::probe("soft-dirty").unwrap_err()
            );
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(s) => {
            // A kernel with CONFIG_MEM_SOFT_DIRTY: the source must work.
            let m = Mapping::new(8);
            s.track(m.range).unwrap();
            s.arm().unwrap();
            m.write(4, 1);
            assert_eq!(harvest_pages(&*s), common::addrs(&m, &[4]));
        }
    }
}

#[test]
fn unknown_names_list_the_valid_ones() {
    for bad in ["", "PAGEMAP-SCAN", "softdirty", "epml "] {
        let e = oohgc_dirty::open(bad).err().unwrap();
        assert_eq!(e, DirtyError::UnknownSource { name: bad.into() });
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("unknown dirty source {bad:?}")),
            "{msg}"
        );
        assert!(msg.contains("pagemap-scan, uffd, mprotect"), "{msg}");
        assert!(oohgc_dirty::probe(bad).is_err());
    }
}

#[test]
fn probe_agrees_with_open() {
    for name in SOURCE_NAMES {
        let probed = oohgc_dirty::probe(name);
        let opened = oohgc_dirty::open(name).map(drop);
        assert_eq!(
            probed.is_ok(),
            opened.is_ok(),
            "{name}: probe {probed:?} vs open {opened:?}"
        );
    }
}

#[test]
fn open_best_takes_the_first_that_opens_and_reports_the_rest() {
    let (source, refusals) = oohgc_dirty::open_best();
    let order: Vec<&str> = SOURCE_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "card")
        .collect();
    let chosen = order
        .iter()
        .position(|n| *n == source.name())
        .expect("a listed source");
    assert_eq!(
        refusals.len(),
        chosen,
        "one refusal per skipped source: {refusals:?}"
    );
    for (e, name) in refusals.iter().zip(&order) {
        match e {
            DirtyError::Unavailable { source, .. } => assert_eq!(source, name),
            other => panic!("unexpected refusal {other:?}"),
        }
    }
    // On this machine pagemap-scan works, so nothing below it is chosen.
    assert!(chosen <= order.iter().position(|n| *n == "pagemap-scan").unwrap());
    println!(
        "open_best chose {} after {} refusals",
        source.name(),
        refusals.len()
    );
}
