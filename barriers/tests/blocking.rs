//! Blocking regions: a thread sleeping in a system call inside
//! `enter_blocking()` is not signalled, its stack is still reported (from the
//! stack pointer recorded at entry), and leaving the region while the world
//! is stopped waits for the restart.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: a stop by one test could race
/// with another test's thread entering its blocking region (a thread entering
/// a region while a stop is being set up may legitimately be signalled once).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn range_holds(lo: usize, hi: usize, value: usize) -> bool {
    let mut addr = (lo + 7) & !7;
    while addr + 8 <= hi {
        // SAFETY: a reported stack range of a live thread: mapped memory.
        if unsafe { std::ptr::read_volatile(addr as *const usize) } == value {
            return true;
        }
        addr += 8;
    }
    false
}

fn wait_for(flag: &AtomicI32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = flag.load(Ordering::Acquire);
        if v != 0 {
            return v;
        }
        assert!(Instant::now() < deadline, "helper thread never started");
        std::thread::yield_now();
    }
}

#[test]
fn thread_in_blocking_region_is_not_signalled_but_reported() {
    let _serial = serial();
    oohgc_barriers::init(Default::default()).unwrap();
    const SENTINEL: usize = 0x5EED_B10C_0000_0001;
    let started = Arc::new(AtomicI32::new(0));
    let suspensions_in_region = Arc::new(AtomicU64::new(u64::MAX));
    let handle = {
        let (started, suspensions_in_region) = (started.clone(), suspensions_in_region.clone());
        std::thread::spawn(move || {
            let local = std::hint::black_box([SENTINEL ^ 1, 0]);
            let local = std::hint::black_box([local[0] ^ 1, 0]);
            let before = oohgc_barriers::current_thread_suspensions();
            let signals_before = oohgc_barriers::current_thread_suspend_signals();
            let guard = oohgc_barriers::enter_blocking();
            started.store(tid(), Ordering::Release);
            std::thread::sleep(Duration::from_millis(400));
            let during = oohgc_barriers::current_thread_suspensions() - before
                + oohgc_barriers::current_thread_suspend_signals()
                - signals_before;
            drop(guard);
            suspensions_in_region.store(during, Ordering::Release);
            std::hint::black_box(&local);
        })
    };
    let target = wait_for(&started);
    for round in 0..20 {
        let world = oohgc_barriers::stop_world();
        let mut seen = None;
        world.for_each_thread(&mut |roots| {
            if roots.tid == target {
                seen = Some((
                    roots.in_blocking_region,
                    range_holds(roots.stack.0, roots.stack.1, SENTINEL),
                ));
            }
        });
        drop(world);
        assert_eq!(
            seen,
            Some((true, true)),
            "round {round}: blocking thread not reported as (in_blocking_region, stack holds its local)"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join().unwrap();
    assert_eq!(
        suspensions_in_region.load(Ordering::Acquire),
        0,
        "the thread in the blocking region received suspend signals"
    );
}

#[test]
fn leaving_a_blocking_region_during_a_stop_waits_for_restart() {
    let _serial = serial();
    oohgc_barriers::init(Default::default()).unwrap();
    let started = Arc::new(AtomicI32::new(0));
    let left = Arc::new(AtomicBool::new(false));
    let handle = {
        let (started, left) = (started.clone(), left.clone());
        std::thread::spawn(move || {
            let guard = oohgc_barriers::enter_blocking();
            started.store(tid(), Ordering::Release);
            std::thread::sleep(Duration::from_millis(50));
            drop(guard);
            left.store(true, Ordering::Release);
        })
    };
    wait_for(&started);
    let world = oohgc_barriers::stop_world();
    // The thread wakes after 50 ms and tries to leave; it must not get out
    // while the world is stopped.
    std::thread::sleep(Duration::from_millis(300));
    let left_while_stopped = left.load(Ordering::Acquire);
    drop(world);
    assert!(
        !left_while_stopped,
        "the thread left its blocking region while the world was stopped"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !left.load(Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "the thread did not leave after the restart"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    handle.join().unwrap();
}

#[test]
fn nested_blocking_regions_end_with_the_outermost() {
    let _serial = serial();
    oohgc_barriers::init(Default::default()).unwrap();
    let started = Arc::new(AtomicI32::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let handle = {
        let (started, release) = (started.clone(), release.clone());
        std::thread::spawn(move || {
            let outer = oohgc_barriers::enter_blocking();
            drop(oohgc_barriers::enter_blocking());
            started.store(tid(), Ordering::Release);
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(outer);
        })
    };
    let target = wait_for(&started);
    let world = oohgc_barriers::stop_world();
    let mut blocking = None;
    world.for_each_thread(&mut |roots| {
        if roots.tid == target {
            blocking = Some(roots.in_blocking_region);
        }
    });
    drop(world);
    release.store(true, Ordering::Release);
    handle.join().unwrap();
    assert_eq!(
        blocking,
        Some(true),
        "dropping an inner guard ended the outer region"
    );
}

#[test]
fn stopper_and_excluded_threads_leave_blocking_regions_without_waiting() {
    let _serial = serial();
    oohgc_barriers::init(Default::default()).unwrap();
    // Register first: registration may use glibc's malloc, which a stopped
    // thread could hold.
    oohgc_barriers::register_current_thread();
    // The stopper itself: leaving while it holds the world must not wait for
    // its own restart.
    let world = oohgc_barriers::stop_world();
    drop(oohgc_barriers::enter_blocking());
    drop(world);
    // An excluded thread is never stopped, so it never waits either.
    let go = Arc::new(AtomicBool::new(false));
    let excluded = Arc::new(AtomicI32::new(0));
    let excluded_left = Arc::new(AtomicBool::new(false));
    let handle = {
        let (go, excluded, excluded_left) = (go.clone(), excluded.clone(), excluded_left.clone());
        std::thread::spawn(move || {
            oohgc_barriers::exclude_current_thread();
            excluded.store(tid(), Ordering::Release);
            while !go.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            drop(oohgc_barriers::enter_blocking());
            excluded_left.store(true, Ordering::Release);
        })
    };
    wait_for(&excluded);
    let world = oohgc_barriers::stop_world();
    go.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = false;
    while !left && Instant::now() < deadline {
        left = excluded_left.load(Ordering::Acquire);
        std::hint::spin_loop();
    }
    drop(world);
    handle.join().unwrap();
    assert!(left, "an excluded thread waited for the restart");
}
