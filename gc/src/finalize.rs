//! Finalization: running `T`'s `Drop` when an unreachable `Gc<T>` is
//! reclaimed.
//!
//! `Gc::new` registers every object whose type needs dropping in a table
//! (raw mmap, never scanned: the table must not keep its objects alive).
//! At the end of marking, inside the pause, the collector looks at every
//! registered object that was not reached:
//!
//! * it marks everything such an object references (not the object itself),
//!   so that what a finalizer may touch stays alive until it has run;
//! * an unreached object that is still unmarked after that is *ready*: no
//!   other finalizable object references it. It is marked (kept), moved to
//!   the finalization queue, and its `Drop` runs later on the finalizer
//!   thread, never inside a pause and never inside an allocation.
//! * an object referenced by another unreachable finalizable object waits:
//!   its referrer is finalized first (bdwgc's topological order). Objects in
//!   a *cycle* of finalizable objects all reference each other, so none is
//!   ever ready: they are never finalized and never freed (bdwgc does the
//!   same). Break such cycles with `GcWeak`.
//!
//! After its `Drop` has run the object is ordinary garbage, freed by the
//! next cycle that finds it unreachable; if the finalizer stored a pointer to
//! it somewhere (resurrection) it simply stays allocated — its memory stays
//! valid, though its value has been dropped.
//!
//! Objects allocated with [`crate::Gc::new_local`] are finalized on the
//! thread that allocated them, when that thread calls
//! [`run_finalizers`]: for types whose `Drop` must not run on another thread.

use crate::mark::{MarkSet, Marker};
use crate::util::lock;
use oohgc_dirty::raw_vec::RawVec;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A registered finalizable object.
#[derive(Clone, Copy)]
pub(crate) struct Finalizable {
    base: usize,
    drop_fn: unsafe fn(*mut u8),
    /// 0: any thread (the finalizer thread); else the owning thread's id.
    owner: u64,
}

/// Registered objects, not yet found unreachable.
pub(crate) struct Table {
    entries: RawVec<Finalizable>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    entries: RawVec::new(),
});

/// Objects found unreachable, waiting for their finalizer.
struct Queue {
    shared: RawVec<Finalizable>,
    local: RawVec<Finalizable>,
    thread_started: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    shared: RawVec::new(),
    local: RawVec::new(),
    thread_started: false,
});
static QUEUE_NONEMPTY: Condvar = Condvar::new();
static PROGRESS: Condvar = Condvar::new();
static QUEUED: AtomicU64 = AtomicU64::new(0);
static FINISHED: AtomicU64 = AtomicU64::new(0);
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Register `base` to be dropped with `drop_fn` when unreachable.
pub(crate) fn register(base: usize, drop_fn: unsafe fn(*mut u8), local: bool) {
    let owner = if local { current_thread_id() } else { 0 };
    lock(&TABLE).entries.push(Finalizable {
        base,
        drop_fn,
        owner,
    });
}

/// The finalization locks, taken by the collector before it stops the
/// world so that no stopped thread can hold them during the pause.
pub(crate) struct FinalizeGuard {
    table: MutexGuard<'static, Table>,
    queue: MutexGuard<'static, Queue>,
}

/// Take both finalization locks (table, then queue).
pub(crate) fn lock_table() -> FinalizeGuard {
    let table = lock(&TABLE);
    let queue = lock(&QUEUE);
    FinalizeGuard { table, queue }
}

/// Objects waiting in the queue are roots until their finalizer has run
/// (the queue lives in raw mmap, which is not scanned).
pub(crate) fn mark_pending<M: MarkSet>(g: &FinalizeGuard, m: &mut Marker<'_, M>) {
    for f in g.queue.shared.iter().chain(g.queue.local.iter()) {
        if let Some(o) = oohgc_allocator::find_object(f.base) {
            m.mark_object(o);
        }
    }
}

/// [`mark_pending`] outside a pause (concurrent marking); the final pause
/// marks the queue again under the lock.
pub(crate) fn mark_pending_concurrently<M: MarkSet>(m: &mut Marker<'_, M>) {
    let q = lock(&QUEUE);
    for f in q.shared.iter().chain(q.local.iter()) {
        if let Some(o) = oohgc_allocator::find_object(f.base) {
            m.mark_object(o);
        }
    }
}

/// After marking: queue every ready unreachable finalizable object (see the
/// module docs); returns how many were queued.
pub(crate) fn queue_unreachable<M: MarkSet>(g: &mut FinalizeGuard, m: &mut Marker<'_, M>) -> u64 {
    let unreached = |m: &Marker<'_, M>, base: usize| !m.marks().is_marked(base);
    let mut any = false;
    for f in g.table.entries.iter() {
        if unreached(m, f.base) {
            any = true;
            if let Some(o) = oohgc_allocator::find_object(f.base) {
                m.scan_range(o.base, o.base + o.size);
            }
        }
    }
    if !any {
        return 0;
    }
    m.drain();
    let FinalizeGuard { table, queue } = g;
    let entries = &mut table.entries;
    let mut queued = 0;
    let mut i = 0;
    while i < entries.len() {
        let f = entries[i];
        if unreached(m, f.base) {
            if let Some(o) = oohgc_allocator::find_object(f.base) {
                m.mark_object(o);
            }
            if f.owner == 0 {
                queue.shared.push(f);
            } else {
                queue.local.push(f);
            }
            queued += 1;
            entries.swap_remove(i);
        } else {
            i += 1;
        }
    }
    QUEUED.fetch_add(queued, Ordering::AcqRel);
    queued
}

/// After a cycle: start the finalizer thread if needed and wake it.
pub(crate) fn wake_finalizer() {
    let mut q = lock(&QUEUE);
    if q.shared.is_empty() {
        if !q.local.is_empty() {
            PROGRESS.notify_all();
        }
        return;
    }
    if !q.thread_started {
        q.thread_started = true;
        drop(q);
        std::thread::Builder::new()
            .name("oohgc-finalizer".into())
            .spawn(finalizer_thread)
            .unwrap_or_else(|e| {
                crate::util::fatal(format_args!("cannot start the finalizer thread: {e}"))
            });
        return;
    }
    QUEUE_NONEMPTY.notify_one();
}

fn finalizer_thread() {
    // The finalizer thread runs user code that handles Gc pointers: it is
    // an ordinary mutator, stopped and scanned like any other.
    crate::runtime::register_current_thread();
    loop {
        let f = {
            let mut q = lock(&QUEUE);
            loop {
                if let Some(f) = q.shared.pop() {
                    break f;
                }
                let _b = oohgc_barriers::enter_blocking();
                q = QUEUE_NONEMPTY.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        run_one(f);
        clear_stack();
    }
}

/// Zero a stretch of this thread's dead stack, so that pointers left there
/// by a finalizer do not keep objects alive (bdwgc's `GC_clear_stack`).
#[inline(never)]
fn clear_stack() {
    let mut buf = [0usize; 2048];
    std::hint::black_box(&mut buf);
}

fn run_one(f: Finalizable) {
    // The object stays reachable from this stack frame while it is dropped.
    let base = std::hint::black_box(f.base);
    // SAFETY: `base` holds a value registered with its own drop glue, found
    // unreachable and queued exactly once; nothing else can drop it.
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { (f.drop_fn)(base as *mut u8) }));
    if r.is_err() {
        PANICS.fetch_add(1, Ordering::Relaxed);
        crate::util::eprint_line(format_args!(
            "oohgc: a finalizer panicked (object {base:#x}); the collector goes on"
        ));
    }
    FINISHED.fetch_add(1, Ordering::AcqRel);
    let _q = lock(&QUEUE);
    PROGRESS.notify_all();
}

/// Wait until every finalizer queued before this call has run, and run the
/// calling thread's own `Gc::new_local` finalizers. Returns how many
/// finalizers have run in total.
pub fn run_finalizers() -> u64 {
    let me = current_thread_id();
    loop {
        let f = {
            let mut q = lock(&QUEUE);
            let pos = q.local.iter().position(|f| f.owner == me);
            pos.map(|i| q.local.swap_remove(i))
        };
        match f {
            Some(f) => run_one(f),
            None => break,
        }
    }
    let target = QUEUED.load(Ordering::Acquire);
    let mut q = lock(&QUEUE);
    let _b = oohgc_barriers::enter_blocking();
    loop {
        let foreign_local = q.local.iter().filter(|f| f.owner != me).count() as u64;
        if FINISHED.load(Ordering::Acquire) + foreign_local >= target {
            break;
        }
        q = PROGRESS.wait(q).unwrap_or_else(|p| p.into_inner());
    }
    FINISHED.load(Ordering::Acquire)
}

/// Finalizers run so far.
pub(crate) fn finalizers_run() -> u64 {
    FINISHED.load(Ordering::Acquire)
}

/// Finalizers that panicked so far.
pub fn finalizer_panics() -> u64 {
    PANICS.load(Ordering::Acquire)
}

fn current_thread_id() -> u64 {
    // SAFETY: gettid has no preconditions.
    (unsafe { libc::syscall(libc::SYS_gettid) }) as u64
}

/// In a fork child: the finalizer thread does not exist there; the next
/// cycle with work for it starts a new one.
pub(crate) fn reset_after_fork() {
    lock(&QUEUE).thread_started = false;
}
