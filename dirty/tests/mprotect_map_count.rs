//! `mprotect` and `vm.max_map_count`: scattered first writes split the
//! tracked mapping into one VMA per writable page, until `mprotect` fails
//! with ENOMEM. The source must then make the whole range writable again
//! (merging it back), report every page at the next harvest (no false
//! negative), and keep working.
//!
//! Its own test binary: exhausting the map count makes any `mmap` of the
//! process fail meanwhile, which would disturb other tests.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::DirtySource;

fn counter(source: &dyn DirtySource, name: &str) -> u64 {
    let mut value = None;
    source.for_each_counter(&mut |n, v| {
        if n == name {
            value = Some(v)
        }
    });
    value.unwrap_or_else(|| panic!("no counter {name}"))
}

fn max_map_count() -> usize {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn scattered_writes_degrade_safely_at_max_map_count() {
    let limit = max_map_count();
    // Every other page written: each write adds two mappings.
    let pages = limit * 2 + 4096;
    let source = oohgc_dirty::open("mprotect").unwrap();
    let m = Mapping::new(pages);
    source.track(m.range).unwrap();
    source.arm().unwrap();
    let mut written = Vec::new();
    let mut i = 0;
    while i < pages && counter(&*source, "degraded_ranges") == 0 {
        m.write(i, 1);
        written.push(m.page(i));
        i += 2;
    }
    assert_eq!(
        counter(&*source, "degraded_ranges"),
        1,
        "{} scattered writes with vm.max_map_count = {limit} did not hit ENOMEM",
        written.len()
    );
    println!(
        "degraded after {} scattered first writes (vm.max_map_count = {limit})",
        written.len()
    );
    // Degraded: the range is writable; later writes need no fault.
    let traps = source.counters().write_traps;
    m.write(i + 1, 1);
    written.push(m.page(i + 1));
    assert_eq!(
        source.counters().write_traps,
        traps,
        "degraded range is writable"
    );
    // Mappings merged back: the process can map memory again.
    drop(Mapping::new(1));

    let got = harvest_pages(&*source);
    assert_eq!(got.len(), pages, "a degraded range is reported whole");
    assert!(written.iter().all(|p| got.contains(p)));
    assert_eq!(
        counter(&*source, "degraded_ranges"),
        0,
        "the harvest re-protected it"
    );
    // Working normally again.
    m.write(5, 2);
    m.write(pages - 1, 2);
    assert_eq!(harvest_pages(&*source), common::addrs(&m, &[5, pages - 1]));
    source.untrack(m.range).unwrap();
}
