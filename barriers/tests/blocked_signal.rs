//! A thread that never registered and blocks every signal (like a foreign
//! fault-handler thread) can never acknowledge: the first stop gives it up
//! after the documented bound, later stops give it up at once, it is never
//! reported, and everything else is still stopped.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[test]
fn thread_blocking_the_suspend_signal_is_given_up_then_skipped() {
    oohgc_barriers::init(Default::default()).unwrap();
    let blocker_tid = Arc::new(AtomicI32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let blocker = {
        let (blocker_tid, done) = (blocker_tid.clone(), done.clone());
        std::thread::spawn(move || {
            // SAFETY: blocking all signals of this thread only.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
            }
            blocker_tid.store(tid(), Ordering::Release);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let worker_tid = Arc::new(AtomicI32::new(0));
    let worker = {
        let (worker_tid, done) = (worker_tid.clone(), done.clone());
        std::thread::spawn(move || {
            worker_tid.store(tid(), Ordering::Release);
            while !done.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    };
    while blocker_tid.load(Ordering::Acquire) == 0 || worker_tid.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let (blocker_tid, worker_tid) = (
        blocker_tid.load(Ordering::Acquire),
        worker_tid.load(Ordering::Acquire),
    );

    let mut stats = Vec::new();
    for round in 0..3 {
        let world = oohgc_barriers::stop_world();
        let mut seen_blocker = false;
        let mut seen_worker = false;
        world.for_each_thread(&mut |roots| {
            seen_blocker |= roots.tid == blocker_tid;
            seen_worker |= roots.tid == worker_tid;
        });
        stats.push(world.stats());
        drop(world);
        assert!(
            !seen_blocker,
            "round {round}: a thread that never stopped was reported"
        );
        assert!(
            seen_worker,
            "round {round}: the ordinary thread was not stopped"
        );
    }
    assert!(
        stats[0].stop_ns >= oohgc_barriers::UNREGISTERED_GIVE_UP_NS,
        "the first stop gave up before the documented bound: {:?}",
        stats[0]
    );
    for later in &stats[1..] {
        assert!(
            later.stop_ns < oohgc_barriers::UNREGISTERED_GIVE_UP_NS,
            "a later stop waited for the known blocker again: {later:?}"
        );
    }
    done.store(true, Ordering::Relaxed);
    blocker.join().unwrap();
    worker.join().unwrap();
}
