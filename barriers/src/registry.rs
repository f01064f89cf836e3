//! The thread registry: which threads run mutator code, where their stacks
//! and static TLS blocks are, which are collector-internal (excluded), and
//! which sit in a blocking region.
//!
//! Storage is a fixed table in raw `mmap` memory and a const-initialised
//! `thread_local!` slot index without destructor, so registering from inside
//! the global allocator never allocates through it. Thread exit is observed
//! with a `pthread_key_create` destructor (a `thread_local!` destructor could
//! allocate). A `pthread_atfork` child handler shrinks the registry to the
//! forking thread.

use core::cell::Cell;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;

use crate::memory_map::{self, Range};
use crate::raw_table::{RawTable, ZeroValid};
use crate::sys;

/// Maximum number of registered threads at once.
pub const MAX_REGISTERED_THREADS: usize = 8192;

/// Maximum number of TLS ranges recorded per thread (outside its stack).
pub const MAX_TLS_RANGES: usize = 2;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const ACTIVE: u32 = 2;

/// One registered thread. All fields are atomics: the collector reads them
/// while the owner may be exiting or entering a blocking region.
pub(crate) struct Slot {
    state: AtomicU32,
    tid: AtomicI32,
    excluded: AtomicU32,
    /// Lowest address of the stack mapping (sanity bound for a recorded sp).
    stack_limit: AtomicUsize,
    /// Stack base: the top of the stack mapping.
    stack_base: AtomicUsize,
    tls: [AtomicUsize; 2 * MAX_TLS_RANGES],
    tls_len: AtomicUsize,
    /// Nesting depth of blocking regions (0: not in one).
    pub(crate) blocking_depth: AtomicU32,
    /// 1 while the thread is inside a blocking region and must not be
    /// signalled; read by the collector after it has announced a stop.
    pub(crate) in_blocking: AtomicU32,
    /// Stack pointer recorded at blocking-region entry, after a register spill.
    pub(crate) blocking_sp: AtomicUsize,
}

// SAFETY: `Slot` is made of atomics only; all-zero is FREE.
unsafe impl ZeroValid for Slot {}

static SLOTS: RawTable<Slot> = RawTable::new(MAX_REGISTERED_THREADS);
/// One past the highest slot index ever claimed (bounds every scan).
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);
/// Registered, not excluded threads.
static MUTATOR_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The exit hook as a `fn()` address (0: none).
static EXIT_HOOK: AtomicUsize = AtomicUsize::new(0);
/// Largest distance seen from a spawned thread's thread pointer to the top of
/// its stack mapping (the TCB and alignment): used to bound the stacks of
/// threads that never registered.
static TCB_SPAN: AtomicUsize = AtomicUsize::new(0);
static EXIT_KEY_INIT: Once = Once::new();
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);
static FORK_HANDLER_INIT: Once = Once::new();

thread_local! {
    /// This thread's slot index + 1 (0: not registered). Const-initialised,
    /// no destructor: accessing it never allocates, even in a signal handler.
    static SLOT_INDEX: Cell<usize> = const { Cell::new(0) };
}

/// What the collector learns about a registered thread.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RegisteredThread {
    pub excluded: bool,
    pub stack_limit: usize,
    pub stack_base: usize,
    pub tls: [Range; MAX_TLS_RANGES],
    pub tls_len: usize,
    pub in_blocking: bool,
    pub blocking_sp: usize,
}

fn slots() -> &'static [Slot] {
    SLOTS.entries()
}

impl Slot {
    /// Whether the thread is collector-internal (never stopped).
    pub(crate) fn is_excluded(&self) -> bool {
        self.excluded.load(Ordering::Relaxed) != 0
    }
}

/// Whether `slot` is the calling thread's registry slot.
pub(crate) fn slot_is_current(slot: &Slot) -> bool {
    current_slot().is_some_and(|mine| core::ptr::eq(mine, slot))
}

/// The calling thread's slot, if registered.
pub(crate) fn current_slot() -> Option<&'static Slot> {
    let index = SLOT_INDEX.with(Cell::get);
    (index != 0).then(|| &slots()[index - 1])
}

/// Registers the calling thread: records its stack bounds and TLS ranges and
/// arms the exit hook. Idempotent, and a single thread-local load when the
/// thread is already registered. Never allocates through the global
/// allocator (glibc's `pthread_getattr_np` uses glibc's own malloc).
#[inline]
pub fn register_current_thread() {
    if SLOT_INDEX.with(Cell::get) == 0 {
        register_slow(false);
    }
}

/// Marks the calling thread as collector-internal: it is never stopped and
/// never scanned. Registers it first if needed.
pub fn exclude_current_thread() {
    if SLOT_INDEX.with(Cell::get) == 0 {
        register_slow(true);
        return;
    }
    if let Some(slot) = current_slot() {
        if slot.excluded.swap(1, Ordering::SeqCst) == 0 {
            MUTATOR_COUNT.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Removes the calling thread from the registry (no-op if not registered).
/// A thread that is no longer registered is still stopped and scanned by
/// `stop_world`, as an unregistered thread.
pub fn unregister_current_thread() {
    let index = SLOT_INDEX.with(Cell::get);
    if index == 0 {
        return;
    }
    let slot = &slots()[index - 1];
    if slot.excluded.load(Ordering::Relaxed) == 0 {
        MUTATOR_COUNT.fetch_sub(1, Ordering::Relaxed);
    }
    slot.in_blocking.store(0, Ordering::SeqCst);
    slot.blocking_depth.store(0, Ordering::Relaxed);
    slot.tid.store(0, Ordering::Relaxed);
    slot.state.store(FREE, Ordering::Release);
    SLOT_INDEX.with(|c| c.set(0));
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key != 0 {
        // SAFETY: `key - 1` is a key created by pthread_key_create below.
        unsafe { libc::pthread_setspecific((key - 1) as libc::pthread_key_t, core::ptr::null()) };
    }
}

/// Sets the function called on a registered thread as it exits, before it is
/// unregistered (the collector flushes the thread's allocation cache there).
pub fn set_thread_exit_hook(hook: fn()) {
    EXIT_HOOK.store(hook as usize, Ordering::Release);
}

/// Registered threads that are not excluded.
pub fn registered_thread_count() -> usize {
    MUTATOR_COUNT.load(Ordering::Relaxed)
}

#[cold]
#[inline(never)]
fn register_slow(excluded: bool) {
    install_fork_handler();
    let bounds = memory_map::current_stack_bounds();
    let thread_pointer = sys::thread_pointer();
    let mut tls = [Range::default(); MAX_TLS_RANGES];
    let mut tls_len = 0;
    if bounds.contains(thread_pointer) {
        // glibc spawned thread: TCB and static TLS at the top of the stack.
        TCB_SPAN.fetch_max(bounds.end - thread_pointer, Ordering::Relaxed);
    } else if let Some(range) = memory_map::static_tls_range(thread_pointer) {
        // Main thread: static TLS in a small mapping of its own.
        tls[0] = range;
        tls_len = 1;
    }
    let tid = sys::gettid();
    release_stale_slots(tid);
    let index = claim_slot();
    let slot = &slots()[index];
    slot.tid.store(tid, Ordering::Relaxed);
    slot.excluded.store(u32::from(excluded), Ordering::Relaxed);
    slot.stack_limit.store(bounds.start, Ordering::Relaxed);
    slot.stack_base.store(bounds.end, Ordering::Relaxed);
    for (i, range) in tls.iter().enumerate() {
        slot.tls[2 * i].store(range.start, Ordering::Relaxed);
        slot.tls[2 * i + 1].store(range.end, Ordering::Relaxed);
    }
    slot.tls_len.store(tls_len, Ordering::Relaxed);
    slot.blocking_depth.store(0, Ordering::Relaxed);
    slot.in_blocking.store(0, Ordering::Relaxed);
    slot.state.store(ACTIVE, Ordering::Release);
    if !excluded {
        MUTATOR_COUNT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT_INDEX.with(|c| c.set(index + 1));
    arm_exit_hook(index);
}

/// Frees slots still registered under `tid`: a live thread id belongs to
/// one thread, so such a slot was left by a dead thread whose exit hook could
/// not unregister it (e.g. it re-registered during its last key-destructor
/// round, or left with a raw `exit` syscall).
fn release_stale_slots(tid: i32) {
    let table = slots();
    let high = HIGH_WATER.load(Ordering::Acquire).min(table.len());
    for slot in &table[..high] {
        if slot.tid.load(Ordering::Relaxed) == tid
            && slot
                .state
                .compare_exchange(ACTIVE, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            if slot.excluded.load(Ordering::Relaxed) == 0 {
                MUTATOR_COUNT.fetch_sub(1, Ordering::Relaxed);
            }
            slot.tid.store(0, Ordering::Relaxed);
        }
    }
}

fn claim_slot() -> usize {
    let table = slots();
    for (index, slot) in table.iter().enumerate() {
        if slot.state.load(Ordering::Relaxed) == FREE
            && slot
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            HIGH_WATER.fetch_max(index + 1, Ordering::Release);
            return index;
        }
    }
    sys::write_stderr(b"oohgc-barriers: more than 8192 registered threads; aborting\n");
    std::process::abort();
}

fn arm_exit_hook(index: usize) {
    EXIT_KEY_INIT.call_once(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor has the
        // required C signature.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) };
        if rc == 0 {
            EXIT_KEY.store(key as usize + 1, Ordering::Release);
        } else {
            sys::write_stderr(
                b"oohgc-barriers: pthread_key_create failed; exiting threads will not be unregistered\n",
            );
        }
    });
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key != 0 {
        // SAFETY: the key was created above; the value is a non-null token.
        unsafe {
            libc::pthread_setspecific(
                (key - 1) as libc::pthread_key_t,
                (index + 1) as *const libc::c_void,
            )
        };
    }
}

extern "C" fn on_thread_exit(_token: *mut libc::c_void) {
    let hook = EXIT_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: EXIT_HOOK only ever holds a `fn()` stored by
        // set_thread_exit_hook.
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
    unregister_current_thread();
}

/// Registers the `pthread_atfork` child handler once.
pub(crate) fn install_fork_handler() {
    FORK_HANDLER_INIT.call_once(|| {
        // SAFETY: registering a child handler with the required C signature.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

extern "C" fn after_fork_in_child() {
    let mine = SLOT_INDEX.with(Cell::get);
    let table = slots();
    let mut mutators = 0;
    for (index, slot) in table[..HIGH_WATER.load(Ordering::Acquire)]
        .iter()
        .enumerate()
    {
        if index + 1 == mine {
            slot.tid.store(sys::gettid(), Ordering::Relaxed);
            if slot.excluded.load(Ordering::Relaxed) == 0 {
                mutators = 1;
            }
        } else {
            slot.in_blocking.store(0, Ordering::Relaxed);
            slot.tid.store(0, Ordering::Relaxed);
            slot.state.store(FREE, Ordering::Release);
        }
    }
    MUTATOR_COUNT.store(mutators, Ordering::Relaxed);
    crate::stop::reset_after_fork();
}

/// The registry's view of thread `tid`, if it is registered.
pub(crate) fn lookup(tid: i32) -> Option<RegisteredThread> {
    let table = slots();
    let high = HIGH_WATER.load(Ordering::Acquire).min(table.len());
    table[..high].iter().find_map(|slot| {
        if slot.state.load(Ordering::Acquire) != ACTIVE || slot.tid.load(Ordering::Relaxed) != tid {
            return None;
        }
        let mut view = RegisteredThread {
            excluded: slot.excluded.load(Ordering::SeqCst) != 0,
            stack_limit: slot.stack_limit.load(Ordering::Relaxed),
            stack_base: slot.stack_base.load(Ordering::Relaxed),
            tls_len: slot.tls_len.load(Ordering::Relaxed).min(MAX_TLS_RANGES),
            // SeqCst: pairs with the thread's SeqCst store when it leaves a
            // blocking region, after the collector's SeqCst epoch change.
            in_blocking: slot.in_blocking.load(Ordering::SeqCst) != 0,
            blocking_sp: slot.blocking_sp.load(Ordering::SeqCst),
            ..RegisteredThread::default()
        };
        for i in 0..view.tls_len {
            view.tls[i] = Range {
                start: slot.tls[2 * i].load(Ordering::Relaxed),
                end: slot.tls[2 * i + 1].load(Ordering::Relaxed),
            };
        }
        // Re-check: the slot may have been freed and reused meanwhile.
        (slot.state.load(Ordering::Acquire) == ACTIVE && slot.tid.load(Ordering::Relaxed) == tid)
            .then_some(view)
    })
}

/// The calling thread's stack base and TLS ranges, from the registry if it is
/// registered, computed afresh otherwise.
pub(crate) fn current_thread_bounds() -> (Range, [Range; MAX_TLS_RANGES], usize) {
    if let Some(slot) = current_slot() {
        let stack = Range {
            start: slot.stack_limit.load(Ordering::Relaxed),
            end: slot.stack_base.load(Ordering::Relaxed),
        };
        let len = slot.tls_len.load(Ordering::Relaxed).min(MAX_TLS_RANGES);
        let mut tls = [Range::default(); MAX_TLS_RANGES];
        for (i, range) in tls.iter_mut().enumerate().take(len) {
            *range = Range {
                start: slot.tls[2 * i].load(Ordering::Relaxed),
                end: slot.tls[2 * i + 1].load(Ordering::Relaxed),
            };
        }
        return (stack, tls, len);
    }
    let stack = memory_map::current_stack_bounds();
    let thread_pointer = sys::thread_pointer();
    let mut tls = [Range::default(); MAX_TLS_RANGES];
    let mut len = 0;
    if !stack.contains(thread_pointer) {
        if let Some(range) = memory_map::static_tls_range(thread_pointer) {
            tls[0] = range;
            len = 1;
        }
    }
    (stack, tls, len)
}

/// Largest known distance from a thread pointer to its stack top (0 if no
/// spawned thread registered yet).
pub(crate) fn tcb_span() -> usize {
    TCB_SPAN.load(Ordering::Relaxed)
}

/// Calls `f` with the thread id of every registered thread (the fallback when
/// `/proc/self/task` cannot be listed).
pub(crate) fn for_each_registered_tid(f: &mut dyn FnMut(i32)) {
    let table = slots();
    let high = HIGH_WATER.load(Ordering::Acquire).min(table.len());
    for slot in &table[..high] {
        if slot.state.load(Ordering::Acquire) == ACTIVE {
            f(slot.tid.load(Ordering::Relaxed));
        }
    }
}
