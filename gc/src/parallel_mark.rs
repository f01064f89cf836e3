//! Parallel draining for stop-the-world marking: while the world is
//! stopped the mutators' cores are idle, so a helper marker thread drains
//! the mark stack alongside the thread running the cycle (bdwgc's parallel
//! mark, with one helper: this project's machines have two cores).
//!
//! Work sharing: each marker drains its own stack; a marker that runs dry
//! raises `HUNGRY` and waits on the shared pool; a marker with work sees
//! the flag between two objects and moves the older half of its stack
//! (the roots of the largest unexplored parts of the graph) to the pool.
//! Termination: `busy` counts the markers holding work; it changes only
//! under the pool's lock, and a marker gives up its count only with an
//! empty stack. `busy == 0` with an empty pool means no work is left
//! anywhere.
//!
//! Two markers may both mark (and scan) one object: mark bytes are set
//! with a plain store (see `mark_object_at`); scanning twice is harmless.
//! The helper never allocates through `GcAllocator` (its stack is raw
//! `mmap`) and is excluded from stop-the-world, so it runs while mutators
//! are stopped holding any lock.
//!
//! Off by default (`OOHGC_PARALLEL_MARK=1` turns it on). Measured on this
//! project's 2-vCPU VM: with the host quiet, GCBench's stop-the-world pauses
//! shrink by 15-20% (tree-shaped heaps split well); a random 1M-node graph
//! marks 12% slower (the two cores fight over the side tables' cache
//! lines); and when the host is busy the pauses grow by a third, because
//! work handed to the helper waits whenever the helper's vCPU is not
//! running: a pause is as long as its slowest marker. Work stealing back
//! from a stalled helper would fix the last; it is not built.

use crate::mark::{Entry, HeapMarks, MarkStack, Marker};
use crate::mark_cache::MarkCache;
use crate::runtime;
use crate::util::lock;
use oohgc_dirty::raw_vec::RawVec;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// Entries a marker takes from the pool at a time.
const TAKE: usize = 64;
/// A marker keeps at least this many entries for itself.
const KEEP: usize = 16;

/// A marking job for the helper: the cycle's marked-base cache.
#[derive(Clone, Copy)]
struct Job {
    cache: *const MarkCache,
}

// SAFETY: the pointer is only dereferenced while the job runs, during which
// the cycle keeps the cache alive and unchanged except through atomics.
unsafe impl Send for Job {}

struct Pool {
    work: RawVec<Entry>,
    busy: usize,
    job: Option<Job>,
    job_seq: u64,
    done_seq: u64,
    helper_counts: crate::mark::MarkCounts,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    work: RawVec::new(),
    busy: 0,
    job: None,
    job_seq: 0,
    done_seq: 0,
    helper_counts: crate::mark::MarkCounts {
        objects: 0,
        bytes: 0,
        words: 0,
        overflows: 0,
    },
});
static POOL_CHANGED: Condvar = Condvar::new();
/// A marker is waiting for work.
static HUNGRY: AtomicBool = AtomicBool::new(false);

/// The helper thread of this process (after `fork` the child has none).
struct Helper {
    pid: i32,
    ready: bool,
}
static HELPER: Mutex<Helper> = Mutex::new(Helper {
    pid: 0,
    ready: false,
});

/// Start the helper thread (once per process, when the collector starts).
///
/// Not from inside a cycle: a new thread allocates as it starts, and with
/// the heap at its limit that allocation would wait for the very cycle
/// that started it. Nor does this wait for the thread: `prepare` uses it
/// once it has excluded itself from stop-the-world.
pub(crate) fn start_helper() {
    if !runtime::config().parallel_mark {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } < 2 {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut h = lock(&HELPER);
    if h.pid == pid {
        return;
    }
    h.pid = pid;
    h.ready = false;
    drop(h);
    let spawned = runtime::with_system_allocator(|| {
        std::thread::Builder::new()
            .name("oohgc-marker".into())
            .spawn(helper_main)
    });
    if let Err(e) = spawned {
        crate::util::eprint_line(format_args!(
            "oohgc: cannot start the parallel marker ({e}); marking on one thread"
        ));
    }
}

/// Whether this cycle can mark with the helper: it was started in this
/// process (after `fork` the child has none and marks on one thread) and
/// has excluded itself from stop-the-world.
pub(crate) fn prepare() -> bool {
    if !runtime::config().parallel_mark {
        return false;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let h = lock(&HELPER);
    h.pid == pid && h.ready
}

/// Drain `m` to completion, with the helper when `parallel` (what
/// [`prepare`] returned); on one thread otherwise.
pub(crate) fn drain(m: &mut Marker<'_, HeapMarks<'_>>, parallel: bool) {
    if !parallel {
        m.drain();
        return;
    }
    let seq = {
        let mut p = lock(&POOL);
        p.work.clear();
        p.busy = 2;
        p.job_seq += 1;
        p.job = Some(Job {
            cache: m.marks().cache_ptr(),
        });
        HUNGRY.store(false, Ordering::Release);
        POOL_CHANGED.notify_all();
        p.job_seq
    };
    m.set_sharing(true);
    work_loop(m);
    m.set_sharing(false);
    let mut p = lock(&POOL);
    while p.done_seq != seq {
        p = POOL_CHANGED.wait(p).unwrap_or_else(|e| e.into_inner());
    }
    p.job = None;
    let c = p.helper_counts;
    m.counts.objects += c.objects;
    m.counts.bytes += c.bytes;
    m.counts.words += c.words;
    m.counts.overflows += c.overflows;
}

/// Drain, take work from the pool when dry, until no marker has any.
fn work_loop(m: &mut Marker<'_, HeapMarks<'_>>) {
    loop {
        m.drain();
        let mut p = lock(&POOL);
        p.busy -= 1;
        loop {
            if !p.work.is_empty() {
                p.busy += 1;
                let n = p.work.len().min(TAKE);
                let from = p.work.len() - n;
                m.stack_mut().push_all(&p.work.as_slice()[from..]);
                p.work.truncate(from);
                break;
            }
            if p.busy == 0 {
                HUNGRY.store(false, Ordering::Release);
                POOL_CHANGED.notify_all();
                return;
            }
            HUNGRY.store(true, Ordering::Release);
            p = POOL_CHANGED.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Called by a sharing marker between two objects: give the older half of
/// `stack` to a marker that waits for work.
#[inline]
pub(crate) fn offer_work(stack: &mut MarkStack) {
    if HUNGRY.load(Ordering::Relaxed) && stack.len() > KEEP {
        give(stack);
    }
}

#[cold]
#[inline(never)]
fn give(stack: &mut MarkStack) {
    let mut p = lock(&POOL);
    if !HUNGRY.load(Ordering::Acquire) {
        return;
    }
    let n = stack.len() / 2;
    stack.take_bottom(n, &mut p.work);
    HUNGRY.store(false, Ordering::Release);
    POOL_CHANGED.notify_all();
}

fn helper_main() {
    runtime::become_internal_thread();
    let mut stack = MarkStack::new();
    // Jobs are posted only after `prepare` saw `ready`: read the sequence
    // first, so that no job can slip in between.
    let mut seen = lock(&POOL).job_seq;
    {
        lock(&HELPER).ready = true;
    }
    loop {
        let job = {
            let mut p = lock(&POOL);
            loop {
                if let Some(job) = p.job {
                    if p.job_seq != seen {
                        seen = p.job_seq;
                        break job;
                    }
                }
                p = POOL_CHANGED.wait(p).unwrap_or_else(|e| e.into_inner());
            }
        };
        // SAFETY: the cycle that posted the job keeps its cache alive until
        // it has seen `done_seq` reach this job.
        let marks = unsafe { HeapMarks::from_cache_ptr(job.cache) };
        let mut m = Marker::new(&mut stack, marks);
        m.set_sharing(true);
        work_loop(&mut m);
        let counts = m.counts;
        let mut p = lock(&POOL);
        p.helper_counts = counts;
        p.done_seq = seen;
        POOL_CHANGED.notify_all();
    }
}
