//! A thread that never registered and blocks the suspend signal can never
//! acknowledge. It is given up — never reported, so not scanned — loudly
//! and counted (`StopStats::given_up`, `threads_given_up`), everything else
//! is still stopped, and later stops give it up at once:
//! - with a mask it set itself (`SIGCANCEL` open, as any mask set through
//!   glibc), while it sleeps: early, after two looks, far below the 2 s
//!   bound;
//! - with every bit set, as glibc's own thread start and exit windows have
//!   (here through a raw `rt_sigprocmask`): only after the 2 s bound.
//!
//! (This crate's tests do not link oohgc's interposed `pthread_sigmask`, so
//! a `pthread_sigmask` call here is as invisible to the collector as a raw
//! system call.)

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use oohgc_barriers::{StopStats, UNREGISTERED_GIVE_UP_NS};

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// How the blocker blocks its signals.
#[derive(Clone, Copy)]
enum Mask {
    /// `pthread_sigmask(SIG_BLOCK, sigfillset)`: glibc leaves its own
    /// signals (32, 33) open.
    ThroughGlibc,
    /// Raw `rt_sigprocmask(SIG_BLOCK, !0)`: every bit, glibc's included.
    EveryBit,
}

/// Spawns a thread that blocks signals as `mask` says and sleeps in short
/// naps until `done`; returns it and its tid.
fn spawn_blocker(mask: Mask, done: &Arc<AtomicBool>) -> (JoinHandle<()>, i32) {
    let blocker_tid = Arc::new(AtomicI32::new(0));
    let handle = {
        let (blocker_tid, done) = (blocker_tid.clone(), done.clone());
        std::thread::spawn(move || {
            match mask {
                // SAFETY: blocking all signals of this thread only.
                Mask::ThroughGlibc => unsafe {
                    let mut all: libc::sigset_t = std::mem::zeroed();
                    libc::sigfillset(&mut all);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
                },
                Mask::EveryBit => {
                    let all: u64 = !0;
                    // SAFETY: rt_sigprocmask reads 8 bytes of `all`; blocking
                    // signals of this thread only (SIGKILL and SIGSTOP stay
                    // deliverable whatever the mask says).
                    let rc = unsafe {
                        libc::syscall(
                            libc::SYS_rt_sigprocmask,
                            libc::SIG_BLOCK,
                            &all as *const u64,
                            std::ptr::null_mut::<u64>(),
                            8usize,
                        )
                    };
                    assert_eq!(rc, 0);
                }
            }
            blocker_tid.store(tid(), Ordering::Release);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    while blocker_tid.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    (handle, blocker_tid.load(Ordering::Acquire))
}

/// Three stops with `blocker_tid` present and `worker_tid` spinning; checks
/// what each reported and returns their stats.
fn three_stops(blocker_tid: i32, worker_tid: i32) -> Vec<StopStats> {
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
        assert_eq!(
            stats[round].given_up, 1,
            "round {round}: the blocker was not counted as given up: {:?}",
            stats[round]
        );
    }
    for later in &stats[1..] {
        assert!(
            later.stop_ns < UNREGISTERED_GIVE_UP_NS / 4,
            "a later stop waited for the known blocker again: {later:?}"
        );
        assert_eq!(
            later.signals_sent + 1,
            stats[0].signals_sent,
            "a later stop signalled the known blocker again: {later:?}, first {:?}",
            stats[0]
        );
    }
    stats
}

#[test]
fn threads_blocking_the_suspend_signal_are_given_up_loudly_then_skipped() {
    oohgc_barriers::init(Default::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
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
    while worker_tid.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let worker_tid = worker_tid.load(Ordering::Acquire);
    let given_up_before = oohgc_barriers::threads_given_up();

    // A mask the thread set itself: given up early.
    let own_done = Arc::new(AtomicBool::new(false));
    let (own, own_tid) = spawn_blocker(Mask::ThroughGlibc, &own_done);
    let stats = three_stops(own_tid, worker_tid);
    assert!(
        stats[0].stop_ns < UNREGISTERED_GIVE_UP_NS / 4,
        "the first stop waited for a thread sleeping with its own blocking mask: {:?}",
        stats[0]
    );
    own_done.store(true, Ordering::Relaxed);
    own.join().unwrap();

    // Every bit set, like glibc's own windows: waited for up to the bound.
    let all_done = Arc::new(AtomicBool::new(false));
    let (all, all_tid) = spawn_blocker(Mask::EveryBit, &all_done);
    let stats = three_stops(all_tid, worker_tid);
    assert!(
        stats[0].stop_ns >= UNREGISTERED_GIVE_UP_NS,
        "the first stop gave up a thread with glibc's all-blocked mask before the bound: {:?}",
        stats[0]
    );
    all_done.store(true, Ordering::Relaxed);
    all.join().unwrap();

    assert_eq!(oohgc_barriers::threads_given_up() - given_up_before, 6);
    done.store(true, Ordering::Relaxed);
    worker.join().unwrap();
}
