//! Stop-the-world: suspend every other thread of the process, report where
//! their roots are, and restart them when the `StoppedWorld` is dropped.
//!
//! Which threads: every thread listed in `/proc/self/task` except the caller
//! and excluded (collector-internal) threads — registered or not, because a
//! thread that never allocated may still hold a pointer. Threads inside a
//! blocking region are not signalled; their recorded stack is reported.
//! Listing repeats until a round finds no new thread, so threads created
//! while stopping are caught (only running threads can create threads, and
//! after a round every listed thread is stopped).
//!
//! Waiting: the stopper futex-waits on the acknowledgement counter. Signals
//! that seem lost are re-sent after [`FIRST_RESEND_AFTER_NS`], then at
//! doubling intervals up to [`MAX_RESEND_INTERVAL_NS`]. A target that exited
//! is dropped (`tgkill` says `ESRCH`). At each re-send the late thread's
//! `/proc/self/task/<tid>/status` is read (`SigBlk`, `State`).
//!
//! Threads that cannot take the suspend signal. A thread that never
//! registered is *given up* — neither stopped nor reported, so its stack and
//! registers are not scanned — in three cases, each said on stderr (once per
//! thread, with its tid and name) and counted in [`StopStats::given_up`] and
//! [`threads_given_up`]:
//! - at [`EARLY_GIVE_UP_LOOKS`] consecutive looks (the second is about 6 ms
//!   after the first signal), it was asleep with a mask that blocks the
//!   suspend, restart and fault signals and leaves glibc's `SIGCANCEL` (32)
//!   open. glibc blocks *every* signal, `SIGCANCEL` included, in its own
//!   windows (a thread's start until its start routine's mask is in place,
//!   `pthread_create` and `posix_spawn` in the parent), and no glibc function
//!   lets a program block `SIGCANCEL`; so such a mask was set by the program
//!   itself, by a means the collector cannot intercept (a raw
//!   `rt_sigprocmask` system call: oohgc's interposed `pthread_sigmask` and
//!   `sigprocmask` keep the suspend signal open), and the thread is waiting
//!   with it, not passing through a short critical section. (A full mask
//!   alone is not enough: a starting thread already owns its start closure,
//!   which may hold a pointer, and may wait for the CPU far longer than a
//!   scheduler slice on a loaded machine.)
//! - it was found so in an earlier stop (remembered by tid and start time)
//!   and its mask still blocks those signals: given up before signalling.
//! - it has not acknowledged after [`UNREGISTERED_GIVE_UP_NS`], whatever its
//!   mask (a mask with every bit set, as glibc's windows have, ends here).
//!
//! Giving up is not sound when the thread holds the only reference to an
//! object; waiting for it could be for ever. The give-up is therefore loud
//! and counted, never silent. Registered threads run this crate's code and
//! may hold the allocator's or the collector's state, which must not change
//! during a pause: they are waited for indefinitely, with one warning on
//! stderr when their mask is found blocking (or after
//! [`REGISTERED_WARN_AFTER_NS`]).
//!
//! Rule for concurrent stoppers: `stop_world` holds the world lock (see
//! `world_lock`) until the `StoppedWorld` is dropped; a second caller waits
//! for it and is stopped like any other thread meanwhile. Nothing here takes
//! any other lock or allocates through the global allocator, so a stopped
//! thread holding the heap lock cannot block a stop.

use core::marker::PhantomData;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::foreign_bounds::{self, ThreadMappings};
use crate::memory_map::{self, MappingQuery, Range};
use crate::registry::{self, MAX_TLS_RANGES};
use crate::signals;
use crate::stop_table::{
    self, Status, Target, TargetState, ACKS_PENDING, ACK_WORD, EPOCH, MAX_STOPPED_THREADS,
    STOPPER_TID, TARGET_COUNT,
};
use crate::sys;
use crate::task_list;
use crate::world_lock;

/// Delay before the first re-send of a suspend signal that was not
/// acknowledged (and the first look at the late thread's signal mask).
pub const FIRST_RESEND_AFTER_NS: u64 = 2_000_000;
/// Longest delay between two re-sends.
pub const MAX_RESEND_INTERVAL_NS: u64 = 20_000_000;
/// A thread that never registered and does not acknowledge for this long is
/// given up even if its signal mask does not block the suspend signal.
///
/// Two seconds, not less: a thread that was just created runs with every
/// signal blocked until glibc's start routine unblocks them, and on a loaded
/// machine (64 runnable threads on 2 cores in the torture suite) it may wait
/// for the CPU far longer than a scheduler slice. A thread given up runs on
/// during the pause, so giving up early trades a stall for a risk; a thread
/// that blocks the signal for good is remembered and skipped at once later.
pub const UNREGISTERED_GIVE_UP_NS: u64 = 2_000_000_000;
/// A registered thread that does not acknowledge for this long is reported
/// once on stderr (and still waited for).
pub const REGISTERED_WARN_AFTER_NS: u64 = 1_000_000_000;
/// Consecutive late looks (one per re-send) that must find a thread asleep
/// with a mask of its own blocking the suspend signal before it is given up
/// early (see the module doc). Two: the first at [`FIRST_RESEND_AFTER_NS`],
/// the second one doubled interval later, so the thread slept with that
/// mask across both (about 6 ms after the first signal).
pub const EARLY_GIVE_UP_LOOKS: u8 = 2;

/// glibc's thread-cancellation signal (`SIGCANCEL`, the kernel's signal 32,
/// below `SIGRTMIN`): blocked in glibc's own all-signals-blocked windows,
/// never in a mask a program sets through glibc.
const GLIBC_SIGCANCEL: i32 = 32;

/// Threads given up, summed over every stop of the process.
static GIVEN_UP_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Threads given up (neither stopped nor scanned) by every stop so far,
/// summed: a thread given up by three stops counts three times.
pub fn threads_given_up() -> u64 {
    GIVEN_UP_TOTAL.load(Ordering::Relaxed)
}

/// Counters of one stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct StopStats {
    /// Threads reported (stopped, or in a blocking region).
    pub threads: usize,
    /// Suspend signals sent, first sends only.
    pub signals_sent: usize,
    /// Suspend signals re-sent because no acknowledgement came in time.
    pub resends: usize,
    /// Time from the call to `stop_world` until every thread was stopped.
    pub stop_ns: u64,
    /// Threads given up: not stopped, not reported, their stacks and
    /// registers not scanned (see the module doc). Each one is also named
    /// on stderr, once per thread.
    pub given_up: usize,
}

/// The roots of one stopped thread.
#[derive(Clone, Copy, Debug)]
pub struct ThreadRoots<'a> {
    /// Kernel thread id.
    pub tid: i32,
    /// `[lo, hi)`: `lo` is the stack pointer at suspension (below the saved
    /// registers) or at blocking-region entry (after a register spill); `hi`
    /// is the stack base (for glibc spawned threads, the top of the stack
    /// mapping, their static TLS block included).
    pub stack: (usize, usize),
    /// Static TLS ranges not inside `stack` (the main thread's TLS block).
    pub tls: &'a [(usize, usize)],
    /// Whether the thread is in a blocking region (running, not suspended).
    pub in_blocking_region: bool,
}

/// The world, stopped. Dropping it restarts every suspended thread. It must
/// be dropped on the thread that stopped the world (`!Send`).
pub struct StoppedWorld {
    epoch: u32,
    stats: StopStats,
    _not_send: PhantomData<*mut ()>,
}

/// Stops every other thread except excluded ones (see the module doc) and
/// returns once each has acknowledged. Initialises the signals from the
/// environment if `init` was not called (panics with the error's message if
/// that fails). Never allocates through the global allocator.
pub fn stop_world() -> StoppedWorld {
    signals::ensure_initialized();
    world_lock::acquire();
    let start = sys::now_ns();
    let me = sys::gettid();
    STOPPER_TID.store(me, Ordering::SeqCst);
    let table = stop_table::targets();
    let previous = EPOCH.load(Ordering::SeqCst);
    if previous != 0 {
        stop_table::finish_previous_restart(previous.wrapping_sub(1), signals::restart_signal());
    }
    TARGET_COUNT.store(0, Ordering::Release);
    ACKS_PENDING.store(0, Ordering::SeqCst);
    // SeqCst: pairs with threads leaving a blocking region (Dekker).
    let epoch = EPOCH.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
    debug_assert!(epoch & 1 == 1);
    let mut stats = StopStats::default();
    loop {
        let added = list_and_signal(me, table, &mut stats);
        if added == 0 {
            break;
        }
        wait_for_acknowledgements(epoch, &mut stats);
    }
    resolve_roots();
    stats.threads = reported_targets().count();
    stats.given_up = stop_table::current_targets()
        .iter()
        // SAFETY: the world lock is held by this thread.
        .filter(|t| unsafe { t.state() }.status == Status::GivenUp)
        .count();
    if stats.given_up > 0 {
        GIVEN_UP_TOTAL.fetch_add(stats.given_up as u64, Ordering::Relaxed);
    }
    stats.stop_ns = sys::now_ns() - start;
    StoppedWorld {
        epoch,
        stats,
        _not_send: PhantomData,
    }
}

impl StoppedWorld {
    /// Calls `f` for every stopped thread and every thread in a blocking region.
    pub fn for_each_thread(&self, f: &mut dyn FnMut(&ThreadRoots)) {
        for target in reported_targets() {
            // SAFETY: this StoppedWorld holds the world lock; nothing mutates
            // target states until it is dropped.
            let state = unsafe { target.state() };
            f(&ThreadRoots {
                tid: target.tid.load(Ordering::Relaxed),
                stack: state.stack,
                tls: &state.tls[..state.tls_len],
                in_blocking_region: state.status == Status::Blocking,
            });
        }
    }

    /// Number of threads `for_each_thread` reports.
    pub fn thread_count(&self) -> usize {
        self.stats.threads
    }

    /// Counters of this stop.
    pub fn stats(&self) -> StopStats {
        self.stats
    }
}

impl Drop for StoppedWorld {
    fn drop(&mut self) {
        // SeqCst: a handler that acknowledges after this store either sees
        // the new epoch (and does not wait) or is seen as acknowledged below.
        EPOCH.store(self.epoch.wrapping_add(1), Ordering::SeqCst);
        let restart = signals::restart_signal();
        let targets = stop_table::current_targets();
        let acked = |index: usize| targets[index].acked_epoch.load(Ordering::SeqCst) == self.epoch;
        for (index, target) in targets.iter().enumerate() {
            // Threads whose parent in the restart forest acknowledged are
            // restarted by that parent.
            let passed_on = stop_table::restart_parent(index).is_some_and(acked);
            if acked(index) && !passed_on {
                // Errors (ESRCH) only mean the thread is gone.
                let _ = sys::tgkill(target.tid.load(Ordering::Relaxed), restart);
            }
        }
        // Threads that left a blocking region during the stop wait on EPOCH.
        sys::futex_wake(&EPOCH, i32::MAX);
        STOPPER_TID.store(0, Ordering::SeqCst);
        world_lock::release();
    }
}

/// Targets whose roots are reported.
fn reported_targets() -> impl Iterator<Item = &'static Target> {
    stop_table::current_targets().iter().filter(|t| {
        // SAFETY: called only while the world lock is held.
        let status = unsafe { t.state() }.status;
        matches!(status, Status::Acked | Status::Blocking)
    })
}

/// Lists the process's threads and signals the new ones. Returns how many
/// new targets were added.
fn list_and_signal(me: i32, table: &'static [Target], stats: &mut StopStats) -> usize {
    let mut added = 0;
    let suspend = signals::suspend_signal();
    let mut consider = |tid: i32| {
        if tid == me
            || stop_table::current_targets()
                .iter()
                .any(|t| t.tid.load(Ordering::Relaxed) == tid)
        {
            return;
        }
        let info = registry::lookup(tid);
        if info.is_some_and(|i| i.excluded) {
            return;
        }
        let index = TARGET_COUNT.load(Ordering::Relaxed);
        if index >= MAX_STOPPED_THREADS {
            sys::write_stderr(b"oohgc-barriers: more than 8192 threads to stop; aborting\n");
            std::process::abort();
        }
        let target = &table[index];
        target.acked_epoch.store(0, Ordering::Relaxed);
        target.resumed_epoch.store(0, Ordering::Relaxed);
        target.sp.store(0, Ordering::Relaxed);
        target.thread_pointer.store(0, Ordering::Relaxed);
        let mut state = TargetState {
            registered: info.is_some(),
            info: info.unwrap_or_default(),
            ..TargetState::default()
        };
        target.tid.store(tid, Ordering::Release);
        TARGET_COUNT.store(index + 1, Ordering::Release);
        if state.info.in_blocking {
            state.status = Status::Blocking;
        } else if !state.registered && still_known_blocker(tid, suspend) {
            // Given up by an earlier stop and still blocking: no signal
            // (it would only stay pending), no wait.
            state.status = Status::GivenUp;
        } else {
            state.first_signal_ns = sys::now_ns();
            ACKS_PENDING.fetch_add(1, Ordering::SeqCst);
            state.status = match sys::tgkill(tid, suspend) {
                Ok(()) => {
                    stats.signals_sent += 1;
                    Status::Signalled
                }
                Err(libc::ESRCH) => {
                    ACKS_PENDING.fetch_sub(1, Ordering::SeqCst);
                    Status::Gone
                }
                // EAGAIN (signal queue full): the re-send will retry.
                Err(_) => Status::Signalled,
            };
        }
        // SAFETY: the world lock is held by this thread.
        *unsafe { target.state_mut() } = state;
        added += 1;
    };
    if !task_list::for_each_thread_id(&mut consider) {
        // No procfs: only registered threads can be found.
        registry::for_each_registered_tid(&mut consider);
    }
    added
}

fn wait_for_acknowledgements(epoch: u32, stats: &mut StopStats) {
    let suspend = signals::suspend_signal();
    let mut interval = FIRST_RESEND_AFTER_NS;
    let mut deadline = sys::now_ns() + interval;
    loop {
        let seen = ACK_WORD.load(Ordering::Acquire);
        let mut pending = 0;
        for target in stop_table::current_targets() {
            // SAFETY: the world lock is held by this thread.
            let state = unsafe { target.state_mut() };
            if state.status != Status::Signalled {
                continue;
            }
            if target.acked_epoch.load(Ordering::Acquire) == epoch {
                state.status = Status::Acked;
            } else {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        let now = sys::now_ns();
        if now < deadline {
            if !spin_for_acknowledgements(seen, now) {
                sys::futex_wait(&ACK_WORD, seen, Some(deadline - now));
            }
            continue;
        }
        for target in stop_table::current_targets() {
            // SAFETY: the world lock is held by this thread.
            let state = unsafe { target.state_mut() };
            if state.status != Status::Signalled
                || target.acked_epoch.load(Ordering::Acquire) == epoch
            {
                continue;
            }
            let tid = target.tid.load(Ordering::Relaxed);
            handle_late_thread(tid, state, now, suspend);
            if state.status == Status::Signalled {
                // A thread still waiting in the handler of an older stop
                // (whatever the reason) needs a restart signal before it
                // can take the new suspend signal.
                let _ = sys::tgkill(tid, signals::restart_signal());
                match sys::tgkill(tid, suspend) {
                    Ok(()) => stats.resends += 1,
                    Err(libc::ESRCH) => state.status = Status::Gone,
                    Err(_) => {}
                }
            }
            if state.status != Status::Signalled {
                // No acknowledgement expected from it any more.
                ACKS_PENDING.fetch_sub(1, Ordering::SeqCst);
            }
        }
        interval = (interval * 2).min(MAX_RESEND_INTERVAL_NS);
        deadline = sys::now_ns() + interval;
    }
}

/// Default of [`set_ack_spin_ns`]: how long the stopper polls for the last
/// acknowledgements before it sleeps on the futex. Polling can save the
/// stopper's cross-CPU wake-up (~20 us on the project's VM) but takes CPU
/// time from the very threads it waits for when cores are oversubscribed;
/// the benchmark's A/B on the loaded 2-core VM was inconclusive, so the
/// default is not to poll.
pub const DEFAULT_ACK_SPIN_NS: u64 = 0;

static ACK_SPIN_NS: AtomicU64 = AtomicU64::new(DEFAULT_ACK_SPIN_NS);

/// Sets how long `stop_world` polls for acknowledgements before sleeping
/// (0: sleep at once). For tuning and for the benchmark's A/B comparison.
pub fn set_ack_spin_ns(ns: u64) {
    ACK_SPIN_NS.store(ns, Ordering::Relaxed);
}

/// Polls until every expected acknowledgement arrived or the spin time
/// passed since `since`; returns whether the acknowledgement word moved.
fn spin_for_acknowledgements(seen: u32, since: u64) -> bool {
    let spin_ns = ACK_SPIN_NS.load(Ordering::Relaxed);
    if spin_ns == 0 {
        return false;
    }
    loop {
        if ACK_WORD.load(Ordering::Acquire) != seen && ACKS_PENDING.load(Ordering::Acquire) <= 0 {
            return true;
        }
        if sys::now_ns().saturating_sub(since) >= spin_ns {
            return ACK_WORD.load(Ordering::Acquire) != seen;
        }
        for _ in 0..64 {
            core::hint::spin_loop();
        }
    }
}

/// Why a thread was given up, for the message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GiveUpReason {
    /// Asleep with a mask of its own that blocks the suspend signal.
    OwnMask,
    /// Blocking the signal when the time bound passed.
    BlocksAtBound,
    /// No acknowledgement within the time bound, mask not blocking.
    NoAcknowledgement,
}

/// Decides what to do with a thread that has not acknowledged in time.
fn handle_late_thread(tid: i32, state: &mut TargetState, now: u64, suspend: i32) {
    if sys::tgkill(tid, 0) == Err(libc::ESRCH) {
        state.status = Status::Gone;
        return;
    }
    let waited = now.saturating_sub(state.first_signal_ns);
    let status = task_list::thread_status(tid);
    let blocks = status.is_some_and(|s| blocks_for_good(s.signal_mask, suspend));
    let own_mask_asleep =
        blocks && status.is_some_and(|s| s.state == b'S' && set_by_program(s.signal_mask));
    state.blocked_looks = if own_mask_asleep {
        state.blocked_looks.saturating_add(1)
    } else {
        0
    };
    if state.registered {
        let found_blocking = state.blocked_looks >= EARLY_GIVE_UP_LOOKS;
        if (found_blocking || waited >= REGISTERED_WARN_AFTER_NS) && !state.status_checked {
            state.status_checked = true;
            warn_registered(tid, suspend, found_blocking);
        }
        return;
    }
    let give_up = |state: &mut TargetState, reason: GiveUpReason| {
        state.status = Status::GivenUp;
        if reason != GiveUpReason::NoAcknowledgement {
            if let Some(start_time) = task_list::thread_start_time(tid) {
                remember_blocker(tid, start_time);
            }
        }
        report_given_up(tid, suspend, reason);
    };
    if state.blocked_looks >= EARLY_GIVE_UP_LOOKS {
        give_up(state, GiveUpReason::OwnMask);
        return;
    }
    if blocks {
        // Seen blocking for good in an earlier stop (same thread, not a
        // reused tid): do not wait for it again.
        if let Some(start_time) = task_list::thread_start_time(tid) {
            if is_known_blocker(tid, start_time) {
                state.status = Status::GivenUp;
                return;
            }
        }
    }
    // A full mask is also what a thread has in its first instants (glibc
    // starts threads with all signals blocked) and its last ones: such a
    // thread unblocks or vanishes quickly, so it is waited for, up to the
    // bound.
    if waited >= UNREGISTERED_GIVE_UP_NS {
        let reason = if blocks {
            GiveUpReason::BlocksAtBound
        } else {
            GiveUpReason::NoAcknowledgement
        };
        give_up(state, reason);
    }
}

/// Whether a thread with signal mask `mask` cannot take the suspend signal
/// soon. A thread still inside the suspend handler of an earlier stop (slow
/// to be scheduled after the restart) also has the suspend signal blocked,
/// but its mask leaves the restart signal (in `sigsuspend`) or the fault
/// signals (elsewhere in the handler) unblocked; such a thread is waited for.
fn blocks_for_good(mask: u64, suspend: i32) -> bool {
    let blocked = |signal: i32| mask & (1u64 << (signal - 1)) != 0;
    blocked(suspend) && blocked(signals::restart_signal()) && blocked(libc::SIGSEGV)
}

/// Whether `mask` is one the program set itself rather than one of glibc's
/// all-signals-blocked windows: those block `SIGCANCEL` too, and glibc's
/// public functions never let a program block it (see the module doc).
fn set_by_program(mask: u64) -> bool {
    mask & (1u64 << (GLIBC_SIGCANCEL - 1)) == 0
}

/// Whether `tid` was given up by an earlier stop (same thread: same start
/// time) and its mask still blocks the suspend signal for good. Reads
/// `/proc` only for a tid in the table.
fn still_known_blocker(tid: i32, suspend: i32) -> bool {
    let entry = &KNOWN_BLOCKERS[tid.unsigned_abs() as usize % KNOWN_BLOCKERS.len()];
    if entry.0.load(Ordering::Relaxed) != tid {
        return false;
    }
    task_list::thread_start_time(tid).is_some_and(|start| is_known_blocker(tid, start))
        && task_list::thread_signal_mask(tid).is_some_and(|mask| blocks_for_good(mask, suspend))
}

/// Threads that never registered and were found blocking the suspend
/// signal for good: (tid, start time). Consulted only under the world lock.
static KNOWN_BLOCKERS: [(AtomicI32, AtomicU64); 32] =
    [const { (AtomicI32::new(0), AtomicU64::new(0)) }; 32];
/// Thread ids already reported on stderr.
static REPORTED: [AtomicI32; 32] = [const { AtomicI32::new(0) }; 32];

fn is_known_blocker(tid: i32, start_time: u64) -> bool {
    let entry = &KNOWN_BLOCKERS[tid.unsigned_abs() as usize % KNOWN_BLOCKERS.len()];
    entry.0.load(Ordering::Relaxed) == tid && entry.1.load(Ordering::Relaxed) == start_time
}

fn remember_blocker(tid: i32, start_time: u64) {
    let entry = &KNOWN_BLOCKERS[tid.unsigned_abs() as usize % KNOWN_BLOCKERS.len()];
    entry.0.store(tid, Ordering::Relaxed);
    entry.1.store(start_time, Ordering::Relaxed);
}

/// Appends "thread <tid> (<name>)".
fn push_thread<const N: usize>(text: &mut sys::StackText<N>, tid: i32) {
    let mut name = [0u8; 16];
    let len = task_list::thread_name(tid, &mut name);
    text.push(b"thread ")
        .push_int(i64::from(tid))
        .push(b" (")
        .push(&name[..len])
        .push(b")");
}

fn warn_registered(tid: i32, suspend: i32, found_blocking: bool) {
    let mut text = sys::StackText::<400>::new();
    text.push(b"oohgc-barriers: registered ");
    push_thread(&mut text, tid);
    if found_blocking {
        text.push(b" blocks the suspend signal ")
            .push_int(i64::from(suspend))
            .push(
                b" with a mask set by a means the collector cannot intercept (a raw \
                  rt_sigprocmask system call?); it may hold the allocator's state, so the \
                  collector waits for it until it unblocks the signal\n",
            );
    } else {
        text.push(b" has not acknowledged the suspend signal ")
            .push_int(i64::from(suspend))
            .push(b" for 1 s; still waiting\n");
    }
    sys::write_stderr(text.as_bytes());
}

fn report_given_up(tid: i32, suspend: i32, reason: GiveUpReason) {
    if REPORTED.iter().any(|t| t.load(Ordering::Relaxed) == tid) {
        return;
    }
    REPORTED[tid.unsigned_abs() as usize % REPORTED.len()].store(tid, Ordering::Relaxed);
    let mut text = sys::StackText::<512>::new();
    text.push(b"oohgc-barriers: ");
    push_thread(&mut text, tid);
    text.push(b" never registered and ");
    match reason {
        GiveUpReason::OwnMask => text
            .push(b"blocks the suspend signal ")
            .push_int(i64::from(suspend))
            .push(b" with a mask set by a means the collector cannot intercept (a raw rt_sigprocmask system call?)"),
        GiveUpReason::BlocksAtBound => text
            .push(b"has blocked the suspend signal ")
            .push_int(i64::from(suspend))
            .push(b" for 2 s"),
        GiveUpReason::NoAcknowledgement => text
            .push(b"has not acknowledged the suspend signal ")
            .push_int(i64::from(suspend))
            .push(b" for 2 s"),
    };
    text.push(
        b": it is NOT stopped and its stack and registers are NOT scanned, so an object only \
          it references can be freed while in use (reported once per thread; counted in \
          StopStats::given_up)\n",
    );
    sys::write_stderr(text.as_bytes());
}

/// Fills in `stack` and `tls` of every acknowledged or blocking target.
fn resolve_roots() {
    let targets = stop_table::current_targets();
    // Threads whose stack must be found in /proc/self/maps, in batches.
    const BATCH: usize = 64;
    let mut pending = [0usize; BATCH];
    let mut pending_len = 0;
    for (index, target) in targets.iter().enumerate() {
        // SAFETY: the world lock is held by this thread.
        let state = unsafe { target.state_mut() };
        let info = state.info;
        let registered_tls = |state: &mut TargetState| {
            for i in 0..info.tls_len.min(MAX_TLS_RANGES) {
                state.tls[i] = (info.tls[i].start, info.tls[i].end);
            }
            state.tls_len = info.tls_len.min(MAX_TLS_RANGES);
        };
        match state.status {
            Status::Blocking => {
                state.stack = (info.blocking_sp, info.stack_base);
                registered_tls(state);
            }
            Status::Acked => {
                let sp = target.sp.load(Ordering::Relaxed);
                let known = Range {
                    start: info.stack_limit,
                    end: info.stack_base,
                };
                if state.registered && known.contains(sp) {
                    state.stack = (sp, info.stack_base);
                    registered_tls(state);
                } else {
                    pending[pending_len] = index;
                    pending_len += 1;
                    if pending_len == BATCH {
                        resolve_from_maps(targets, &pending[..pending_len]);
                        pending_len = 0;
                    }
                }
            }
            _ => {}
        }
    }
    if pending_len > 0 {
        resolve_from_maps(targets, &pending[..pending_len]);
    }
}

/// Stack and TLS bounds of threads the registry cannot vouch for: the mapping
/// that contains the suspended stack pointer, ending at the thread's TCB when
/// the thread pointer lies in that mapping (glibc spawned threads), and the
/// mapping around the thread pointer otherwise (the main thread). Mappings
/// come from the per-thread cache, or from one pass over `/proc/self/maps`
/// for the threads it does not know.
fn resolve_from_maps(targets: &[Target], indices: &[usize]) {
    let mut queries = [MappingQuery::new(0); 128];
    let mut misses = [0usize; 64];
    let mut miss_count = 0;
    for &index in indices {
        let target = &targets[index];
        let tid = target.tid.load(Ordering::Relaxed);
        let sp = target.sp.load(Ordering::Relaxed);
        let thread_pointer = target.thread_pointer.load(Ordering::Relaxed);
        if let Some(mappings) = foreign_bounds::lookup(tid, thread_pointer, sp) {
            apply_mappings(target, sp, thread_pointer, Some(mappings));
        } else {
            queries[2 * miss_count] = MappingQuery::new(sp);
            queries[2 * miss_count + 1] = MappingQuery::new(thread_pointer);
            misses[miss_count] = index;
            miss_count += 1;
        }
    }
    if miss_count == 0 {
        return;
    }
    let queries = &mut queries[..2 * miss_count];
    memory_map::find_mappings(queries);
    for (i, &index) in misses[..miss_count].iter().enumerate() {
        let target = &targets[index];
        let sp = queries[2 * i].addr;
        let thread_pointer = queries[2 * i + 1].addr;
        let mappings = queries[2 * i].found.map(|stack| ThreadMappings {
            stack,
            tls: queries[2 * i + 1].found,
        });
        if let Some(mappings) = mappings {
            foreign_bounds::store(target.tid.load(Ordering::Relaxed), thread_pointer, mappings);
        }
        apply_mappings(target, sp, thread_pointer, mappings);
    }
}

/// Sets the stack and TLS ranges of `target` from its mappings.
fn apply_mappings(
    target: &Target,
    sp: usize,
    thread_pointer: usize,
    mappings: Option<ThreadMappings>,
) {
    // SAFETY: the world lock is held by this thread.
    let state = unsafe { target.state_mut() };
    state.tls_len = 0;
    let Some(mappings) = mappings else {
        state.stack = (sp, sp);
        return;
    };
    let mut hi = mappings.stack.end;
    let tcb_span = registry::tcb_span();
    if mappings.stack.contains(thread_pointer) && tcb_span > 0 {
        hi = hi.min(thread_pointer.saturating_add(tcb_span)).max(sp);
    }
    state.stack = (sp, hi);
    if !(sp..hi).contains(&thread_pointer) {
        if let Some(tls_mapping) = mappings.tls {
            let window = memory_map::tls_window(thread_pointer, tls_mapping);
            state.tls[0] = (window.start, window.end);
            state.tls_len = 1;
        }
    }
}

/// Resets the stop machinery in a fork child (one thread, nobody stopping).
pub(crate) fn reset_after_fork() {
    world_lock::reset();
    STOPPER_TID.store(0, Ordering::Relaxed);
    let epoch = EPOCH.load(Ordering::Relaxed);
    if epoch & 1 == 1 {
        EPOCH.store(epoch.wrapping_add(1), Ordering::Relaxed);
    }
    TARGET_COUNT.store(0, Ordering::Relaxed);
}
