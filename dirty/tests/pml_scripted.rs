//! A scripted write pattern through the real `epml`/`spml` sources: the
//! modelled events equal hand-computed counts, and the cost model's output
//! equals a hand computation from the unit-cost table. Also the SPML ring
//! under a lagging guest: IRQs raised, the vCPU held exited, no entry lost.

mod common;
use common::map_pages;
use oohgc_dirty::pml::cost::{unit_costs, Event};
use oohgc_dirty::pml::{Engine, Mode, PmlConfig, PmlSource};
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};

fn write_pages(base: usize, pages: std::ops::Range<usize>) {
    for p in pages {
        // SAFETY: pages inside the test's mapping.
        unsafe { ((base + p * PAGE_SIZE + 8) as *mut u8).write_volatile(7) };
    }
}

fn harvest_count(src: &dyn DirtySource) -> usize {
    let mut n = 0;
    src.harvest(&mut |r| n += r.pages()).unwrap();
    n
}

/// 1400 tracked pages. Phase 1: pages 0..800, then 0..100 again;
/// schedule-out / schedule-in. Phase 2: 800..1300 and 200..300 again;
/// harvest 1 (1300 distinct pages). Phase 3: 0..50; harvest 2.
fn run_script(mode: Mode, engine: Engine) -> PmlSource {
    let src = PmlSource::open(mode, engine, PmlConfig::default()).unwrap();
    let base = map_pages(1400);
    src.track(PageRange::new(base, 1400 * PAGE_SIZE).unwrap())
        .unwrap();
    src.arm().unwrap();
    write_pages(base, 0..800);
    write_pages(base, 0..100);
    src.schedule_out().unwrap();
    src.schedule_in();
    write_pages(base, 800..1300);
    write_pages(base, 200..300);
    assert_eq!(harvest_count(&src), 1300, "{mode:?}/{engine:?}: harvest 1");
    write_pages(base, 0..50);
    assert_eq!(harvest_count(&src), 50, "{mode:?}/{engine:?}: harvest 2");
    src
}

fn check_counts(mode: Mode, engine: Engine, expected: &[(Event, u64)]) {
    let src = run_script(mode, engine);
    let counts = src.event_counts();
    for &(event, n) in expected {
        assert_eq!(
            counts.get(event),
            n,
            "{mode:?}/{engine:?}: {}",
            event.name()
        );
    }
    // Every event not listed stayed zero.
    for e in oohgc_dirty::pml::cost::ALL_EVENTS {
        if !expected.iter().any(|&(x, _)| x == e) {
            assert_eq!(
                counts.get(e),
                0,
                "{mode:?}/{engine:?}: {} should not happen",
                e.name()
            );
        }
    }
    // The cost model, by hand from the table: sum of count * figure / per.
    let table = unit_costs(mode);
    let by_hand: u64 = expected
        .iter()
        .map(|&(e, n)| {
            let row = table[e as usize];
            assert_eq!(row.event, e);
            (n as u128 * row.figure_ns as u128 / row.per as u128) as u64
        })
        .sum();
    let report = src.cost_report();
    assert_eq!(report.modelled_total_ns(), by_hand);
    let mut total = 0;
    src.for_each_counter(&mut |name, v| {
        if name == "pml_total_modelled_ns" {
            total = v;
        }
    });
    assert_eq!(total, by_hand);
    let text = report.to_string();
    assert!(
        text.contains("MEASURED") && text.contains("MODELLED"),
        "{text}"
    );
}

/// EPML by hand: 800 + 500 + 50 entries; one self-IPI at the 512th;
/// vmwrites: 3 at arm, 1 per self-IPI, 2 at schedule-out (index, disable),
/// 1 at schedule-in, 1 per harvest flush; vmreads: 1 per flush
/// (schedule-out, two harvests); 1350 flags cleared.
fn epml_expected() -> Vec<(Event, u64)> {
    vec![
        (Event::HypercallInitPml, 1),
        (Event::EntriesLogged, 1350),
        (Event::SelfIpis, 1),
        (Event::GuestEntriesDrained, 1350),
        (Event::Vmreads, 3),
        (Event::Vmwrites, 3 + 1 + 2 + 1 + 1 + 1),
        (Event::ContextSwitches, 1),
        (Event::DirtyFlagClears, 1350),
    ]
}

/// SPML by hand: one log-full exit (512 copied), schedule-out copies 288,
/// harvest 1 flushes 500 (ring 1300 of 4096: never soft full), harvest 2
/// flushes 50; the guest fetches all and resets once per harvest; pagemap
/// walked at track and at each harvest (3 x 1400); one lookup per entry.
fn spml_expected() -> Vec<(Event, u64)> {
    vec![
        (Event::HypercallInitPml, 1),
        (Event::HypercallEnableLogging, 1),
        (Event::EntriesLogged, 1350),
        (Event::LogFullExits, 1),
        (Event::RingEntriesCopied, 1350),
        (Event::RingEntriesFetched, 1350),
        (Event::HypercallScheduleOut, 1),
        (Event::HypercallScheduleIn, 1),
        (Event::HypercallFlush, 2),
        (Event::HypercallRingReset, 2),
        (Event::ReverseMapLookups, 1350),
        (Event::PagemapPagesWalked, 3 * 1400),
        (Event::ContextSwitches, 1),
        (Event::DirtyFlagClears, 1350),
    ]
}

#[test]
fn epml_async_counts_match_hand_computation() {
    check_counts(Mode::Epml, Engine::Async, &epml_expected());
}

#[test]
fn epml_sync_counts_match_hand_computation() {
    check_counts(Mode::Epml, Engine::Sync, &epml_expected());
}

#[test]
fn spml_async_counts_match_hand_computation() {
    check_counts(Mode::Spml, Engine::Async, &spml_expected());
}

#[test]
fn spml_sync_counts_match_hand_computation() {
    check_counts(Mode::Spml, Engine::Sync, &spml_expected());
}

/// The cost of the EPML script written out with the published figures.
#[test]
fn epml_cost_by_hand_from_published_figures() {
    let src = run_script(Mode::Epml, Engine::Async);
    let ipi = unit_costs(Mode::Epml)[Event::SelfIpis as usize].figure_ns;
    let by_hand = 5_878_000 // init PML, Table IVa (EPML)
        + 1350 * 671_000 / 262_144 // drained entries at the ring-copy rate, Table IVb
        + 3 * 936 // vmread, Table IVa
        + 9 * 801 // vmwrite, Table IVa
        + 315 // context switch, Table IVa
        + 1350 * 2_234_000 / 262_144 // clear_refs per page, Table IVb
        + ipi; // one self-IPI
    assert_eq!(src.cost_report().modelled_total_ns(), by_hand);
}

/// A lagging SPML guest: IRQs are raised when the ring fills, the vCPU is
/// held exited when a flush does not fit, entries are reset and reused,
/// and the harvest still reports every page.
#[test]
fn lagging_guest_loses_no_entry() {
    for engine in [Engine::Async, Engine::Sync] {
        let config = PmlConfig {
            ring_entries: 1024,
            guest_lags: true,
        };
        let src = PmlSource::open(Mode::Spml, engine, config).unwrap();
        let base = map_pages(3000);
        src.track(PageRange::new(base, 3000 * PAGE_SIZE).unwrap())
            .unwrap();
        src.arm().unwrap();
        write_pages(base, 0..3000);
        if engine == Engine::Async {
            // A flush point: the batch reaches the hardware model now.
            src.schedule_out().unwrap();
            src.schedule_in();
        }
        let c = src.event_counts();
        // Exits 1 and 2 fill the ring (IRQ each, ignored); exit 3 stalls.
        assert_eq!(c.get(Event::LogFullExits), 3, "{engine:?}");
        assert_eq!(c.get(Event::VirtualIrqs), 2, "{engine:?}");
        assert_eq!(c.get(Event::RingFullStalls), 1, "{engine:?}");
        assert_eq!(c.get(Event::RingEntriesCopied), 1024, "{engine:?}");
        assert_eq!(
            c.get(Event::RingEntriesFetched),
            0,
            "{engine:?}: the guest lags"
        );
        assert_eq!(harvest_count(&src), 3000, "{engine:?}: every page reported");
        let c = src.event_counts();
        assert_eq!(c.get(Event::EntriesLogged), 3000);
        assert_eq!(
            c.get(Event::RingEntriesCopied),
            3000,
            "entries reused past the ring size"
        );
        assert_eq!(c.get(Event::RingEntriesFetched), 3000);
        assert_eq!(c.get(Event::ReverseMapLookups), 3000);
    }
}

/// With a guest that keeps up, a soft-full ring raises the IRQ and the
/// guest drains it at once: no stall.
#[test]
fn full_ring_raises_irq_and_guest_drains() {
    let config = PmlConfig {
        ring_entries: 1024,
        guest_lags: false,
    };
    let src = PmlSource::open(Mode::Spml, Engine::Async, config).unwrap();
    let base = map_pages(2048);
    src.track(PageRange::new(base, 2048 * PAGE_SIZE).unwrap())
        .unwrap();
    src.arm().unwrap();
    write_pages(base, 0..2048);
    assert_eq!(harvest_count(&src), 2048);
    let c = src.event_counts();
    assert_eq!(c.get(Event::LogFullExits), 4);
    // After each exit the ring holds 512 (> 1024 - 576): IRQ, drain, reset.
    assert_eq!(c.get(Event::VirtualIrqs), 4);
    assert_eq!(c.get(Event::RingFullStalls), 0);
    assert_eq!(c.get(Event::HypercallRingReset), 4 + 1);
}
