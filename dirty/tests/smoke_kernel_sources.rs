//! Basic track / arm / write / harvest round trips on the kernel sources.

mod common;

use common::{addrs, harvest_pages, Mapping};
use oohgc_dirty::DirtySource;

fn round_trip(source: &dyn DirtySource) {
    let m = Mapping::new(64);
    // Touch some pages before tracking (populated and unpopulated mix).
    for i in 0..32 {
        m.write(i, 1);
    }
    source.track(m.range).unwrap();
    source.arm().unwrap();
    assert!(
        harvest_pages(source).is_empty(),
        "{}: nothing written yet",
        source.name()
    );
    for i in [0, 5, 31, 32, 40, 63] {
        m.write(i, 2);
    }
    assert_eq!(
        harvest_pages(source),
        addrs(&m, &[0, 5, 31, 32, 40, 63]),
        "{}",
        source.name()
    );
    assert!(
        harvest_pages(source).is_empty(),
        "{}: harvest re-arms",
        source.name()
    );
    m.write(5, 3);
    assert_eq!(harvest_pages(source), addrs(&m, &[5]), "{}", source.name());
    let c = source.counters();
    assert_eq!(c.harvests, 4);
    assert_eq!(c.pages_reported, 7);
    source.untrack(m.range).unwrap();
}

#[test]
fn pagemap_scan_round_trip() {
    let s = oohgc_dirty::pagemap_scan::PagemapScanSource::open().unwrap();
    round_trip(&s);
}

#[test]
fn uffd_round_trip() {
    let s = oohgc_dirty::uffd::UffdSource::open().unwrap();
    round_trip(&s);
    assert_eq!(s.counters().write_traps, 7);
}

#[test]
fn mprotect_round_trip() {
    let s = oohgc_dirty::mprotect::MprotectSource::open().unwrap();
    round_trip(&s);
    assert_eq!(s.counters().write_traps, 7);
}

#[test]
fn card_round_trip() {
    let s = oohgc_dirty::card::CardSource::open().unwrap();
    let m = Mapping::new(64);
    s.track(m.range).unwrap();
    s.arm().unwrap();
    assert!(harvest_pages(&s).is_empty());
    for i in [0, 5, 31, 32, 40, 63] {
        m.write(i, 2);
        oohgc_dirty::card::write_barrier(m.page(i) + 8);
    }
    m.write(7, 1); // no barrier: not seen, by design
    assert_eq!(harvest_pages(&s), addrs(&m, &[0, 5, 31, 32, 40, 63]));
    assert!(harvest_pages(&s).is_empty());
    s.untrack(m.range).unwrap();
}

#[test]
fn none_reports_everything() {
    let s = oohgc_dirty::none::NoneSource::new();
    let m = Mapping::new(8);
    s.track(m.range).unwrap();
    s.arm().unwrap();
    assert_eq!(harvest_pages(&s).len(), 8);
    assert_eq!(harvest_pages(&s).len(), 8);
    assert_eq!(s.counters().pages_reported, 16);
}

/// disarm / write / arm starts a fresh epoch under both pagemap-scan policies.
#[test]
fn pagemap_scan_disarm_policies_start_fresh_epochs() {
    use oohgc_dirty::pagemap_scan::{DisarmPolicy, PagemapScanSource};
    for policy in [DisarmPolicy::Unprotect, DisarmPolicy::KeepProtected] {
        let s = PagemapScanSource::with_disarm_policy(policy).unwrap();
        let m = Mapping::new(16);
        for i in 0..16 {
            m.write(i, 1);
        }
        s.track(m.range).unwrap();
        s.arm().unwrap();
        m.write(3, 2);
        s.disarm().unwrap();
        m.write(4, 2);
        m.write(5, 2);
        s.arm().unwrap();
        assert!(
            harvest_pages(&s).is_empty(),
            "{policy:?}: arm cleans every page"
        );
        m.write(5, 3);
        m.write(15, 3);
        assert_eq!(harvest_pages(&s), addrs(&m, &[5, 15]), "{policy:?}");
    }
}

/// Many scattered dirty runs make the mprotect harvest re-protect the
/// whole range in one call; the result must be the same.
#[test]
fn mprotect_whole_range_reprotect_keeps_tracking_exact() {
    let s = oohgc_dirty::mprotect::MprotectSource::open().unwrap();
    let m = Mapping::new(400);
    s.track(m.range).unwrap();
    s.arm().unwrap();
    let scattered: Vec<usize> = (0..400).step_by(4).collect();
    for &i in &scattered {
        m.write(i, 1);
    }
    assert_eq!(harvest_pages(&s), addrs(&m, &scattered));
    let mut whole = 0;
    s.for_each_counter(&mut |n, v| {
        if n == "whole_range_reprotects" {
            whole = v
        }
    });
    assert_eq!(whole, 1, "100 runs in 400 pages is past the threshold");
    assert!(harvest_pages(&s).is_empty());
    for &i in &scattered[..3] {
        m.write(i + 1, 2);
    }
    assert_eq!(harvest_pages(&s), addrs(&m, &[1, 5, 9]));
}

/// The card table covers the 47-bit user address space and says so.
#[test]
fn card_refuses_ranges_above_the_table() {
    let s = oohgc_dirty::card::CardSource::open().unwrap();
    let high = oohgc_dirty::PageRange::new(1 << 47, 4096).unwrap();
    match s.track(high) {
        Err(oohgc_dirty::DirtyError::BadRange { what, .. }) => {
            assert!(what.contains("47-bit"), "{what}")
        }
        other => panic!("tracking above the table gave {other:?}"),
    }
    // The barrier ignores such addresses instead of writing out of bounds.
    oohgc_dirty::card::write_barrier(usize::MAX - 7);
}
