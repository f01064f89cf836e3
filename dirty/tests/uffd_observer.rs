//! The `uffd` fault observer (the hook the PML model's `sync` engine
//! uses): called once per first write to a tracked page, in fault order,
//! before the writer is woken.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::Mapping;
use oohgc_dirty::uffd::UffdSource;
use oohgc_dirty::DirtySource;

const MAX_EVENTS: usize = 256;
static EVENTS: [AtomicUsize; MAX_EVENTS] = [const { AtomicUsize::new(0) }; MAX_EVENTS];
/// What the page held when the observer saw the fault.
static SEEN_VALUES: [AtomicUsize; MAX_EVENTS] = [const { AtomicUsize::new(0) }; MAX_EVENTS];
static COUNT: AtomicUsize = AtomicUsize::new(0);
static CONTEXT: AtomicUsize = AtomicUsize::new(0);

fn observe(page_addr: usize, ctx: usize) {
    let i = COUNT.fetch_add(1, Ordering::SeqCst);
    CONTEXT.store(ctx, Ordering::SeqCst);
    if i < MAX_EVENTS {
        EVENTS[i].store(page_addr, Ordering::SeqCst);
        // SAFETY: the page is mapped and readable; the writer is blocked.
        let v = unsafe { std::ptr::read_volatile(page_addr as *const u64) };
        SEEN_VALUES[i].store(v as usize, Ordering::SeqCst);
    }
}

#[test]
fn observer_sees_first_writes_in_order_before_the_writer_resumes() {
    let source = UffdSource::with_fault_observer(observe, 0x5EED).unwrap();
    let m = Mapping::new(64);
    source.track(m.range).unwrap();
    source.arm().unwrap();
    let order = [7usize, 3, 63, 0, 31, 32, 8];
    for &i in &order {
        // SAFETY: aligned word at the start of a page of our mapping.
        unsafe { std::ptr::write_volatile(m.page(i) as *mut u64, 0xAAAA) };
        // Second write to the same page: no second event.
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile((m.page(i) + 8) as *mut u64, 0xBBBB) };
    }
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        order.len(),
        "one event per first write"
    );
    assert_eq!(CONTEXT.load(Ordering::SeqCst), 0x5EED);
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(
            EVENTS[k].load(Ordering::SeqCst),
            m.page(i),
            "event {k} out of order"
        );
        assert_eq!(
            SEEN_VALUES[k].load(Ordering::SeqCst),
            0,
            "the observer ran after the write landed"
        );
    }
    assert_eq!(source.counters().write_traps, order.len() as u64);
    // After a harvest the pages are clean again: new first writes, new events.
    let mut reported = 0;
    source.harvest(&mut |r| reported += r.pages()).unwrap();
    assert_eq!(reported, order.len());
    // SAFETY: as above.
    unsafe { std::ptr::write_volatile(m.page(3) as *mut u64, 0xCCCC) };
    assert_eq!(COUNT.load(Ordering::SeqCst), order.len() + 1);
    assert_eq!(EVENTS[order.len()].load(Ordering::SeqCst), m.page(3));
    assert_eq!(SEEN_VALUES[order.len()].load(Ordering::SeqCst), 0xAAAA);
}

/// A harvest's sink may write tracked memory (the uffd lock is not held
/// while it runs): no deadlock, and the write is reported next time.
#[test]
fn harvest_sink_may_write_tracked_memory() {
    let source = UffdSource::open().unwrap();
    let m = Mapping::new(8);
    source.track(m.range).unwrap();
    source.arm().unwrap();
    m.write(1, 1);
    let mut reported = Vec::new();
    source
        .harvest(&mut |r| {
            reported.push(r.start);
            m.write(5, 2); // a protected page: faults, handled meanwhile
        })
        .unwrap();
    assert_eq!(reported, [m.page(1)]);
    let mut next = Vec::new();
    source.harvest(&mut |r| next.push(r.start)).unwrap();
    assert_eq!(next, [m.page(5)]);
}
