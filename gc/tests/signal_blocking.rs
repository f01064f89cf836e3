//! Threads that block every signal (the signal-handling-thread pattern:
//! `pthread_sigmask(SIG_BLOCK, full set)`, then wait) are still stopped and
//! scanned: each holds the only pointer to a collected object while the
//! main thread collects many times with churn, then checks the object.
//!
//! Cases: a registered thread (it allocated) and a never-registered one
//! (created with `pthread_create` directly) waiting in `read(2)`; never-
//! registered threads waiting in `sigwait`, `sigwaitinfo`, `sigtimedwait` and
//! on a `signalfd` (each for a full set, which must not swallow the suspend
//! signal), in `sigsuspend` with everything but one signal blocked (set
//! through `sigprocmask`), and one created with every signal blocked by
//! `pthread_attr_setsigmask_np`. Each case
//! asserts that the object is intact, that no stop gave a thread up
//! (`Stats::threads_given_up`) and that no pause came near the 2 s give-up
//! bound. A watchdog ends the process with a message if collections hang (a
//! registered thread that cannot take the suspend signal is waited for).
//!
//! Also: the mask a thread reads back is the one it asked for, errno is
//! preserved, and before/after values agree with `/proc`'s view.

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use oohgc::Gc;

const WORDS: usize = 64;
type Block = [u64; WORDS];

/// Slot values are stored XOR-ed with this, so that the slot (a static,
/// hence a root) does not keep the object alive.
const HIDE: usize = 0x5a5a_5a5a_5a5a_5a5a;

/// Collections each case runs while its thread waits (half of them
/// concurrent where the dirty source allows).
const CYCLES: usize = 30;

fn word(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

/// Allocates a block for `seed` and publishes its address in `hold` and,
/// hidden, in `slot`; no copy stays in this frame.
#[inline(never)]
fn publish_block(slot: &AtomicUsize, hold: &AtomicUsize, seed: u64) {
    let mut b: Block = [0; WORDS];
    for (i, w) in b.iter_mut().enumerate() {
        *w = word(seed, i);
    }
    let g = Gc::new(b);
    hold.store(Gc::as_ptr(&g) as usize, Ordering::Release);
    slot.store(Gc::as_ptr(&g) as usize ^ HIDE, Ordering::Release);
}

/// Overwrite dead stack below the caller so stale copies of pointers do not
/// keep objects alive by accident.
#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 4096];
    black_box(&mut buf);
}

/// Words of the block at `p` that differ from the pattern of `seed`.
///
/// # Safety
/// `p` points at a live (or, if the collector lost it, at least mapped)
/// block.
#[inline(never)]
unsafe fn damaged_words(p: *const Block, seed: u64) -> u32 {
    let mut bad = 0;
    for i in 0..WORDS {
        // SAFETY: per the contract; volatile so the check really reads it.
        let w = unsafe { core::ptr::read_volatile(&(*p)[i]) };
        if w != word(seed, i) {
            bad += 1;
        }
    }
    bad
}

/// Starts (once per process) a thread that ends the process with a message
/// if the test binary is still running after a minute: collections that
/// wait for ever for a thread must fail, not hang.
fn start_watchdog() {
    static WATCHDOG: Once = Once::new();
    WATCHDOG.call_once(|| {
        std::thread::spawn(|| {
            // Collector-internal for the barriers: never stopped, so it
            // fires even while a stop waits for ever.
            oohgc_barriers::exclude_current_thread();
            std::thread::sleep(Duration::from_secs(60));
            let msg = b"signal_blocking: still running after 60 s: a collection is waiting \
                        for a thread that blocks the suspend signal\n";
            // SAFETY: write(2) of a static buffer, then _exit.
            unsafe {
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(101);
            }
        });
    });
}

/// A full signal set.
fn full_set() -> libc::sigset_t {
    // SAFETY: all-zero is valid storage for sigfillset, which fills it.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// How a case's thread waits once it holds the pointer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    /// Blocks everything with `pthread_sigmask`, reads a pipe.
    Read,
    /// Blocks everything, `sigwait`s for a full set; woken by `SIGUSR2`.
    Sigwait,
    /// Blocks everything, `sigwaitinfo` for a full set; woken by `SIGUSR2`.
    Sigwaitinfo,
    /// Blocks everything, `sigtimedwait` (1 s, repeated) for a full set;
    /// woken by `SIGUSR2`.
    Sigtimedwait,
    /// Created with every signal blocked by `pthread_attr_setsigmask_np`
    /// (it calls no mask function itself), reads a pipe.
    AttrMaskRead,
    /// Blocks everything, reads a `signalfd` for a full set; woken by
    /// `SIGALRM`.
    Signalfd,
    /// Blocks everything with `sigprocmask`, then `sigsuspend` with
    /// everything but `SIGUSR1` blocked; woken by `SIGUSR1`.
    Sigsuspend,
}

/// Shared between a case's main thread and its waiting thread (a static,
/// one per case, so the waiting thread needs no allocation).
struct Case {
    wait: Wait,
    seed: u64,
    /// The hidden block address, taken (zeroed) by the thread.
    slot: AtomicUsize,
    /// The block's address in plain sight (this static is a root) until
    /// the thread holds it: collections started meanwhile (other tests
    /// allocate) must not free it before the test begins.
    hold: AtomicUsize,
    /// Pipe: [read end, write end].
    pipe: [AtomicI32; 2],
    ready: AtomicBool,
    /// The thread's findings: damaged words, and the signal it was woken
    /// by (`Sigwait`, `Signalfd`).
    damaged: AtomicU32,
    woken_by: AtomicI32,
    finished: AtomicBool,
}

impl Case {
    const fn new(wait: Wait, seed: u64) -> Case {
        Case {
            wait,
            seed,
            slot: AtomicUsize::new(0),
            hold: AtomicUsize::new(0),
            pipe: [AtomicI32::new(-1), AtomicI32::new(-1)],
            ready: AtomicBool::new(false),
            damaged: AtomicU32::new(u32::MAX),
            woken_by: AtomicI32::new(0),
            finished: AtomicBool::new(false),
        }
    }
}

/// Set by the `SIGUSR1` handler: `sigsuspend` returns after *any* handler
/// (the collector's suspend handler too), so the waiter loops on this, as
/// programs do.
static GOT_USR1: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int) {
    GOT_USR1.store(true, Ordering::SeqCst);
}

/// The waiting thread's body. Allocates nothing (so a thread created with
/// `pthread_create` stays unregistered).
#[inline(never)]
fn wait_holding_the_block(case: &Case) {
    let full = full_set();
    // SAFETY: blocking signals of this thread; `full` is a valid set.
    unsafe {
        match case.wait {
            Wait::AttrMaskRead => {}
            Wait::Sigsuspend => {
                libc::sigprocmask(libc::SIG_BLOCK, &full, core::ptr::null_mut());
            }
            _ => {
                libc::pthread_sigmask(libc::SIG_BLOCK, &full, core::ptr::null_mut());
            }
        }
    }
    let signal_fd = if case.wait == Wait::Signalfd {
        // SAFETY: a new signalfd for a valid set.
        unsafe { libc::signalfd(-1, &full, libc::SFD_CLOEXEC) }
    } else {
        -1
    };
    // The only copy of the pointer from now on: in this frame.
    let p = (case.slot.swap(0, Ordering::AcqRel) ^ HIDE) as *const Block;
    let p = black_box(p);
    case.ready.store(true, Ordering::Release);
    match case.wait {
        Wait::Read | Wait::AttrMaskRead => {
            let mut byte = 0u8;
            let fd = case.pipe[0].load(Ordering::Acquire);
            // SAFETY: reading one byte into `byte` from our pipe.
            while unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) } < 0 {}
        }
        Wait::Sigwait => {
            let mut signal = 0;
            // SAFETY: `full` is a valid set, `signal` writable.
            unsafe { libc::sigwait(&full, &mut signal) };
            case.woken_by.store(signal, Ordering::Release);
        }
        Wait::Sigwaitinfo | Wait::Sigtimedwait => {
            // SAFETY: all-zero is a valid siginfo_t.
            let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
            let second = libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let signal = loop {
                // SAFETY: valid set, info and timeout. EINTR (a collection)
                // and EAGAIN (the timeout) mean: wait again.
                let rc = unsafe {
                    if case.wait == Wait::Sigwaitinfo {
                        libc::sigwaitinfo(&full, &mut info)
                    } else {
                        libc::sigtimedwait(&full, &mut info, &second)
                    }
                };
                if rc > 0 {
                    break rc;
                }
            };
            case.woken_by.store(signal, Ordering::Release);
        }
        Wait::Signalfd => {
            // SAFETY: all-zero is a valid signalfd_siginfo.
            let mut info: libc::signalfd_siginfo = unsafe { core::mem::zeroed() };
            let size = core::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading one record into `info` from our signalfd.
            while unsafe {
                libc::read(
                    signal_fd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            } < 0
            {}
            case.woken_by
                .store(info.ssi_signo as i32, Ordering::Release);
            // SAFETY: our descriptor.
            unsafe { libc::close(signal_fd) };
        }
        Wait::Sigsuspend => {
            let mut all_but_usr1 = full;
            // SAFETY: a valid set. (SIGUSR1 has a handler, installed by the
            // case before this thread started.)
            unsafe { libc::sigdelset(&mut all_but_usr1, libc::SIGUSR1) };
            while !GOT_USR1.load(Ordering::SeqCst) {
                // SAFETY: a valid set.
                unsafe { libc::sigsuspend(&all_but_usr1) };
            }
            case.woken_by.store(libc::SIGUSR1, Ordering::Release);
        }
    }
    // SAFETY: `p` came from a Gc<Block>; if the collector freed it, the
    // memory is still mapped heap (reused, hence damaged).
    let damaged = unsafe { damaged_words(black_box(p), case.seed) };
    case.damaged.store(damaged, Ordering::Release);
    case.finished.store(true, Ordering::Release);
}

extern "C" {
    // glibc 2.32 and later; not in the `libc` crate.
    fn pthread_attr_setsigmask_np(
        attr: *mut libc::pthread_attr_t,
        sigmask: *const libc::sigset_t,
    ) -> libc::c_int;
}

extern "C" fn unregistered_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is a `&'static Case` (see `run_case`).
    let case = unsafe { &*(arg as *const Case) };
    wait_holding_the_block(case);
    core::ptr::null_mut()
}

/// Runs `case`: a thread (registered if `registered`) waits as `case.wait`
/// says holding the only pointer to a block, the main thread collects
/// `CYCLES` times with churn, wakes it, and the block must be intact, no
/// thread given up and no pause near the give-up bound.
fn run_case(case: &'static Case, registered: bool) {
    start_watchdog();
    oohgc::collect(); // the collector and its signals are up
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    case.pipe[0].store(fds[0], Ordering::Release);
    case.pipe[1].store(fds[1], Ordering::Release);
    if case.wait == Wait::Sigsuspend {
        // SAFETY: installing a handler that does nothing.
        unsafe { libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as libc::sighandler_t) };
    }
    publish_block(&case.slot, &case.hold, case.seed);

    let given_up_before = oohgc::stats().threads_given_up;
    let mut std_thread = None;
    let mut raw_thread: libc::pthread_t = 0;
    if registered {
        std_thread = Some(std::thread::spawn(move || {
            // Allocating registers the thread.
            black_box(vec![1u8; 64]);
            wait_holding_the_block(case);
        }));
    } else {
        // SAFETY: all-zero is storage for pthread_attr_init, which fills it.
        let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
        // SAFETY: initialising `attr`, setting its initial signal mask to a
        // valid full set, creating a thread with it (`case` is 'static, so
        // the argument outlives the thread), destroying `attr`.
        let rc = unsafe {
            assert_eq!(libc::pthread_attr_init(&mut attr), 0);
            if case.wait == Wait::AttrMaskRead {
                assert_eq!(pthread_attr_setsigmask_np(&mut attr, &full_set()), 0);
            }
            let rc = libc::pthread_create(
                &mut raw_thread,
                &attr,
                unregistered_thread,
                case as *const Case as *mut libc::c_void,
            );
            libc::pthread_attr_destroy(&mut attr);
            rc
        };
        assert_eq!(rc, 0);
    }
    while !case.ready.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    case.hold.store(0, Ordering::Release);
    clobber_stack();

    let start = Instant::now();
    for i in 0..CYCLES {
        common::churn(2);
        // Alternate stop-the-world and concurrent cycles (initial-mark and
        // final pauses, driven by the dirty source) where the source has them.
        if i % 2 == 1 && oohgc::start_cycle() {
            oohgc::wait_for_cycles(1);
        } else {
            oohgc::collect();
        }
    }
    let collecting = start.elapsed();
    let stats = oohgc::stats();

    // Wake the thread.
    let target = match &std_thread {
        Some(h) => {
            use std::os::unix::thread::JoinHandleExt;
            h.as_pthread_t()
        }
        None => raw_thread,
    };
    let wake_signal = match case.wait {
        Wait::Read | Wait::AttrMaskRead => 0,
        Wait::Sigwait | Wait::Sigwaitinfo | Wait::Sigtimedwait => libc::SIGUSR2,
        Wait::Signalfd => libc::SIGALRM,
        Wait::Sigsuspend => libc::SIGUSR1,
    };
    if wake_signal == 0 {
        // SAFETY: writing one byte to our pipe.
        assert_eq!(unsafe { libc::write(fds[1], [1u8].as_ptr().cast(), 1) }, 1);
    } else {
        // Re-send until it is done (a signal sent before the thread blocked
        // in its wait is not lost, but be robust to spurious wake-ups).
        while !case.finished.load(Ordering::Acquire) {
            // SAFETY: the thread is alive until `finished`.
            unsafe { libc::pthread_kill(target, wake_signal) };
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    match std_thread {
        Some(h) => {
            h.join().unwrap();
        }
        None => {
            // SAFETY: joining the thread created above, once.
            assert_eq!(
                unsafe { libc::pthread_join(raw_thread, core::ptr::null_mut()) },
                0
            );
        }
    }
    // SAFETY: closing our pipe.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }

    let what = format!(
        "{:?} ({}registered)",
        case.wait,
        if registered { "" } else { "never " }
    );
    assert_eq!(
        case.damaged.load(Ordering::Acquire),
        0,
        "{what}: the block only the waiting thread referenced was freed and reused"
    );
    if wake_signal != 0 {
        assert_eq!(
            case.woken_by.load(Ordering::Acquire),
            wake_signal,
            "{what}: the thread was woken by another signal than the one sent (the suspend signal?)"
        );
    }
    assert_eq!(
        stats.threads_given_up - given_up_before,
        0,
        "{what}: a stop gave up a thread (not stopped, not scanned)"
    );
    assert!(
        stats.max_pause_ns < 1_000_000_000,
        "{what}: a pause took {} ms (the unregistered give-up bound is {} ms); {CYCLES} \
         collections took {collecting:?}",
        stats.max_pause_ns / 1_000_000,
        oohgc_barriers::UNREGISTERED_GIVE_UP_NS / 1_000_000
    );
}

#[test]
fn registered_thread_blocking_all_signals_in_read() {
    static CASE: Case = Case::new(Wait::Read, 1);
    run_case(&CASE, true);
}

#[test]
fn unregistered_thread_blocking_all_signals_in_read() {
    static CASE: Case = Case::new(Wait::Read, 2);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_in_sigwait_for_all_signals() {
    static CASE: Case = Case::new(Wait::Sigwait, 3);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_in_sigwaitinfo_for_all_signals() {
    static CASE: Case = Case::new(Wait::Sigwaitinfo, 6);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_in_sigtimedwait_for_all_signals() {
    static CASE: Case = Case::new(Wait::Sigtimedwait, 7);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_created_with_every_signal_blocked() {
    static CASE: Case = Case::new(Wait::AttrMaskRead, 8);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_reading_a_signalfd_for_all_signals() {
    static CASE: Case = Case::new(Wait::Signalfd, 4);
    run_case(&CASE, false);
}

#[test]
fn unregistered_thread_in_sigsuspend_with_all_but_one_signal_blocked() {
    static CASE: Case = Case::new(Wait::Sigsuspend, 5);
    run_case(&CASE, false);
}

/// Whether the kernel's mask of the calling thread (`SigBlk` in
/// `/proc/thread-self/status`) blocks `signal`. Does not allocate: it runs
/// with signals blocked, when an allocation could wait for a collection
/// that waits for this thread.
fn kernel_blocks(signal: i32) -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: open/read/close of a procfs file into a stack buffer.
    let len = unsafe {
        let fd = libc::open(c"/proc/thread-self/status".as_ptr(), libc::O_RDONLY);
        assert!(fd >= 0);
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    assert!(len > 0);
    let text = &buf[..len as usize];
    let key = b"SigBlk:\t";
    let at = text.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let mask = text[at..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .fold(0u64, |m, &b| {
            (m << 4) | u64::from((b as char).to_digit(16).unwrap())
        });
    mask & (1 << (signal - 1)) != 0
}

/// Whether `set` contains `signal`.
fn has(set: &libc::sigset_t, signal: i32) -> bool {
    // SAFETY: a valid set.
    unsafe { libc::sigismember(set, signal) == 1 }
}

#[test]
fn a_thread_reads_back_the_mask_it_asked_for() {
    start_watchdog();
    oohgc::collect();
    let suspend = oohgc_barriers::current_config().unwrap().suspend;
    // Checks made while signals are blocked are recorded, not asserted: a
    // panic allocates, and must not run with the suspend signal blocked.
    let checks = std::thread::spawn(move || {
        let mut checks = [("", false); 16];
        let mut n = 0;
        let mut check = |what: &'static str, ok: bool| {
            checks[n] = (what, ok);
            n += 1;
        };
        // SAFETY: all-zero sets are valid; every call gets valid sets and
        // changes only this thread's mask.
        unsafe {
            let mut just_suspend: libc::sigset_t = core::mem::zeroed();
            libc::sigaddset(&mut just_suspend, suspend);
            libc::sigaddset(&mut just_suspend, libc::SIGUSR2);
            let mut old: libc::sigset_t = core::mem::zeroed();
            *libc::__errno_location() = 4242;
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &just_suspend, &mut old);
            check("pthread_sigmask(SIG_BLOCK) succeeds", rc == 0);
            check("errno is kept", *libc::__errno_location() == 4242);
            check(
                "nothing was blocked before",
                !has(&old, suspend) && !has(&old, libc::SIGUSR2),
            );
            check(
                "the kernel keeps the suspend signal open",
                !kernel_blocks(suspend),
            );
            check("the kernel blocks SIGUSR2", kernel_blocks(libc::SIGUSR2));
            let mut now: libc::sigset_t = core::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut now);
            check(
                "the mask read back is the one asked for",
                has(&now, suspend) && has(&now, libc::SIGUSR2),
            );
            // Save and restore through sigprocmask: still as asked.
            let mut saved: libc::sigset_t = core::mem::zeroed();
            let rc = libc::sigprocmask(libc::SIG_SETMASK, &old, &mut saved);
            check(
                "the saved mask is the one asked for",
                rc == 0 && has(&saved, suspend),
            );
            let mut after: libc::sigset_t = core::mem::zeroed();
            libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), &mut after);
            check(
                "SIG_SETMASK to the old mask forgets the request",
                !has(&after, suspend)
                    && !has(&after, libc::SIGUSR2)
                    && !kernel_blocks(libc::SIGUSR2),
            );
            libc::sigprocmask(libc::SIG_SETMASK, &saved, core::ptr::null_mut());
            libc::sigprocmask(libc::SIG_BLOCK, core::ptr::null(), &mut after);
            check(
                "restoring the saved mask restores the request, not the block",
                has(&after, suspend) && has(&after, libc::SIGUSR2) && !kernel_blocks(suspend),
            );
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &just_suspend, core::ptr::null_mut());
            libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut after);
            check(
                "SIG_UNBLOCK forgets the request",
                !has(&after, suspend) && !has(&after, libc::SIGUSR2),
            );
            *libc::__errno_location() = 0;
            let rc = libc::sigprocmask(12345, &just_suspend, core::ptr::null_mut());
            check(
                "sigprocmask reports the real error in errno",
                rc == -1 && *libc::__errno_location() == libc::EINVAL,
            );
            *libc::__errno_location() = 7;
            let rc = libc::pthread_sigmask(12345, &just_suspend, core::ptr::null_mut());
            check(
                "pthread_sigmask returns the real error, errno kept",
                rc == libc::EINVAL && *libc::__errno_location() == 7,
            );
            // Whatever happened above: nothing blocked any more.
            let empty: libc::sigset_t = core::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, core::ptr::null_mut());
        }
        (checks, n)
    })
    .join()
    .unwrap();
    let (checks, n) = checks;
    for (what, ok) in &checks[..n] {
        assert!(ok, "{what}: failed");
    }
}
