//! The `mprotect` source: `PROT_READ` plus a `SIGSEGV` handler (bdwgc's
//! `MPROTECT_VDB`).
//!
//! Arming makes every tracked range read-only. The first write to a page
//! faults; the process-wide signal handler finds the page in a global,
//! lock-free table of tracked ranges, makes that one page writable again
//! and sets its bit in the range's dirty bitmap; the writer then retries
//! and proceeds (~4-6 us per first write on the project's VM). A harvest
//! drains the bitmaps and makes the reported pages read-only again.
//!
//! Limits, all inherent in the mechanism:
//! * **System calls that write into a protected page fail with `EFAULT`**
//!   (the kernel does not raise a signal for its own accesses): e.g.
//!   `read(2)` into a tracked buffer returns -1/EFAULT and writes nothing.
//!   Programs must not hand tracked memory to the kernel while armed.
//! * **Mapping splits.** Each writable page inside a read-only range is a
//!   separate kernel mapping (VMA); scattered first writes can exhaust
//!   `vm.max_map_count` (65530 by default), and `mprotect` then fails with
//!   `ENOMEM`. The source degrades safely: it makes the *whole* range
//!   writable again (which merges its mappings back), flags it, and the
//!   next harvest reports every page of it (false positives, never a false
//!   negative) and tries to protect the whole range in one call. Degrades
//!   are counted (`degraded_ranges`). Only if even unprotecting the whole
//!   range fails does the handler abort the process with a message: it
//!   could not make progress otherwise.
//! * Tracked memory must be ordinary read-write memory: a protection fault
//!   inside a tracked range is taken to be a tracked write.
//! * Faults outside tracked ranges go to the handler that was installed
//!   before this one (chained). If that was the default action, it is
//!   restored and the fault re-occurs, killing the process with the usual
//!   `SIGSEGV`. A handler installed *after* this one must chain to it.
//!
//! The handler runs with every signal blocked (so the collector's suspend
//! signal cannot interrupt it), on the alternate signal stack if the thread
//! has one, and preserves `errno`.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::bitmap::{set_bit, PageBitmap};
use crate::counters::{add_elapsed, bump, AtomicCounters};
use crate::ranges::TrackedRanges;
use crate::raw_vec::RawVec;
use crate::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};

const NAME: &str = "mprotect";
/// `si_code` of a fault on a mapped page lacking the permission (asm-generic/siginfo.h).
const SEGV_ACCERR: i32 = 2;

/// Tracked ranges the signal handler can see, over all `mprotect` sources
/// of the process.
pub const MAX_TRACKED_RANGES: usize = 1024;

/// One tracked range as the signal handler sees it. `start == 0` means free.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    words: AtomicPtr<AtomicU64>,
    counters: AtomicPtr<AtomicCounters>,
    /// Set when re-protecting failed and the whole range was made writable:
    /// the next harvest reports every page.
    degraded: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    words: AtomicPtr::new(std::ptr::null_mut()),
    counters: AtomicPtr::new(std::ptr::null_mut()),
    degraded: AtomicBool::new(false),
};

static SLOTS: [Slot; MAX_TRACKED_RANGES] = [FREE_SLOT; MAX_TRACKED_RANGES];
/// One past the highest slot ever used: the handler looks no further.
static SLOTS_IN_USE: AtomicUsize = AtomicUsize::new(0);
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
static REGISTRY: Mutex<()> = Mutex::new(());
/// Degrades (whole range made writable after ENOMEM), process-wide.
static DEGRADES: AtomicU64 = AtomicU64::new(0);

/// The `SIGSEGV` action that was installed before ours.
struct PreviousAction(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written only under REGISTRY before our handler is installed, read
// only by the handler after installation (the sigaction call orders them).
unsafe impl Sync for PreviousAction {}
static PREVIOUS: PreviousAction = PreviousAction(UnsafeCell::new(MaybeUninit::zeroed()));

/// Install the handler unless it is the current `SIGSEGV` action.
fn install_handler() -> Result<(), DirtyError> {
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

fn os_error(op: &'static str) -> DirtyError {
    DirtyError::Os {
        op,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// Register a running handler; returns the phase slot to release.
fn handler_enter() -> usize {
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

fn handler_exit(i: usize) {
    HANDLERS_IN_PHASE[i].fetch_sub(1, Ordering::SeqCst);
}

/// Wait until every signal handler that started before this call has
/// finished (so its recorded bit and its mprotect are both visible).
fn synchronize() {
    let _g = GRACE.lock().unwrap_or_else(|p| p.into_inner());
    let old = PHASE.fetch_add(1, Ordering::SeqCst);
    while HANDLERS_IN_PHASE[old & 1].load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

/// `mprotect` without allocation; returns the errno on failure.
fn protect(start: usize, len: usize, writable: bool) -> Result<(), i32> {
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
fn die(message: &str) -> ! {
    // SAFETY: write(2) of a static message to stderr, then abort.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::abort()
    }
}

/// The address of [`on_sigsegv`] as `sigaction` stores it.
fn handler_address() -> libc::sighandler_t {
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

/// A harvest re-protects the whole range in one `mprotect` when it found
/// more than `pages / WHOLE_RANGE_RUNS_DIVISOR` runs of dirty pages. On the
/// project's VM one `mprotect` per run costs ~7 us and a whole-range one
/// ~0.35 us per populated page (`benches/sources.rs`), so past roughly one
/// run per 20 pages the single call wins.
pub const WHOLE_RANGE_RUNS_DIVISOR: usize = 20;

/// Per-range data the source keeps: its slot index and bitmap.
#[derive(Clone, Copy)]
struct Entry {
    slot: usize,
    bitmap: PageBitmap,
}

/// The `mprotect` [`DirtySource`].
pub struct MprotectSource {
    ranges: Mutex<TrackedRanges<Entry>>,
    /// Boxed so that its address, stored in the slots, is stable.
    counters: Box<AtomicCounters>,
    /// Scratch list of the runs found by a harvest (raw mmap).
    runs: Mutex<RawVec<PageRange>>,
    whole_range_reprotects: AtomicU64,
}

impl MprotectSource {
    /// Install the process-wide `SIGSEGV` handler (once) and open a source.
    pub fn open() -> Result<MprotectSource, DirtyError> {
        install_handler()?;
        Ok(MprotectSource {
            ranges: Mutex::new(TrackedRanges::new()),
            counters: Box::default(),
            runs: Mutex::new(RawVec::new()),
            whole_range_reprotects: AtomicU64::new(0),
        })
    }

    /// Whether `SIGSEGV` is currently handled by this module's handler.
    pub fn handler_installed() -> bool {
        let mut current = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: querying the current action.
        unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), current.as_mut_ptr()) };
        // SAFETY: zeroed or filled by sigaction.
        unsafe { current.assume_init() }.sa_sigaction == handler_address()
    }

    fn lock(&self) -> MutexGuard<'_, TrackedRanges<Entry>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make `range` read-only, or degrade it (writable, all dirty) if the
    /// kernel refuses (ENOMEM at `vm.max_map_count`).
    fn protect_or_degrade(&self, range: PageRange, entry: Entry) {
        if protect(range.start, range.len, false).is_err() {
            let _ = protect(range.start, range.len, true);
            SLOTS[entry.slot].degraded.store(true, Ordering::SeqCst);
            DEGRADES.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(range: PageRange, entry: Entry) {
        SLOTS[entry.slot].start.store(0, Ordering::SeqCst);
        synchronize();
        let _ = protect(range.start, range.len, true);
        // SAFETY: the slot is cleared and no handler is reading it any more.
        unsafe { entry.bitmap.free() };
        SLOTS[entry.slot]
            .words
            .store(std::ptr::null_mut(), Ordering::SeqCst);
    }
}

impl Drop for MprotectSource {
    fn drop(&mut self) {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        while let Some((r, e)) = ranges.pop() {
            Self::release(r, e);
        }
    }
}

impl DirtySource for MprotectSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        for slot in SLOTS.iter() {
            let s = slot.start.load(Ordering::SeqCst);
            if s != 0 && s < range.end() && range.start < s + slot.len.load(Ordering::SeqCst) {
                return Err(DirtyError::BadRange {
                    start: range.start,
                    len: range.len,
                    what: "overlaps a range tracked by another mprotect source",
                });
            }
        }
        // Tracked memory must be mapped read-write memory; this also
        // catches unmapped holes now rather than at arm.
        if protect(range.start, range.len, true).is_err() {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what:
                    "is not entirely mapped memory that can be made read-write (mprotect refused)",
            });
        }
        let slot = SLOTS
            .iter()
            .position(|s| {
                s.start.load(Ordering::SeqCst) == 0 && s.words.load(Ordering::SeqCst).is_null()
            })
            .ok_or(DirtyError::Capacity {
                what: "mprotect tracked-range table (MAX_TRACKED_RANGES per process)",
            })?;
        // New pages count as dirty until the next arm or harvest.
        let bitmap = PageBitmap::new(range.pages(), true);
        let s = &SLOTS[slot];
        s.len.store(range.len, Ordering::SeqCst);
        s.words
            .store(bitmap.words_ptr() as *mut AtomicU64, Ordering::SeqCst);
        s.counters.store(
            &*self.counters as *const AtomicCounters as *mut AtomicCounters,
            Ordering::SeqCst,
        );
        s.degraded.store(false, Ordering::SeqCst);
        SLOTS_IN_USE.fetch_max(slot + 1, Ordering::SeqCst);
        s.start.store(range.start, Ordering::SeqCst);
        ranges.insert(range, Entry { slot, bitmap });
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let _g = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranges = self.lock();
        let i = ranges.position(range)?;
        let (r, e) = ranges.remove_at(i);
        Self::release(r, e);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        for (r, e) in ranges.iter() {
            e.bitmap.clear_all();
            SLOTS[e.slot].degraded.store(false, Ordering::SeqCst);
            self.protect_or_degrade(*r, *e);
        }
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        // Every fault handled before this point has recorded its page.
        synchronize();
        let mut pages = 0u64;
        for (r, e) in ranges.iter() {
            if SLOTS[e.slot].degraded.swap(false, Ordering::SeqCst) {
                e.bitmap.clear_all();
                pages += r.pages() as u64;
                sink(*r);
                self.protect_or_degrade(*r, *e);
                continue;
            }
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.clear();
            e.bitmap.drain_runs(r.start, &mut |run| {
                pages += run.pages() as u64;
                sink(run);
                runs.push(run);
            });
            if runs.is_empty() {
                continue;
            }
            let failed = if runs.len() > r.pages() / WHOLE_RANGE_RUNS_DIVISOR {
                // Many scattered runs: one call over the whole range is
                // cheaper than one per run (and protecting clean pages
                // again is harmless).
                bump(&self.whole_range_reprotects, 1);
                protect(r.start, r.len, false).is_err()
            } else {
                runs.iter()
                    .any(|run| protect(run.start, run.len, false).is_err())
            };
            if failed {
                // Some run stayed writable: make the whole range writable
                // and report all of it next time.
                let _ = protect(r.start, r.len, true);
                SLOTS[e.slot].degraded.store(true, Ordering::SeqCst);
                DEGRADES.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(ranges);
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        let ranges = self.lock();
        for (r, _) in ranges.iter() {
            protect(r.start, r.len, true).map_err(|errno| DirtyError::Os {
                op: "mprotect(PROT_READ|PROT_WRITE)",
                errno,
            })?;
        }
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        let ranges = self.lock();
        f("tracked_pages", ranges.total_pages());
        let degraded_now = ranges
            .iter()
            .filter(|(_, e)| SLOTS[e.slot].degraded.load(Ordering::Relaxed))
            .count();
        drop(ranges);
        f("degraded_ranges", degraded_now as u64);
        f("degrades_total_process", DEGRADES.load(Ordering::Relaxed));
        f(
            "whole_range_reprotects",
            self.whole_range_reprotects.load(Ordering::Relaxed),
        );
    }
}
