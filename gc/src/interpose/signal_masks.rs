//! The C library's signal-mask calls, interposed so that no thread blocks
//! the collector's suspend and restart signals or waits for them (bdwgc's
//! `GC_pthread_sigmask`, for every caller in the process: Rust code through
//! `libc` or `nix`, and C libraries' helper threads through the PLT).
//!
//! A thread that blocks the suspend signal can be neither stopped nor
//! scanned; one that *waits* for it (`sigwait`, `signalfd`) takes it away
//! from the suspend handler. So:
//! - `pthread_sigmask`, `sigprocmask` (`SIG_BLOCK`, `SIG_SETMASK`),
//!   `sigsuspend` and `pthread_attr_setsigmask_np` get the mask without the
//!   two signals;
//! - `sigwait`, `sigwaitinfo`, `sigtimedwait` and `signalfd` get the set of
//!   signals to wait for without them: the kernel's `rt_sigtimedwait`
//!   unblocks the waited-for signals and *dequeues* one that arrives instead
//!   of running its handler, and a `signalfd` read dequeues its set from the
//!   reader's own pending signals, so either would eat a suspend signal sent
//!   to that thread (the stopper would re-send until giving up, the program
//!   would receive a signal it never asked for). Taken out of the set, the
//!   signal runs its handler: `sigwait` resumes its wait (glibc retries on
//!   `EINTR`), a `signalfd` read restarts (`SA_RESTART`), and
//!   `sigwaitinfo`/`sigtimedwait` may return `EINTR` during a collection,
//!   as POSIX allows for any caught signal. (A program that waits for the
//!   collector's signals themselves cannot have them: configure the
//!   collector to use others, see `Config`.)
//!
//! What the program sees: the mask it asked for. Each thread remembers which
//! of the two signals its program asked to block (a const thread-local, no
//! allocation, no destructor), and the old mask these calls report includes
//! them: a program that reads its mask back, or saves and restores it, sees
//! exactly its own requests. The kernel's mask, and what `/proc` shows,
//! differ in those two signals only. (Not followed across `pthread_create`
//! or `execve`: a new thread or program starts with the signals open.)
//!
//! Before the collector has installed its signals everything passes through
//! unchanged (`open_collector_signals` knows no signals yet). errno is the
//! real call's: restored to the caller's value where the function reports
//! errors by return value (`pthread_sigmask`, `sigwait`, the attribute
//! call). Nothing here allocates; each real function is resolved once, at
//! load time (`.init_array`), so that a first call from a signal handler does
//! not run `dlsym`.
//!
//! Not reachable from here: a raw `rt_sigprocmask` system call, glibc's
//! internal calls (its thread start and exit windows, the timer helper
//! thread's mask), `sigaction` masks (in force only while a handler runs) and
//! `ucontext` masks; `oohgc_barriers::stop` detects a thread blocked that way
//! and gives it up loudly and counted instead of silently.

use core::cell::Cell;
use core::ffi::c_int;

use libc::{pthread_attr_t, siginfo_t, sigset_t, timespec};

use super::{open_collector_signals, RealFn};

static REAL_PTHREAD_SIGMASK: RealFn = RealFn::new(c"pthread_sigmask");
static REAL_SIGPROCMASK: RealFn = RealFn::new(c"sigprocmask");
static REAL_SIGSUSPEND: RealFn = RealFn::new(c"sigsuspend");
static REAL_SIGWAIT: RealFn = RealFn::new(c"sigwait");
static REAL_SIGWAITINFO: RealFn = RealFn::new(c"sigwaitinfo");
static REAL_SIGTIMEDWAIT: RealFn = RealFn::new(c"sigtimedwait");
static REAL_SIGNALFD: RealFn = RealFn::new(c"signalfd");
static REAL_ATTR_SETSIGMASK: RealFn = RealFn::new(c"pthread_attr_setsigmask_np");

type MaskFn = unsafe extern "C" fn(c_int, *const sigset_t, *mut sigset_t) -> c_int;
type SuspendFn = unsafe extern "C" fn(*const sigset_t) -> c_int;
type SigwaitFn = unsafe extern "C" fn(*const sigset_t, *mut c_int) -> c_int;
type SigwaitinfoFn = unsafe extern "C" fn(*const sigset_t, *mut siginfo_t) -> c_int;
type SigtimedwaitFn =
    unsafe extern "C" fn(*const sigset_t, *mut siginfo_t, *const timespec) -> c_int;
type SignalfdFn = unsafe extern "C" fn(c_int, *const sigset_t, c_int) -> c_int;
type AttrSetsigmaskFn = unsafe extern "C" fn(*mut pthread_attr_t, *const sigset_t) -> c_int;

/// Resolves the real functions a signal handler may call (the
/// async-signal-safe ones) before `main`, and before any handler of the
/// program can run. (`pthread_attr_setsigmask_np`, glibc 2.32 and later,
/// is resolved on first use: a C library without it must still load.)
extern "C" fn resolve_real_functions() {
    for real in [
        &REAL_PTHREAD_SIGMASK,
        &REAL_SIGPROCMASK,
        &REAL_SIGSUSPEND,
        &REAL_SIGWAIT,
        &REAL_SIGWAITINFO,
        &REAL_SIGTIMEDWAIT,
        &REAL_SIGNALFD,
    ] {
        real.get();
    }
}

#[used]
#[link_section = ".init_array"]
static RESOLVE_AT_LOAD: extern "C" fn() = resolve_real_functions;

thread_local! {
    /// Which of the collector's signals this thread's program asked to
    /// block ([`SUSPEND_BIT`], [`RESTART_BIT`]), though they stay open.
    static ASKED: Cell<u8> = const { Cell::new(0) };
}

const SUSPEND_BIT: u8 = 1;
const RESTART_BIT: u8 = 2;

fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value }
}

/// An empty signal set.
fn empty_set() -> sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is the empty set.
    unsafe { core::mem::zeroed() }
}

/// The collector's signals in `set`, as [`ASKED`] bits (0 before the
/// collector installed them, or for a null set).
///
/// # Safety
/// `set` is null or points at a valid `sigset_t`.
unsafe fn collector_bits(set: *const sigset_t) -> u8 {
    let Some(signals) = oohgc_barriers::current_config() else {
        return 0;
    };
    if set.is_null() {
        return 0;
    }
    let mut bits = 0;
    // SAFETY: per the contract, `set` is a valid set.
    unsafe {
        if libc::sigismember(set, signals.suspend) == 1 {
            bits |= SUSPEND_BIT;
        }
        if libc::sigismember(set, signals.restart) == 1 {
            bits |= RESTART_BIT;
        }
    }
    bits
}

/// Adds the signals of `bits` to the reported old mask `old`.
///
/// # Safety
/// `old` points at a valid, writable `sigset_t`.
unsafe fn report_asked(old: *mut sigset_t, bits: u8) {
    let Some(signals) = oohgc_barriers::current_config() else {
        return;
    };
    // SAFETY: per the contract, `old` is a valid writable set.
    unsafe {
        if bits & SUSPEND_BIT != 0 {
            libc::sigaddset(old, signals.suspend);
        }
        if bits & RESTART_BIT != 0 {
            libc::sigaddset(old, signals.restart);
        }
    }
}

/// The body of `pthread_sigmask` and `sigprocmask`: calls `real` with the
/// collector's signals kept open, records and reports what was asked.
/// Returns the real call's result with errno as the real call left it.
///
/// # Safety
/// The arguments are valid for `pthread_sigmask`; `real` is a function with
/// its signature.
unsafe fn change_mask(
    real: &RealFn,
    how: c_int,
    set: *const sigset_t,
    old: *mut sigset_t,
) -> c_int {
    let caller_errno = errno();
    // Read the request before the call: `old` may alias `set`.
    // SAFETY: `set` is null or valid (caller's contract).
    let requested = unsafe { collector_bits(set) };
    let asked_before = ASKED.with(Cell::get);
    let mut scratch = empty_set();
    let forwarded = if how == libc::SIG_BLOCK || how == libc::SIG_SETMASK {
        // SAFETY: `set` is null or valid (caller's contract).
        unsafe { open_collector_signals(set, &mut scratch) }
    } else {
        set
    };
    // SAFETY: `real` has this signature; `forwarded` is null, the caller's
    // set or `scratch`; `old` is the caller's.
    let (rc, real_errno) = unsafe {
        set_errno(caller_errno);
        let f: MaskFn = core::mem::transmute(real.get());
        let rc = f(how, forwarded, old);
        (rc, errno())
    };
    if rc == 0 {
        if !set.is_null() {
            let asked = match how {
                libc::SIG_BLOCK => asked_before | requested,
                libc::SIG_UNBLOCK => asked_before & !requested,
                _ => requested,
            };
            ASKED.with(|a| a.set(asked));
        }
        if !old.is_null() {
            // SAFETY: the real call succeeded, so `old` is a valid set.
            unsafe { report_asked(old, asked_before) };
        }
    }
    set_errno(real_errno);
    rc
}

/// `pthread_sigmask(3)`, keeping the collector's signals open.
///
/// # Safety
/// As for the C function: `set` and `old` are null or valid.
#[no_mangle]
pub unsafe extern "C" fn pthread_sigmask(
    how: c_int,
    set: *const sigset_t,
    old: *mut sigset_t,
) -> c_int {
    let caller_errno = errno();
    // SAFETY: the caller's contract is pthread_sigmask's.
    let rc = unsafe { change_mask(&REAL_PTHREAD_SIGMASK, how, set, old) };
    // Errors are the return value; errno stays the caller's.
    set_errno(caller_errno);
    rc
}

/// `sigprocmask(2)`, keeping the collector's signals open.
///
/// # Safety
/// As for the C function: `set` and `old` are null or valid.
#[no_mangle]
pub unsafe extern "C" fn sigprocmask(
    how: c_int,
    set: *const sigset_t,
    old: *mut sigset_t,
) -> c_int {
    // SAFETY: the caller's contract is sigprocmask's.
    unsafe { change_mask(&REAL_SIGPROCMASK, how, set, old) }
}

/// `sigsuspend(2)`, waiting with the collector's signals open.
///
/// # Safety
/// As for the C function: `mask` is valid.
#[no_mangle]
pub unsafe extern "C" fn sigsuspend(mask: *const sigset_t) -> c_int {
    let mut scratch = empty_set();
    // SAFETY: `mask` is valid (caller's contract); the real function has
    // this signature and gets the caller's set or `scratch`.
    unsafe {
        let forwarded = open_collector_signals(mask, &mut scratch);
        let f: SuspendFn = core::mem::transmute(REAL_SIGSUSPEND.get());
        f(forwarded)
    }
}

/// `sigwait(3)`, not waiting for the collector's signals.
///
/// # Safety
/// As for the C function: `set` and `sig` are valid.
#[no_mangle]
pub unsafe extern "C" fn sigwait(set: *const sigset_t, sig: *mut c_int) -> c_int {
    let caller_errno = errno();
    let mut scratch = empty_set();
    // SAFETY: as `sigsuspend`.
    let rc = unsafe {
        let forwarded = open_collector_signals(set, &mut scratch);
        let f: SigwaitFn = core::mem::transmute(REAL_SIGWAIT.get());
        f(forwarded, sig)
    };
    set_errno(caller_errno);
    rc
}

/// `sigwaitinfo(2)`, not waiting for the collector's signals.
///
/// # Safety
/// As for the C function: `set` is valid, `info` null or valid.
#[no_mangle]
pub unsafe extern "C" fn sigwaitinfo(set: *const sigset_t, info: *mut siginfo_t) -> c_int {
    let mut scratch = empty_set();
    // SAFETY: as `sigsuspend`.
    unsafe {
        let forwarded = open_collector_signals(set, &mut scratch);
        let f: SigwaitinfoFn = core::mem::transmute(REAL_SIGWAITINFO.get());
        f(forwarded, info)
    }
}

/// `sigtimedwait(2)`, not waiting for the collector's signals.
///
/// # Safety
/// As for the C function: `set` is valid, `info` and `timeout` null or valid.
#[no_mangle]
pub unsafe extern "C" fn sigtimedwait(
    set: *const sigset_t,
    info: *mut siginfo_t,
    timeout: *const timespec,
) -> c_int {
    let mut scratch = empty_set();
    // SAFETY: as `sigsuspend`.
    unsafe {
        let forwarded = open_collector_signals(set, &mut scratch);
        let f: SigtimedwaitFn = core::mem::transmute(REAL_SIGTIMEDWAIT.get());
        f(forwarded, info, timeout)
    }
}

/// `signalfd(2)`, never reading the collector's signals.
///
/// # Safety
/// As for the C function: `mask` is valid.
#[no_mangle]
pub unsafe extern "C" fn signalfd(fd: c_int, mask: *const sigset_t, flags: c_int) -> c_int {
    let mut scratch = empty_set();
    // SAFETY: as `sigsuspend`.
    unsafe {
        let forwarded = open_collector_signals(mask, &mut scratch);
        let f: SignalfdFn = core::mem::transmute(REAL_SIGNALFD.get());
        f(fd, forwarded, flags)
    }
}

/// `pthread_attr_setsigmask_np(3)`: the initial mask of threads created
/// with `attr`, which glibc installs with an internal call that interposing
/// `pthread_sigmask` cannot see.
///
/// # Safety
/// As for the C function: `attr` is valid, `mask` null or valid.
#[no_mangle]
pub unsafe extern "C" fn pthread_attr_setsigmask_np(
    attr: *mut pthread_attr_t,
    mask: *const sigset_t,
) -> c_int {
    let caller_errno = errno();
    let mut scratch = empty_set();
    // SAFETY: as `sigsuspend`.
    let rc = unsafe {
        let forwarded = open_collector_signals(mask, &mut scratch);
        let f: AttrSetsigmaskFn = core::mem::transmute(REAL_ATTR_SETSIGMASK.get());
        f(attr, forwarded)
    };
    set_errno(caller_errno);
    rc
}
