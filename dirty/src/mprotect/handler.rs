//! The process-wide half of the `mprotect` source that its `SIGSEGV`
//! handler reads: the lock-free table of tracked ranges (with their dirty
//! bitmaps), the grace-period scheme ([`synchronize`]) that lets harvests
//! and untracks wait for running handlers, the handler itself (fault on a
//! tracked page -> make it writable, set its bit) and the chaining to the
//! handler installed before ours.
//!
//! Owns: the lock-free range table, the grace periods, the `SIGSEGV`
//! handler and its chaining. Must not touch: allocation or locks in the
//! handler; the source's own range list (`mod.rs`) and the pins
//! (`pins.rs`).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::bitmap::set_bit;
use crate::counters::AtomicCounters;
use crate::{DirtyError, PAGE_SIZE};

/// `si_code` of a fault on a mapped page lacking the permission (asm-generic/siginfo.h).
const SEGV_ACCERR: i32 = 2;

/// Tracked ranges the signal handler can see, over all `mprotect` sources
/// of the process.
pub const MAX_TRACKED_RANGES: usize = 1024;

/// One tracked range as the signal handler sees it. `start == 0` means free.
pub(super) struct Slot {
    pub(super) start: AtomicUsize,
    pub(super) len: AtomicUsize,
    pub(super) words: AtomicPtr<AtomicU64>,
    pub(super) counters: AtomicPtr<AtomicCounters>,
    /// Set when re-protecting failed and the whole range was made writable:
    /// the next harvest reports every page.
    pub(super) degraded: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    words: AtomicPtr::new(std::ptr::null_mut()),
    counters: AtomicPtr::new(std::ptr::null_mut()),
    degraded: AtomicBool::new(false),
};

pub(super) static SLOTS: [Slot; MAX_TRACKED_RANGES] = [FREE_SLOT; MAX_TRACKED_RANGES];
/// One past the highest slot ever used: the handler looks no further.
pub(super) static SLOTS_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// Grace periods between the signal handler and the harvest / untrack
/// paths (a two-phase counter scheme in the style of RCU): a handler
/// registers in the current phase's reader count for its whole run; a
/// [`synchronize`] flips the phase and waits until every handler that
/// started before the flip has finished. Handlers never wait.
static PHASE: AtomicUsize = AtomicUsize::new(0);
static HANDLERS_IN_PHASE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
/// Serialises [`synchronize`] callers (never taken in the handler).
static GRACE: Mutex<()> = Mutex::new(());
/// Serialises slot allocation and handler installation (never taken in the handler).
pub(super) static REGISTRY: Mutex<()> = Mutex::new(());
/// Degrades (whole range made writable after ENOMEM), process-wide.
pub(super) static DEGRADES: AtomicU64 = AtomicU64::new(0);

/// The `SIGSEGV` action that was installed before ours.
struct PreviousAction(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written only under REGISTRY before our handler is installed, read
// only by the handler after installation (the sigaction call orders them).
unsafe impl Sync for PreviousAction {}
static PREVIOUS: PreviousAction = PreviousAction(UnsafeCell::new(MaybeUninit::zeroed()));

/// Install the handler unless it is the current `SIGSEGV` action.
pub(super) fn install_handler() -> Result<(), DirtyError> {
    let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let mut current = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: querying the current action into a zeroed struct.
    if unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), current.as_mut_ptr()) } != 0 {
        return Err(os_error("sigaction(SIGSEGV) query"));
    }
    // SAFETY: sigaction filled it in.
    let current = unsafe { current.assume_init() };
    if current.sa_sigaction == handler_address() {
        return Ok(());
    }
    // SAFETY: no handler of ours is installed, so nobody reads PREVIOUS now.
    unsafe { (*PREVIOUS.0.get()).write(current) };
    // SAFETY: building a sigaction from zeroed memory, then filling it.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = handler_address();
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigfillset(&mut action.sa_mask) };
    // SAFETY: installing a valid action for SIGSEGV.
    if unsafe { libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()) } != 0 {
        return Err(os_error("sigaction(SIGSEGV) install"));
    }
    Ok(())
}

pub(super) fn os_error(op: &'static str) -> DirtyError {
    DirtyError::Os {
        op,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// Register a running handler; returns the phase slot to release.
pub(super) fn handler_enter() -> usize {
    loop {
        let phase = PHASE.load(Ordering::SeqCst);
        let i = phase & 1;
        HANDLERS_IN_PHASE[i].fetch_add(1, Ordering::SeqCst);
        if PHASE.load(Ordering::SeqCst) == phase {
            return i;
        }
        // A synchronize flipped the phase meanwhile: register in the new one.
        HANDLERS_IN_PHASE[i].fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) fn handler_exit(i: usize) {
    HANDLERS_IN_PHASE[i].fetch_sub(1, Ordering::SeqCst);
}

/// Wait until every signal handler that started before this call has
/// finished (so its recorded bit and its mprotect are both visible).
pub(super) fn synchronize() {
    let _g = GRACE.lock().unwrap_or_else(|p| p.into_inner());
    let old = PHASE.fetch_add(1, Ordering::SeqCst);
    while HANDLERS_IN_PHASE[old & 1].load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// `mprotect` without allocation; returns the errno on failure.
pub(super) fn protect(start: usize, len: usize, writable: bool) -> Result<(), i32> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: changing the protection of a tracked (mapped) range.
    if unsafe { libc::mprotect(start as *mut libc::c_void, len, prot) } == 0 {
        Ok(())
    } else {
        // SAFETY: reading this thread's errno.
        Err(unsafe { *libc::__errno_location() })
    }
}

/// Async-signal-safe message then abort.
pub(super) fn die(message: &str) -> ! {
    // SAFETY: write(2) of a static message to stderr, then abort.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::abort()
    }
}

/// The address of [`on_sigsegv`] as `sigaction` stores it.
pub(super) fn handler_address() -> libc::sighandler_t {
    on_sigsegv as *const () as libc::sighandler_t
}

extern "C" fn on_sigsegv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; errno is per-thread.
    let (addr, code, saved_errno) = unsafe {
        (
            (*info).si_addr() as usize,
            (*info).si_code,
            *libc::__errno_location(),
        )
    };
    let phase = handler_enter();
    let handled = code == SEGV_ACCERR && record_tracked_write(addr);
    handler_exit(phase);
    // SAFETY: restoring this thread's errno.
    unsafe { *libc::__errno_location() = saved_errno };
    if !handled {
        chain(sig, info, ctx);
    }
}

/// The write fault at `addr` hit a tracked page: make it writable, then
/// record it. False if untracked.
///
/// Why this is race-free against a concurrent harvest (drain the bits,
/// then re-protect the drained pages): a harvest first waits
/// ([`synchronize`]) for every handler that started before it. A page is
/// only writable through some handler's `mprotect`, and that handler's bit
/// is set before the handler finishes, hence before any later harvest
/// drains. A harvest that drained the bit before our `mprotect` cannot
/// leave the page writable-and-clean for long: our bit store follows.
/// (Without the wait, a write by another thread through the page we just
/// made writable could complete, and a whole harvest run, before our bit
/// store: a false negative, which the concurrent-writers test caught.)
fn record_tracked_write(addr: usize) -> bool {
    for slot in SLOTS[..SLOTS_IN_USE.load(Ordering::SeqCst)].iter() {
        let start = slot.start.load(Ordering::SeqCst);
        if start == 0 || addr < start {
            continue;
        }
        let len = slot.len.load(Ordering::Acquire);
        if addr >= start + len {
            continue;
        }
        let page = addr & !(PAGE_SIZE - 1);
        if protect(page, PAGE_SIZE, true).is_err() {
            // Most likely ENOMEM: vm.max_map_count reached by the split.
            // Unprotect the whole range (merging its mappings) and report
            // all of it at the next harvest.
            if protect(start, len, true).is_err() {
                die("oohgc-dirty mprotect: cannot make a tracked range writable again after mprotect failed (vm.max_map_count exhausted?); aborting\n");
            }
            slot.degraded.store(true, Ordering::SeqCst);
            DEGRADES.fetch_add(1, Ordering::Relaxed);
        }
        set_bit(
            slot.words.load(Ordering::Acquire),
            (page - start) / PAGE_SIZE,
        );
        let counters = slot.counters.load(Ordering::Acquire);
        // SAFETY: the counters outlive the slot (the source frees its slots
        // and waits for handlers before dropping them).
        if let Some(c) = unsafe { counters.as_ref() } {
            c.write_traps.fetch_add(1, Ordering::Relaxed);
        }
        return true;
    }
    false
}

/// Hand a fault we do not own to the previous action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was written before our handler was installed.
    let previous = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default and return: the faulting instruction runs
        // again and the kernel kills the process with SIGSEGV as usual.
        // SAFETY: installing the default action for SIGSEGV.
        unsafe {
            let mut dfl: libc::sigaction = MaybeUninit::zeroed().assume_init();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
        }
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action declared the three-argument form.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous action is a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}
