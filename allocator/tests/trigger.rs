//! The collection trigger's two thresholds (`set_budget_range`): past the
//! floor the hook fires only once the page pool has no resident free page
//! left (going on would raise the heap's RSS), and at the cap in any case;
//! `set_budget` fires at its one threshold whatever the pool holds.

use oohgc_allocator::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const MIB: usize = 1 << 20;

/// `allocated_since_reset()` when the hook last fired (0: not since reset).
static FIRED_AT: AtomicUsize = AtomicUsize::new(0);

fn on_budget() {
    FIRED_AT.store(allocated_since_reset(), Ordering::SeqCst);
}

fn on_oom(_bytes: usize) -> bool {
    false
}

/// Allocate 256-byte objects until the hook fires or `limit` bytes are
/// allocated; returns where it fired (None if it did not).
fn allocate_until_fired(limit: usize, keep: &mut Vec<usize>) -> Option<usize> {
    FIRED_AT.store(0, Ordering::SeqCst);
    let mut bytes = 0;
    while bytes < limit {
        let p = alloc(256, 16, ObjectKind::Managed);
        assert!(!p.is_null(), "out of memory after {bytes} bytes");
        keep.push(p as usize);
        bytes += 256;
        let at = FIRED_AT.load(Ordering::SeqCst);
        if at != 0 {
            return Some(at);
        }
    }
    None
}

#[test]
fn floor_waits_for_a_dry_pool_and_the_cap_does_not() {
    set_hooks(Hooks {
        budget_exceeded: on_budget,
        out_of_memory: on_oom,
    });
    init(HeapConfig {
        max_heap: 256 * MIB,
        reserve: 1 << 30,
    })
    .unwrap();
    let mut keep = Vec::new();

    // A pool of fresh pages only: nothing resident to use up, so the hook
    // fires as soon as the floor is passed.
    reset_allocation_counter();
    set_budget_range(MIB, 8 * MIB);
    let at = allocate_until_fired(16 * MIB, &mut keep).expect("the hook never fired");
    assert!(
        (MIB..2 * MIB).contains(&at),
        "fired at {at} bytes with no resident page pooled; the floor is {MIB}"
    );

    // 6 MiB of large objects, touched and freed: their pages go back to
    // the pool, resident. Past the floor, the allocation uses them before
    // the hook fires.
    let large: Vec<*mut u8> = (0..24)
        .map(|_| {
            let p = alloc(256 << 10, 16, ObjectKind::Manual);
            assert!(!p.is_null());
            // SAFETY: a fresh 256 KiB object.
            unsafe { std::ptr::write_bytes(p, 0xa5, 256 << 10) };
            p
        })
        .collect();
    for p in large {
        // SAFETY: allocated above, freed once.
        unsafe { free(p) };
    }
    reset_allocation_counter();
    set_budget_range(MIB, 16 * MIB);
    let at = allocate_until_fired(32 * MIB, &mut keep).expect("the hook never fired");
    assert!(
        (4 * MIB..9 * MIB).contains(&at),
        "fired at {at} bytes with 6 MiB of resident pages pooled (floor 1 MiB, cap 16 MiB)"
    );

    // The cap holds even with resident pages pooled.
    let large: Vec<*mut u8> = (0..24)
        .map(|_| alloc(256 << 10, 16, ObjectKind::Manual))
        .collect();
    for p in large {
        assert!(!p.is_null());
        // SAFETY: a fresh 256 KiB object.
        unsafe { std::ptr::write_bytes(p, 0x5a, 256 << 10) };
        // SAFETY: allocated just above, freed once.
        unsafe { free(p) };
    }
    reset_allocation_counter();
    set_budget_range(MIB, 2 * MIB);
    let at = allocate_until_fired(32 * MIB, &mut keep).expect("the hook never fired");
    assert!(
        (2 * MIB..3 * MIB).contains(&at),
        "fired at {at} bytes; the cap is {} bytes",
        2 * MIB
    );

    // A single threshold fires there whatever the pool holds.
    reset_allocation_counter();
    set_budget(MIB);
    let at = allocate_until_fired(32 * MIB, &mut keep).expect("the hook never fired");
    assert!(
        (MIB..2 * MIB).contains(&at),
        "set_budget({MIB}) fired at {at} bytes"
    );
}
