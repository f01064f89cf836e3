//! Kernel-write pins: how a system call writes into memory the `mprotect`
//! source tracks without failing with `EFAULT`.
//!
//! The kernel raises no fault for its own writes (`read(2)`, `recv(2)`,
//! `epoll_wait(2)` into a user buffer): if a page of the buffer is
//! read-only, the call fails with `EFAULT`. So before such a call the
//! caller *pins* the buffer ([`KernelWrite::begin`]): every tracked page it
//! overlaps is made writable and recorded dirty, and it **stays writable
//! while pinned**: [arm](super::MprotectSource) and harvest skip pinned
//! pages when they re-protect, and keep their dirty bits set (a harvest
//! reports a pinned page every time). Dropping the [`KernelWrite`] unpins;
//! the page then stays writable and dirty until the next harvest reports it
//! and re-protects it.
//!
//! This module owns the pin table, the exclusion between pinners and
//! re-protectors, and the signal masking the pinner needs. Must not
//! touch: the dirty bitmaps and the range table except through `handler`.
//!
//! # Protocol
//!
//! * A fixed table of [`MAX_PINS`] page-aligned `[start, end)` slots,
//!   claimed by CAS on `end` (0 = free), released by storing 0.
//! * `REPROTECTING` (a count of re-protectors at work) and
//!   `PINNERS_MODIFYING` (a count of pinners inside their *modify
//!   section*) exclude each other, Dekker style, all `SeqCst`:
//!   - re-protector (arm, harvest): `REPROTECTING += 1`; wait until
//!     `PINNERS_MODIFYING == 0`; read the pins (a sorted snapshot), clear
//!     or drain bits, re-protect minus the pinned pages, set the pinned
//!     pages' bits again; `REPROTECTING -= 1`.
//!   - pinner: block signals; `PINNERS_MODIFYING += 1`; if `REPROTECTING
//!     != 0`: `-= 1`, unblock signals, wait until `REPROTECTING == 0`,
//!     retry. Else claim the slots, make the tracked pages writable and set
//!     their bits, `PINNERS_MODIFYING -= 1`, unblock signals.
//!
//!   In the single total order of `SeqCst` operations, either the pinner's
//!   increment comes before the re-protector's: then the re-protector's
//!   load sees it and waits for the decrement, which is ordered after the
//!   pinner's slot stores, unprotects and bit stores; or it comes after,
//!   and the pinner's load sees `REPROTECTING` and backs off before
//!   touching anything. So no re-protection ever overlaps a modify
//!   section, and a re-protector sees every pin claimed before it started.
//! * Unpinning is *not* excluded: a pin can vanish while a re-protector
//!   works. Either the re-protector saw the pin (the page stays writable
//!   with its bit set: the next harvest reports it — a false positive), or
//!   it did not, and then the call had returned before the unpin, so its
//!   write preceded this harvest's return, and the page's bit — set since
//!   the pin, kept by every harvest since — is drained and reported by this
//!   harvest, before the page is re-protected. A collector scans reported
//!   pages after the harvest returns, so it sees the write.
//! * Why no false negative: a write to a tracked page lands only if the
//!   page is writable. Pages become writable through the fault handler (bit
//!   set before the handler finishes, see `synchronize`), a degrade (the
//!   whole range is then reported), `track` (bits all set), or a pin (bit
//!   set in the modify section and kept set while pinned). A re-protection
//!   never makes a pinned page read-only, so a pinned call never sees
//!   `EFAULT` from a tracked page.
//! * Deadlock freedom: the modify section never waits for anything (no
//!   lock, no other thread), and it runs with every asynchronous signal
//!   blocked, so a thread cannot be *stopped* (the collector's suspend
//!   signal) or re-entered by a signal handler that pins while it is
//!   inside; a re-protector that waits for `PINNERS_MODIFYING == 0` during
//!   a stop-the-world pause therefore waits only for threads that are
//!   running. A pinner waits for `REPROTECTING == 0` (or for a free slot)
//!   only with its signals unblocked, where it can be stopped. A
//!   re-protector blocks the same signals for its own run, so a signal
//!   handler that pins on the re-protecting thread cannot wait for itself,
//!   and a harvest hands its pages to the sink only after the section (a
//!   sink may make system calls into tracked memory).
//!   Synchronous fault signals (`SIGSEGV`, `SIGBUS`, ...) stay unblocked:
//!   the `mprotect` source's own handler must still run, and it never waits
//!   either.
//! * `fork()`: a child inherits the counts of threads it does not have (a
//!   harvest may be running); a `pthread_atfork` child handler zeroes them
//!   ([`reset_in_fork_children`]).
//! * Signals are masked with the raw `rt_sigprocmask` system call, not
//!   `pthread_sigmask`: an interposed `pthread_sigmask` may (rightly, for
//!   programs) refuse to block the collector's suspend signal.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::handler::{die, handler_enter, handler_exit, protect, DEGRADES, SLOTS, SLOTS_IN_USE};
use crate::bitmap::set_bit;
use crate::raw_vec::RawVec;
use crate::PAGE_SIZE;

/// Pins that can exist at once, process-wide (one per buffer region of a
/// system call in progress; a pinner waits when all are taken).
pub const MAX_PINS: usize = 1024;

/// Regions one [`KernelWrite`] pins separately; further regions are
/// merged into the last one (covering the gap: more pages kept writable
/// and reported, never fewer).
pub const MAX_PINS_PER_CALL: usize = 8;

/// One pinned region, page-aligned. `end == 0` means free.
struct Pin {
    start: AtomicUsize,
    end: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_PIN: Pin = Pin {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
};

static PINS: [Pin; MAX_PINS] = [FREE_PIN; MAX_PINS];
/// One past the highest pin slot ever claimed: readers look no further.
static PINS_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// Re-protectors (arm, harvest) at work; pinners stay out while non-zero.
static REPROTECTING: AtomicUsize = AtomicUsize::new(0);
/// Pinners inside their modify section; re-protectors wait for zero.
static PINNERS_MODIFYING: AtomicUsize = AtomicUsize::new(0);
/// Tracked ranges over every `mprotect` source ([`any_tracked`]).
pub(super) static TRACKED_RANGES: AtomicUsize = AtomicUsize::new(0);
/// Lowest start and highest end ever tracked (they never shrink): a quick
/// reject for buffers far from every tracked range (stacks, `malloc`).
static TRACKED_LOW: AtomicUsize = AtomicUsize::new(usize::MAX);
static TRACKED_HIGH: AtomicUsize = AtomicUsize::new(0);

/// Record that `[start, end)` is about to be tracked (before its slot is
/// published).
pub(super) fn note_tracked(start: usize, end: usize) {
    TRACKED_LOW.fetch_min(start, Ordering::SeqCst);
    TRACKED_HIGH.fetch_max(end, Ordering::SeqCst);
}

/// Pins taken since start-up (a counter for reports and tests).
static PINS_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// Whether any `mprotect` source tracks memory now: the fast path of a
/// system-call wrapper (one relaxed load). When false no pin is needed.
#[inline]
pub fn any_tracked() -> bool {
    TRACKED_RANGES.load(Ordering::Relaxed) != 0
}

/// Pins taken since the process started (regions pinned, over all calls).
pub fn pins_taken() -> usize {
    PINS_TAKEN.load(Ordering::Relaxed)
}

/// A pin on the tracked pages of some buffers, held while a system call
/// writes into them; dropping it unpins (and leaves `errno` alone).
///
/// ```ignore
/// let pin = KernelWrite::begin(&[(buf as usize, len)]);
/// let n = libc::read(fd, buf, len);
/// drop(pin);
/// ```
#[must_use = "the pages are unpinned when the KernelWrite is dropped"]
pub struct KernelWrite {
    slots: [u16; MAX_PINS_PER_CALL],
    len: usize,
}

impl KernelWrite {
    /// Pin every tracked page overlapping the `(address, length)` regions
    /// (zero lengths and untracked memory are skipped; regions need not be
    /// valid memory). Waits (signals unblocked) while a harvest or arm is
    /// re-protecting, or while the pin table is full.
    pub fn begin(regions: &[(usize, usize)]) -> KernelWrite {
        Self::begin_iter(regions.iter().copied())
    }

    /// [`KernelWrite::begin`] over any iterator of `(address, length)`.
    pub fn begin_iter<I: IntoIterator<Item = (usize, usize)>>(regions: I) -> KernelWrite {
        Self::begin_with(|add| {
            for (addr, len) in regions {
                add(addr, len);
            }
        })
    }

    /// [`KernelWrite::begin`] over the regions `visit` passes to its
    /// argument as `(address, length)`: for callers that walk C structures
    /// (an `iovec` array, a `msghdr`) without collecting them first.
    pub fn begin_with(visit: impl FnOnce(&mut dyn FnMut(usize, usize))) -> KernelWrite {
        let mut want = [(0usize, 0usize); MAX_PINS_PER_CALL];
        let mut n = 0;
        visit(&mut |addr, len| {
            if len == 0 {
                return;
            }
            let start = addr & !(PAGE_SIZE - 1);
            let end = addr.saturating_add(len).saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
            if !overlaps_tracked(start, end) {
                return;
            }
            if n > 0 && (start <= want[n - 1].1 && end >= want[n - 1].0 || n == MAX_PINS_PER_CALL) {
                // Overlapping or adjacent, or no room left: extend the last.
                let last: &mut (usize, usize) = &mut want[n - 1];
                *last = (last.0.min(start), last.1.max(end));
            } else {
                want[n] = (start, end);
                n += 1;
            }
        });
        let mut pin = KernelWrite {
            slots: [0; MAX_PINS_PER_CALL],
            len: 0,
        };
        if n > 0 {
            pin.pin(&want[..n]);
        }
        pin
    }

    /// Whether anything was pinned (false when no region touched tracked memory).
    pub fn is_pinned(&self) -> bool {
        self.len != 0
    }

    fn pin(&mut self, regions: &[(usize, usize)]) {
        loop {
            let old = block_async_signals();
            PINNERS_MODIFYING.fetch_add(1, Ordering::SeqCst);
            if REPROTECTING.load(Ordering::SeqCst) != 0 {
                PINNERS_MODIFYING.fetch_sub(1, Ordering::SeqCst);
                restore_signals(old);
                wait_until(|| REPROTECTING.load(Ordering::SeqCst) == 0);
                continue;
            }
            // Modify section: no waiting from here to the decrement.
            if !self.claim(regions) {
                self.unpin();
                PINNERS_MODIFYING.fetch_sub(1, Ordering::SeqCst);
                restore_signals(old);
                wait_until(|| free_pins() >= regions.len());
                continue;
            }
            let phase = handler_enter();
            for &(start, end) in regions {
                make_writable_and_dirty(start, end);
            }
            handler_exit(phase);
            PINNERS_MODIFYING.fetch_sub(1, Ordering::SeqCst);
            restore_signals(old);
            PINS_TAKEN.fetch_add(regions.len(), Ordering::Relaxed);
            return;
        }
    }

    /// Claim one slot per region; false (some may be claimed) if the table is full.
    fn claim(&mut self, regions: &[(usize, usize)]) -> bool {
        'regions: for &(start, end) in regions {
            for (i, pin) in PINS.iter().enumerate() {
                if pin.end.load(Ordering::Relaxed) == 0
                    && pin
                        .end
                        .compare_exchange(0, end, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    pin.start.store(start, Ordering::SeqCst);
                    PINS_IN_USE.fetch_max(i + 1, Ordering::SeqCst);
                    self.slots[self.len] = i as u16;
                    self.len += 1;
                    continue 'regions;
                }
            }
            return false;
        }
        true
    }

    fn unpin(&mut self) {
        for &i in &self.slots[..self.len] {
            PINS[i as usize].end.store(0, Ordering::SeqCst);
        }
        self.len = 0;
    }
}

impl Drop for KernelWrite {
    fn drop(&mut self) {
        // Atomic stores only: errno is untouched.
        self.unpin();
    }
}

/// Register (once) the fork-child reset of the exclusion counters: a
/// `fork()` may land while another thread re-protects or pins (a harvest
/// runs concurrently with the program), and in the child that thread does
/// not exist, so the counts it held would keep every pinner of the child
/// waiting forever. The forking thread itself is in neither section (both
/// run with asynchronous signals blocked and call no `fork`), so zero is
/// the child's truth. Pins of vanished threads stay: their pages remain
/// writable and reported (false positives only).
pub(super) fn reset_in_fork_children() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        extern "C" fn child() {
            REPROTECTING.store(0, Ordering::SeqCst);
            PINNERS_MODIFYING.store(0, Ordering::SeqCst);
        }
        // SAFETY: registering a handler that only stores to atomics.
        if unsafe { libc::pthread_atfork(None, None, Some(child)) } != 0 {
            die("oohgc-dirty mprotect: pthread_atfork failed\n");
        }
    });
}

/// Free pin slots now (a hint for a waiting pinner).
fn free_pins() -> usize {
    PINS.iter()
        .filter(|p| p.end.load(Ordering::Relaxed) == 0)
        .count()
}

/// Spin briefly, then yield, until `done`.
fn wait_until(done: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !done() {
        if spins < 64 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// Whether `[start, end)` overlaps a tracked range (lock-free; a range
/// tracked or untracked meanwhile cannot hold a buffer the caller owns).
fn overlaps_tracked(start: usize, end: usize) -> bool {
    if end <= TRACKED_LOW.load(Ordering::Acquire) || start >= TRACKED_HIGH.load(Ordering::Acquire) {
        return false;
    }
    SLOTS[..SLOTS_IN_USE.load(Ordering::Acquire)]
        .iter()
        .any(|slot| {
            let s = slot.start.load(Ordering::Acquire);
            s != 0 && s < end && start < s + slot.len.load(Ordering::Acquire)
        })
}

/// Make every tracked page in `[start, end)` writable and set its bit
/// (inside the modify section and a handler grace period, which keeps the
/// bitmaps alive).
fn make_writable_and_dirty(start: usize, end: usize) {
    for slot in SLOTS[..SLOTS_IN_USE.load(Ordering::SeqCst)].iter() {
        let s = slot.start.load(Ordering::SeqCst);
        if s == 0 {
            continue;
        }
        let len = slot.len.load(Ordering::SeqCst);
        let (lo, hi) = (start.max(s), end.min(s + len));
        if lo >= hi {
            continue;
        }
        if protect(lo, hi - lo, true).is_err() {
            // ENOMEM at vm.max_map_count: degrade the range, as the fault
            // handler does (all writable, all reported next harvest).
            if protect(s, len, true).is_err() {
                die("oohgc-dirty mprotect: cannot make a pinned range writable (vm.max_map_count exhausted?); aborting\n");
            }
            slot.degraded.store(true, Ordering::SeqCst);
            DEGRADES.fetch_add(1, Ordering::Relaxed);
        }
        let words = slot.words.load(Ordering::Acquire);
        for page in (lo..hi).step_by(PAGE_SIZE) {
            set_bit(words, (page - s) / PAGE_SIZE);
        }
    }
}

/// Held by arm and harvest while they clear bits and re-protect: no pinner
/// is in its modify section meanwhile, and the pins can only shrink.
pub(super) struct Reprotecting {
    old_mask: u64,
}

impl Reprotecting {
    /// Announce a re-protection and wait for the pinners in their modify
    /// sections (they never wait, so this ends even in a pause).
    pub(super) fn enter() -> Reprotecting {
        let old_mask = block_async_signals();
        REPROTECTING.fetch_add(1, Ordering::SeqCst);
        wait_until(|| PINNERS_MODIFYING.load(Ordering::SeqCst) == 0);
        Reprotecting { old_mask }
    }

    /// The pinned regions now, sorted by start and merged, into `out`.
    pub(super) fn snapshot(&self, out: &mut RawVec<(usize, usize)>) {
        out.clear();
        for pin in PINS[..PINS_IN_USE.load(Ordering::SeqCst)].iter() {
            let end = pin.end.load(Ordering::SeqCst);
            if end == 0 {
                continue;
            }
            let start = pin.start.load(Ordering::SeqCst);
            if start < end {
                out.push((start, end));
            }
        }
        let pins = out.as_mut_slice();
        pins.sort_unstable();
        let mut merged = 0;
        for i in 0..pins.len() {
            if merged > 0 && pins[i].0 <= pins[merged - 1].1 {
                pins[merged - 1].1 = pins[merged - 1].1.max(pins[i].1);
            } else {
                pins[merged] = pins[i];
                merged += 1;
            }
        }
        out.truncate(merged);
    }
}

impl Drop for Reprotecting {
    fn drop(&mut self) {
        REPROTECTING.fetch_sub(1, Ordering::SeqCst);
        restore_signals(self.old_mask);
    }
}

/// Make `[start, start+len)` read-only except the pages in `pins` (sorted,
/// disjoint); false if some `mprotect` failed.
pub(super) fn protect_except(start: usize, len: usize, pins: &[(usize, usize)]) -> bool {
    let end = start + len;
    let mut cursor = start;
    let mut ok = true;
    let first = pins.partition_point(|&(_, e)| e <= start);
    for &(ps, pe) in &pins[first..] {
        if ps >= end {
            break;
        }
        if ps > cursor {
            ok &= protect(cursor, ps - cursor, false).is_ok();
        }
        cursor = cursor.max(pe);
    }
    if cursor < end {
        ok &= protect(cursor, end - cursor, false).is_ok();
    }
    ok
}

/// Call `f(page_index)` for every page of `[start, start+len)` in `pins`.
pub(super) fn for_each_pinned_page(
    start: usize,
    len: usize,
    pins: &[(usize, usize)],
    f: &mut dyn FnMut(usize),
) {
    let end = start + len;
    let first = pins.partition_point(|&(_, e)| e <= start);
    for &(ps, pe) in &pins[first..] {
        if ps >= end {
            break;
        }
        for page in (ps.max(start)..pe.min(end)).step_by(PAGE_SIZE) {
            f((page - start) / PAGE_SIZE);
        }
    }
}

/// Signals that stay deliverable inside a modify section: the synchronous
/// faults (blocking them turns a fault into a kill) and the unblockable.
const UNBLOCKED: [i32; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGKILL,
    libc::SIGSTOP,
];

/// Block every asynchronous signal of this thread; returns the old mask.
fn block_async_signals() -> u64 {
    let mut set = u64::MAX;
    for sig in UNBLOCKED {
        set &= !(1u64 << (sig - 1));
    }
    let mut old = 0u64;
    if raw_sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
        die("oohgc-dirty mprotect: rt_sigprocmask failed\n");
    }
    old
}

fn restore_signals(old: u64) {
    if raw_sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) != 0 {
        die("oohgc-dirty mprotect: rt_sigprocmask failed\n");
    }
}

/// `rt_sigprocmask(how, set, old, 8)` as a raw system call: no C library
/// wrapper (which may be interposed), no `errno`. Returns 0 or `-errno`.
#[cfg(target_arch = "x86_64")]
fn raw_sigprocmask(how: i32, set: *const u64, old: *mut u64) -> isize {
    let ret: isize;
    // SAFETY: rt_sigprocmask reads 8 bytes at `set` and writes 8 at `old`
    // (or nothing when null); both point at valid locals of our callers.
    // The syscall instruction clobbers rcx and r11 only.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_rt_sigprocmask as isize => ret,
            in("rdi") how as isize,
            in("rsi") set,
            in("rdx") old,
            in("r10") 8usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `rt_sigprocmask(how, set, old, 8)` as a raw system call (see the x86-64 version).
#[cfg(target_arch = "aarch64")]
fn raw_sigprocmask(how: i32, set: *const u64, old: *mut u64) -> isize {
    let ret: isize;
    // SAFETY: as for x86-64; `svc 0` takes the number in x8 and returns in x0.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") libc::SYS_rt_sigprocmask,
            inlateout("x0") how as isize => ret,
            in("x1") set,
            in("x2") old,
            in("x3") 8usize,
            options(nostack),
        );
    }
    ret
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("oohgc-dirty mprotect: raw rt_sigprocmask is written for x86-64 and aarch64 only");
