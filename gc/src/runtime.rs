//! Process-wide state and glue: lazy heap start-up (reading the
//! environment), starting the collector (signals, dirty source, collector
//! thread), the hooks the heap calls, thread registration, and a stderr
//! writer that never allocates.
//!
//! Start-up happens in two steps. The *heap* starts inside the program's
//! first allocation (usually before `main`), so it reads `OOHGC_*` with
//! `getenv` and no allocation. The *collector* (stop-the-world signals, the
//! dirty source, the collector thread) starts at the first collection or at
//! [`crate::init`], from an ordinary context where allocation is allowed.

use crate::config::Config;
use crate::util::{eprint_line, fatal, fatal_config};
use crate::InitError;
use oohgc_dirty::{DirtySource, PageRange};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const READY: u8 = 2;

static HEAP_STATE: AtomicU8 = AtomicU8::new(UNINIT);
static COLLECTOR_STARTED: Mutex<bool> = Mutex::new(false);
static CONFIG: Mutex<Config> = Mutex::new(Config::new());
static SOURCE: OnceLock<Box<dyn DirtySource>> = OnceLock::new();
/// Set when the dirty source could not track some heap memory: cycles then
/// run stop-the-world (never trusting an incomplete dirty set).
static TRACKING_BROKEN: AtomicBool = AtomicBool::new(false);
/// Ranges handed to the dirty source, so that nothing is tracked twice.
static TRACKED: Mutex<oohgc_dirty::raw_vec::RawVec<(usize, usize)>> =
    Mutex::new(oohgc_dirty::raw_vec::RawVec::new());
/// `Config::require_global_allocator`, readable without the config lock.
static REQUIRE_GLOBAL_ALLOCATOR: AtomicBool = AtomicBool::new(true);
/// Nesting depth of [`crate::disable`].
pub(crate) static DISABLED: AtomicUsize = AtomicUsize::new(0);

/// How the current thread takes part in collection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ThreadRole {
    Unknown,
    Mutator,
    /// A mutator inside [`crate::blocking`]: not stopped by pauses, so it
    /// must not allocate collected objects (see `admit_gc_allocation`), and
    /// its `GcAllocator` allocations leave the region while they run (see
    /// [`AllocRoute::HeapOutsideBlocking`]).
    MutatorInBlocking,
    /// Collector-internal: never stopped, never scanned, never registered.
    Internal,
}

thread_local! {
    /// Set while this thread builds collector machinery whose memory must
    /// not live in the tracked heap (see [`with_system_allocator`]).
    static USE_SYSTEM_ALLOCATOR: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with this thread's `GcAllocator` requests served by the C
/// library's `malloc`. Dirty sources keep state that their own fault
/// handlers write (a userfaultfd handler's lock, a SIGSEGV handler's
/// bookkeeping): if that state lived in the heap they write-protect, the
/// handler would fault on its own write and deadlock. Memory allocated here
/// is outside the heap, never tracked, never scanned (it holds no `Gc`
/// pointers), and `GcAllocator::dealloc` hands it back to `free`.
pub(crate) fn with_system_allocator<R>(f: impl FnOnce() -> R) -> R {
    let old = USE_SYSTEM_ALLOCATOR.with(|c| c.replace(true));
    let r = f();
    USE_SYSTEM_ALLOCATOR.with(|c| c.set(old));
    r
}

/// Whether this thread's global-allocator requests go to `malloc` now.
#[inline]
pub(crate) fn using_system_allocator() -> bool {
    USE_SYSTEM_ALLOCATOR.with(|c| c.get())
}

/// Where a `GcAllocator` request of this thread goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocRoute {
    /// The collected heap.
    Heap,
    /// The C library (see [`with_system_allocator`]).
    System,
    /// The collected heap, from inside [`crate::blocking`]: such a thread
    /// is not stopped by pauses, and a pause walks the heap's objects (the
    /// `GcAllocator` blocks are roots, listed once and again by the
    /// verifier), so the allocation leaves the region for its duration and
    /// waits for a running pause to end.
    HeapOutsideBlocking,
}

/// The allocation path's one thread-local check: a registered mutator (the
/// common case) goes straight to the heap; anything else (first allocation
/// of a thread, collector machinery being built) takes the slow path.
#[inline]
pub(crate) fn alloc_route() -> AllocRoute {
    if ROLE.with(|r| r.get()) == ThreadRole::Mutator && !using_system_allocator() {
        return AllocRoute::Heap;
    }
    alloc_route_slow()
}

#[cold]
fn alloc_route_slow() -> AllocRoute {
    ensure_heap();
    if using_system_allocator() {
        return AllocRoute::System;
    }
    register_current_thread();
    if in_blocking() {
        return AllocRoute::HeapOutsideBlocking;
    }
    AllocRoute::Heap
}

/// Run `f` with this thread marked as inside [`crate::blocking`] (nested
/// calls keep the outer marking).
pub(crate) fn as_blocking_mutator<R>(f: impl FnOnce() -> R) -> R {
    let old = ROLE.with(|r| r.get());
    if matches!(old, ThreadRole::Unknown | ThreadRole::Mutator) {
        ROLE.with(|r| r.set(ThreadRole::MutatorInBlocking));
    }
    struct Restore(ThreadRole);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0;
            ROLE.with(|r| r.set(old));
        }
    }
    let _restore = Restore(old);
    f()
}

/// Whether this thread is a registered mutator outside any blocking
/// region: the common case, for which a collected allocation needs no
/// check (see [`admit_gc_allocation`]).
#[inline]
pub(crate) fn is_plain_mutator() -> bool {
    ROLE.with(|r| r.get()) == ThreadRole::Mutator
}

/// The checks before a collected allocation on a thread that is not a
/// plain mutator (its first one, one inside `blocking`, an internal
/// thread's): `GcAllocator` must be the global allocator (or the program
/// opted out), the thread is registered, and it is not inside
/// [`crate::blocking`]. A thread becomes a plain mutator only through an
/// allocation routed by `GcAllocator` (so it is installed) or through these
/// checks.
#[cold]
#[inline(never)]
pub(crate) fn admit_gc_allocation() {
    crate::global_alloc::check_before_gc_allocation();
    register_current_thread();
    if in_blocking() {
        // The new object would be referenced only from frames the collector
        // does not scan (below the stack pointer recorded at the region's
        // entry), by a thread it does not stop.
        fatal(format_args!(
            "a collected object (Gc::new, Gc::from_slice, alloc_noscan) was allocated inside \
             oohgc::blocking(..), whose frames the collector does not scan: it could be freed \
             while in use. Allocate it before the blocking region (Box/Vec/String allocation \
             inside the region is fine)"
        ));
    }
}

/// Whether this thread is inside [`crate::blocking`].
#[inline]
pub(crate) fn in_blocking() -> bool {
    ROLE.with(|r| r.get()) == ThreadRole::MutatorInBlocking
}

thread_local! {
    static ROLE: Cell<ThreadRole> = const { Cell::new(ThreadRole::Unknown) };
}

/// Make sure the heap is initialised; called on every allocation path.
#[inline]
pub(crate) fn ensure_heap() {
    if HEAP_STATE.load(Ordering::Acquire) != READY {
        init_heap();
    }
}

#[cold]
fn init_heap() {
    match HEAP_STATE.compare_exchange(UNINIT, STARTING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(_) => {
            while HEAP_STATE.load(Ordering::Acquire) != READY {
                std::hint::spin_loop();
            }
            return;
        }
    }
    let cfg = match Config::from_env_raw() {
        Ok(c) => c,
        Err(e) => fatal_config(format_args!("{e}")),
    };
    *CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = cfg;
    REQUIRE_GLOBAL_ALLOCATOR.store(cfg.require_global_allocator, Ordering::Relaxed);
    if !oohgc_allocator::is_initialized() {
        let hc = oohgc_allocator::HeapConfig {
            max_heap: cfg.max_heap,
            ..oohgc_allocator::HeapConfig::default()
        };
        if let Err(e) = oohgc_allocator::init(hc) {
            fatal_config(format_args!("OOHGC_MAX_HEAP: {e}"));
        }
    }
    oohgc_allocator::set_hooks(oohgc_allocator::Hooks {
        budget_exceeded: crate::collector::on_budget_exceeded,
        out_of_memory: crate::collector::on_out_of_memory,
    });
    oohgc_allocator::set_chunk_hook(on_new_chunk);
    oohgc_allocator::set_discard_hook(on_discard);
    oohgc_allocator::set_budget(cfg.initial_heap);
    oohgc_barriers::set_thread_exit_hook(on_thread_exit);
    crate::alloc_sites::configure(
        cfg.find_leaks && cfg.leak_backtraces,
        cfg.leak_backtrace_depth,
    );
    HEAP_STATE.store(READY, Ordering::Release);
}

/// Whether `Gc` allocation without `GcAllocator` is refused.
#[inline]
pub(crate) fn global_allocator_required() -> bool {
    REQUIRE_GLOBAL_ALLOCATOR.load(Ordering::Relaxed)
}

/// The configuration lock, held across `fork()` (a leaf lock: nothing is
/// taken while it is held).
pub(crate) fn lock_config() -> std::sync::MutexGuard<'static, Config> {
    CONFIG.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current configuration.
pub(crate) fn config() -> Config {
    *CONFIG.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Config::apply`.
pub(crate) fn apply_config(cfg: Config) -> Result<(), InitError> {
    ensure_heap();
    let started = *COLLECTOR_STARTED.lock().unwrap_or_else(|p| p.into_inner());
    let old = config();
    if started
        && (cfg.dirty_source != old.dirty_source
            || cfg.pml_engine != old.pml_engine
            || cfg.suspend_signal != old.suspend_signal
            || cfg.restart_signal != old.restart_signal)
    {
        return Err(InitError::AlreadyStarted);
    }
    if cfg.max_heap != old.max_heap {
        oohgc_allocator::set_max_heap(cfg.max_heap).map_err(|e| InitError::Heap(e.to_string()))?;
    }
    let mut current = CONFIG.lock().unwrap_or_else(|p| p.into_inner());
    *current = cfg;
    REQUIRE_GLOBAL_ALLOCATOR.store(cfg.require_global_allocator, Ordering::Relaxed);
    crate::alloc_sites::configure(
        cfg.find_leaks && cfg.leak_backtraces,
        cfg.leak_backtrace_depth,
    );
    drop(current);
    Ok(())
}

/// Start the collector if it has not started: install the stop-the-world
/// signals, open the dirty source and track the heap with it, and start the
/// collector thread. Errors are returned to [`crate::init`]; implicit starts
/// turn them into a fatal message.
pub(crate) fn start_collector() -> Result<(), InitError> {
    ensure_heap();
    if global_allocator_required() && !crate::global_alloc::installed() {
        return Err(InitError::NoGlobalAllocator);
    }
    let mut started = COLLECTOR_STARTED.lock().unwrap_or_else(|p| p.into_inner());
    if *started {
        return Ok(());
    }
    let cfg = config();
    oohgc_barriers::init(oohgc_barriers::SignalConfig {
        suspend: cfg.suspend_signal,
        restart: cfg.restart_signal,
    })
    .map_err(|e| InitError::Signals(e.to_string()))?;
    oohgc_dirty::set_service_thread_hook(become_internal_thread);
    let source = with_system_allocator(|| open_dirty_source(&cfg))?;
    {
        let mut tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
        let src = SOURCE.get_or_init(|| source);
        oohgc_allocator::for_each_chunk(&mut |s, l| track_locked(&mut tracked, &**src, s, l));
    }
    register_current_thread();
    // Under every source, `none` included: stop-the-world cycles triggered
    // by allocation run there too, and sweep after the restart.
    crate::collector::spawn_collector_thread();
    crate::parallel_mark::start_helper();
    crate::fork::install_handlers();
    *started = true;
    Ok(())
}

/// Start the collector or die with a clear message (implicit start).
pub(crate) fn start_collector_or_die() {
    if let Err(e) = start_collector() {
        fatal_config(format_args!("{e}"));
    }
}

fn open_dirty_source(cfg: &Config) -> Result<Box<dyn DirtySource>, InitError> {
    let primary = open_primary_source(cfg)?;
    if primary.capabilities().needs_barrier {
        eprint_line(format_args!(
            "oohgc: dirty source `{}` is sound only if every pointer store into the heap calls \
             oohgc::write_barrier (std collections, Mutex and RefCell do not); a store without it \
             can free a live object (OOHGC_VERIFY=1 aborts on one)",
            primary.name()
        ));
    }
    if primary.capabilities().kernel_writes_need_pins && start_up_notes_wanted(cfg) {
        say_what_pins_miss(primary.name());
    }
    let Some(second) = cfg.cross_check else {
        return Ok(primary);
    };
    if oohgc_dirty::registry::capabilities_of(second).kernel_writes_need_pins
        && !primary.capabilities().kernel_writes_need_pins
        && start_up_notes_wanted(cfg)
    {
        say_what_pins_miss(second);
    }
    let engine = oohgc_dirty::pml::Engine::from_name(cfg.pml_engine).unwrap_or_default();
    let opts = oohgc_dirty::OpenOptions { pml_engine: engine };
    let secondary = oohgc_dirty::open_with(second, &opts)
        .map_err(|e| InitError::DirtySource(format!("OOHGC_CROSS_CHECK: {e}")))?;
    Ok(Box::new(oohgc_dirty::cross_check::CrossCheck::new(
        primary, secondary,
    )))
}

/// Whether to print start-up notes that are advice, not errors (what a
/// source cannot see): when stderr is a terminal, or with `OOHGC_STATS=1`.
/// Not into a captured stderr: programs whose tests compare their stderr
/// (ripgrep's do, for every `rg` they start) would fail on the note itself.
fn start_up_notes_wanted(cfg: &Config) -> bool {
    // SAFETY: isatty on fd 2 only queries it.
    cfg.print_stats || unsafe { libc::isatty(2) } == 1
}

/// Under a source whose kernel writes need pins (`mprotect`), a system
/// call writing into an armed heap page fails with `EFAULT` unless an
/// interposed C library wrapper pinned the buffer
/// (`interpose::kernel_writes`): say once, at start-up, which writes no
/// wrapper can see.
fn say_what_pins_miss(source: &str) {
    eprint_line(format_args!(
        "oohgc: dirty source `{source}`: kernel writes into the heap are made safe only through the C library's \
         exported calls (read, recv*, epoll_wait, poll, stat, wait, syscall(), ...); uncovered, failing with EFAULT \
         on a protected heap page: raw syscall instructions (rustix's linux_raw backend), io_uring, POSIX AIO, \
         another process's process_vm_writev, and the C library's internal calls (fread, readdir, ...)"
    ));
}

fn open_primary_source(cfg: &Config) -> Result<Box<dyn DirtySource>, InitError> {
    let engine = oohgc_dirty::pml::Engine::from_name(cfg.pml_engine).unwrap_or_default();
    let opts = oohgc_dirty::OpenOptions { pml_engine: engine };
    match oohgc_dirty::open_with(cfg.dirty_source, &opts) {
        Ok(s) => Ok(s),
        Err(e) if cfg.dirty_source_explicit => Err(InitError::DirtySource(e.to_string())),
        Err(e) => {
            // Documented fallback for the default: the next available
            // default candidate in table order (never a source that needs a
            // barrier in every store of the program), ending at `none`.
            for row in oohgc_dirty::registry::SOURCES.iter() {
                let name = row.name;
                if name == cfg.dirty_source || !row.capabilities.default_candidate {
                    continue;
                }
                if let Ok(s) = oohgc_dirty::open_with(name, &opts) {
                    eprint_line(format_args!(
                        "oohgc: default dirty source `{}` is unavailable ({e}); falling back to `{name}`",
                        cfg.dirty_source
                    ));
                    return Ok(s);
                }
            }
            Err(InitError::DirtySource(e.to_string()))
        }
    }
}

/// Set in a fork child: the dirty source's kernel objects (a userfaultfd,
/// its handler thread) belong to the parent — an inherited userfaultfd
/// still acts on the *parent's* address space — so the child never calls
/// the source again, not even to track or discard memory.
static SOURCE_DETACHED: AtomicBool = AtomicBool::new(false);

/// The active dirty source, once the collector has started (none in a fork
/// child).
pub(crate) fn dirty_source() -> Option<&'static dyn DirtySource> {
    if SOURCE_DETACHED.load(Ordering::Acquire) {
        return None;
    }
    SOURCE.get().map(|b| &**b)
}

/// Whether budget cycles run concurrently: there is a dirty source other
/// than `none` and it tracks the whole heap.
pub(crate) fn concurrent_ok() -> bool {
    tracking_ok() && dirty_source().is_some_and(|s| !s.capabilities().tracks_nothing)
}

/// Whether cycles may trust the dirty source (it tracks the whole heap).
pub(crate) fn tracking_ok() -> bool {
    !TRACKING_BROKEN.load(Ordering::Acquire)
}

/// Taken by the collector before a pause that uses the dirty source: a
/// mutator inside [`on_new_chunk`] holds the source's own lock while it
/// tracks a new chunk, and must not be stopped there.
pub(crate) fn lock_tracking(
) -> std::sync::MutexGuard<'static, oohgc_dirty::raw_vec::RawVec<(usize, usize)>> {
    TRACKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Heap hook: new memory was committed.
fn on_new_chunk(start: usize, len: usize) {
    let mut tracked = TRACKED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(src) = dirty_source() {
        track_locked(&mut tracked, src, start, len);
    }
}

/// Heap hook: pooled pages were returned to the OS (runs under the heap
/// lock; the source's `discarded` takes only its own lock, which no holder
/// keeps while waiting for the heap lock).
fn on_discard(start: usize, len: usize) {
    if let Some(src) = dirty_source() {
        if let Err(e) = PageRange::new(start, len).and_then(|r| src.discarded(r)) {
            if !TRACKING_BROKEN.swap(true, Ordering::AcqRel) {
                eprint_line(format_args!(
                    "oohgc: dirty source `{}` lost track of discarded heap memory ({e}); \
                     collections run stop-the-world from now on",
                    src.name()
                ));
            }
        }
    }
}

/// Track `[start, start+len)` minus what is already tracked.
fn track_locked(
    tracked: &mut oohgc_dirty::raw_vec::RawVec<(usize, usize)>,
    src: &dyn DirtySource,
    start: usize,
    len: usize,
) {
    let end = start + len;
    // The heap commits disjoint chunks; an overlap can only be the same
    // chunk seen twice (the start-up race between this hook and the initial
    // enumeration), so it is skipped.
    if tracked.iter().any(|&(s, e)| s < end && e > start) {
        return;
    }
    match PageRange::new(start, len).and_then(|r| src.track(r)) {
        Ok(()) => tracked.push((start, end)),
        Err(err) => {
            if !TRACKING_BROKEN.swap(true, Ordering::AcqRel) {
                eprint_line(format_args!(
                    "oohgc: dirty source `{}` cannot track heap memory {start:#x}..{end:#x} ({err}); \
                     collections run stop-the-world from now on",
                    src.name()
                ));
            }
        }
    }
}

/// Register the calling thread as a mutator (idempotent, cheap).
#[inline]
pub(crate) fn register_current_thread() {
    ROLE.with(|r| {
        if r.get() == ThreadRole::Unknown {
            r.set(ThreadRole::Mutator);
            oohgc_barriers::register_current_thread();
        }
    });
}

/// Mark the calling thread as collector-internal.
pub(crate) fn become_internal_thread() {
    ROLE.with(|r| r.set(ThreadRole::Internal));
    oohgc_barriers::exclude_current_thread();
}

/// Whether the caller is a registered mutator (its own stack is a root).
pub(crate) fn current_thread_is_mutator() -> bool {
    ROLE.with(|r| matches!(r.get(), ThreadRole::Mutator | ThreadRole::MutatorInBlocking))
}

/// Whether the caller is a collector-internal thread.
pub(crate) fn current_thread_is_internal() -> bool {
    ROLE.with(|r| r.get() == ThreadRole::Internal)
}

fn on_thread_exit() {
    oohgc_allocator::flush_current_thread_cache();
}

/// Reset process state in a fork child (only the forking thread exists).
///
/// The child's collections run stop-the-world: the dirty source's kernel
/// objects (a userfaultfd, its handler thread) belong to the parent — a
/// userfaultfd descriptor inherited across fork still acts on the parent's
/// address space — so the child must never arm or harvest it.
pub(crate) fn reset_after_fork() {
    SOURCE_DETACHED.store(true, Ordering::Release);
    TRACKING_BROKEN.store(true, Ordering::Release);
    crate::collector::reset_after_fork();
    crate::finalize::reset_after_fork();
}

/// Live bytes after the last cycle (the budget's base between cycles).
pub(crate) fn live_estimate() -> usize {
    crate::stats::live_bytes()
}
