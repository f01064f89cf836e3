//! The page pool: which committed pages are free, growing the committed part
//! of the reservation (and calling the chunk hook), and returning long-empty
//! pages to the OS.
//!
//! The reservation is committed from the bottom up; `[lo, lo + frontier
//! pages)` is readable and writable. Every committed page not in a span is in
//! the pool, in one of three states (bitmaps, one bit per page):
//! - fresh: never used since commit, reads as zero;
//! - dirty: used before, resident, content undefined; it remembers the sweep
//!   count at which it was pooled;
//! - returned: given back with `MADV_DONTNEED`, reads as zero, not counted as
//!   committed.
//!
//! A dirty page still pooled at the end of the second sweep after it was
//! pooled is returned to the OS. `committed` = frontier bytes - returned
//! bytes and never exceeds `max_heap`.
//!
//! Everything here except `frontier_pages` is guarded by the heap lock.

use crate::config::{HeapError, COMMIT_CHUNK, PAGE_SIZE};
use crate::heap::layout;
use crate::lock::{GROWTH_LOCK, HEAP_LOCK};
use crate::os;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

struct Pool {
    free: *mut u64,
    dirty: *mut u64,
    returned: *mut u64,
    pooled_at: *mut u32,
    /// (first page, pages) of every growth step, in order.
    chunks: *mut [u32; 2],
    frontier: usize,
    committed: usize,
    returned_bytes: usize,
    hint: usize,
    sweeps: u32,
}

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: accessed only with HEAP_LOCK held (see `pool()`).
unsafe impl Sync for PoolCell {}

static POOL: PoolCell = PoolCell(UnsafeCell::new(Pool {
    free: core::ptr::null_mut(),
    dirty: core::ptr::null_mut(),
    returned: core::ptr::null_mut(),
    pooled_at: core::ptr::null_mut(),
    chunks: core::ptr::null_mut(),
    frontier: 0,
    committed: 0,
    returned_bytes: 0,
    hint: 0,
    sweeps: 0,
}));

/// Committed pages, published after the chunk hook ran (lock-free readers).
static FRONTIER_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Chunks recorded in `Pool::chunks` and visible to lock-free readers.
static CHUNK_COUNT: AtomicUsize = AtomicUsize::new(0);
/// `Pool::chunks`, for lock-free readers (set once at init).
static CHUNK_TABLE: AtomicUsize = AtomicUsize::new(0);

/// The chunk hook (`fn(start, len)` as usize; 0 = none).
static CHUNK_HOOK: AtomicUsize = AtomicUsize::new(0);

#[allow(clippy::mut_from_ref)]
fn pool() -> &'static mut Pool {
    debug_assert!(HEAP_LOCK.held_by_me());
    // SAFETY: callers hold HEAP_LOCK, so this is the only live reference.
    unsafe { &mut *POOL.0.get() }
}

/// Maps the pool's bitmaps for `pages` pages. Heap lock held, during init.
pub(crate) fn init(pages: usize) -> Result<(), HeapError> {
    let words = pages.div_ceil(64);
    let map = |what: &'static str, bytes: usize| {
        os::map_metadata(bytes).map_err(|errno| HeapError::MapFailed { what, bytes, errno })
    };
    let p = pool();
    p.free = map("page pool bitmap", words * 8)? as *mut u64;
    p.dirty = map("page pool bitmap", words * 8)? as *mut u64;
    p.returned = map("page pool bitmap", words * 8)? as *mut u64;
    p.pooled_at = map("page pool ages", pages * 4)? as *mut u32;
    // Every chunk has at least one page, so `pages` entries always suffice.
    p.chunks = map("chunk list", pages * 8)? as *mut [u32; 2];
    CHUNK_TABLE.store(p.chunks as usize, Ordering::Release);
    Ok(())
}

/// Committed pages visible to lock-free readers.
#[inline]
pub(crate) fn frontier_pages() -> usize {
    FRONTIER_PAGES.load(Ordering::Acquire)
}

#[inline]
fn get(bits: *mut u64, i: usize) -> bool {
    // SAFETY: i < pages (callers stay below the frontier), inside the bitmap mapping.
    unsafe { *bits.add(i / 64) & (1 << (i % 64)) != 0 }
}

#[inline]
fn set(bits: *mut u64, i: usize, on: bool) {
    // SAFETY: as for get; heap lock held.
    unsafe {
        let w = &mut *bits.add(i / 64);
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

/// Finds and takes `pages` free pages starting at a page whose address is a
/// multiple of `align_pages` pages. Returns (first page, whether some page was
/// dirty, i.e. the run is not known to be zero).
fn take_run(pages: usize, align_pages: usize) -> Option<(usize, bool)> {
    let p = pool();
    let l = layout();
    let base_page = l.lo / PAGE_SIZE;
    let mut i = p.hint;
    // True while every page in [hint, i) is in use, so the hint may move up.
    let mut none_free_before = true;
    while i + pages <= p.frontier {
        // SAFETY: i < frontier <= pages of the bitmap.
        let word = unsafe { *p.free.add(i / 64) } >> (i % 64);
        if word == 0 {
            i = (i / 64 + 1) * 64;
            continue;
        }
        if !get(p.free, i) {
            i += 1;
            continue;
        }
        let misalign = (base_page + i) % align_pages;
        if misalign != 0 {
            none_free_before = false;
            i += align_pages - misalign;
            continue;
        }
        let mut j = i;
        while j < i + pages && get(p.free, j) {
            j += 1;
        }
        if j < i + pages {
            none_free_before = false;
            i = j + 1;
            continue;
        }
        let returned = (i..i + pages).filter(|&q| get(p.returned, q)).count();
        if p.committed + returned * PAGE_SIZE
            > l.max_heap.load(core::sync::atomic::Ordering::Acquire)
        {
            // Re-committing these returned pages would pass max_heap; a run
            // further on may need fewer.
            none_free_before = false;
            i += 1;
            continue;
        }
        let mut dirty = false;
        for q in i..i + pages {
            set(p.free, q, false);
            if get(p.returned, q) {
                set(p.returned, q, false);
            }
            if get(p.dirty, q) {
                set(p.dirty, q, false);
                dirty = true;
            }
        }
        p.committed += returned * PAGE_SIZE;
        p.returned_bytes -= returned * PAGE_SIZE;
        if none_free_before {
            p.hint = i + pages;
        }
        return Some((i, dirty));
    }
    None
}

/// Takes a run of `pages` pages aligned to `align_pages` pages, growing the heap
/// when needed. Returns (first page, whether its content may be non-zero), or
/// None when `max_heap` or the reservation is exhausted.
pub(crate) fn acquire(pages: usize, align_pages: usize) -> Option<(usize, bool)> {
    for _ in 0..4 {
        HEAP_LOCK.lock();
        let r = take_run(pages, align_pages);
        HEAP_LOCK.unlock();
        if r.is_some() {
            return r;
        }
        if !grow(pages + align_pages - 1) {
            return None;
        }
    }
    None
}

/// Commits at least `pages` more pages (a whole COMMIT_CHUNK when the limit
/// allows). The chunk hook runs without the heap lock (unless the caller holds it).
fn grow(pages: usize) -> bool {
    if HEAP_LOCK.held_by_me() {
        // Lock order is growth lock, then heap lock. A thread already holding
        // the heap lock (the collector's guard) must not wait for the growth
        // lock: its holder may be waiting for the heap lock. Fail instead.
        if !GROWTH_LOCK.try_lock() {
            return false;
        }
    } else {
        GROWTH_LOCK.lock();
    }
    HEAP_LOCK.lock();
    let l = layout();
    let p = pool();
    let need = pages * PAGE_SIZE;
    let room = l
        .max_heap
        .load(core::sync::atomic::Ordering::Acquire)
        .saturating_sub(p.committed)
        / PAGE_SIZE
        * PAGE_SIZE;
    let left = (l.pages - p.frontier) * PAGE_SIZE;
    let bytes = need.max(COMMIT_CHUNK).min(room).min(left);
    let start_page = p.frontier;
    let ok = bytes >= need && need > 0;
    if ok {
        p.committed += bytes;
    }
    HEAP_LOCK.unlock();
    if !ok {
        GROWTH_LOCK.unlock();
        return false;
    }
    let start = l.page_addr(start_page);
    if os::commit(start, bytes).is_err() {
        HEAP_LOCK.lock();
        pool().committed -= bytes;
        HEAP_LOCK.unlock();
        GROWTH_LOCK.unlock();
        return false;
    }
    let hook = CHUNK_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: the value was stored from a `fn(usize, usize)` in set_chunk_hook.
        let hook: fn(usize, usize) =
            unsafe { core::mem::transmute::<usize, fn(usize, usize)>(hook) };
        hook(start, bytes);
    }
    HEAP_LOCK.lock();
    let p = pool();
    let n = bytes / PAGE_SIZE;
    for q in start_page..start_page + n {
        set(p.free, q, true);
    }
    p.frontier = start_page + n;
    p.hint = p.hint.min(start_page);
    let k = CHUNK_COUNT.load(Ordering::Relaxed);
    // SAFETY: k < pages (each chunk has >= 1 page); heap lock held, readers stop at CHUNK_COUNT.
    unsafe { *p.chunks.add(k) = [start_page as u32, n as u32] };
    CHUNK_COUNT.store(k + 1, Ordering::Release);
    FRONTIER_PAGES.store(p.frontier, Ordering::Release);
    HEAP_LOCK.unlock();
    GROWTH_LOCK.unlock();
    true
}

/// Puts the pages of a dissolved span back (dirty). Heap lock held.
pub(crate) fn put(head: usize, pages: usize) {
    let p = pool();
    for q in head..head + pages {
        set(p.free, q, true);
        set(p.dirty, q, true);
        // SAFETY: q < frontier <= pages.
        unsafe { *p.pooled_at.add(q) = p.sweeps };
    }
    p.hint = p.hint.min(head);
}

/// Ends a sweep: counts it, and returns dirty pages pooled before the
/// previous sweep to the OS. Returns the bytes returned. Heap lock held.
pub(crate) fn end_sweep_and_return_old_pages() -> usize {
    let p = pool();
    let l = layout();
    p.sweeps = p.sweeps.wrapping_add(1);
    let mut total = 0;
    let mut q = 0;
    while q < p.frontier {
        // SAFETY: q < frontier.
        if unsafe { *p.dirty.add(q / 64) } >> (q % 64) == 0 {
            q = (q / 64 + 1) * 64;
            continue;
        }
        let old = |q: usize| {
            // SAFETY: q < frontier.
            get(p.dirty, q) && p.sweeps.wrapping_sub(unsafe { *p.pooled_at.add(q) }) >= 2
        };
        if !old(q) {
            q += 1;
            continue;
        }
        let start = q;
        while q < p.frontier && old(q) {
            set(p.dirty, q, false);
            set(p.returned, q, true);
            q += 1;
        }
        let bytes = (q - start) * PAGE_SIZE;
        os::discard(l.page_addr(start), bytes);
        let hook = DISCARD_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: the value was stored from a `fn(usize, usize)` in set_discard_hook.
            let hook: fn(usize, usize) =
                unsafe { core::mem::transmute::<usize, fn(usize, usize)>(hook) };
            hook(l.page_addr(start), bytes);
        }
        total += bytes;
    }
    p.committed -= total;
    p.returned_bytes += total;
    total
}

/// (committed, returned) bytes. Takes the heap lock.
pub(crate) fn committed_and_returned() -> (usize, usize) {
    HEAP_LOCK.lock();
    let p = pool();
    let r = (p.committed, p.returned_bytes);
    HEAP_LOCK.unlock();
    r
}

static DISCARD_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Registers the function called right after pooled pages are returned to
/// the OS (`MADV_DONTNEED`), before they can be handed out again: a dirty
/// source whose tracking does not survive a discard is told about it. It
/// runs with the heap lock held, must not allocate, and must not take a lock
/// whose holder may wait for the heap lock.
pub fn set_discard_hook(hook: fn(start: usize, len: usize)) {
    DISCARD_HOOK.store(hook as usize, Ordering::Release);
}

/// Registers the function called whenever new heap memory is committed,
/// before any object in it is handed out. It runs without allocator locks
/// (unless the allocating thread itself holds [`crate::lock()`]), may make
/// system calls, and must not allocate. Note that the world may be stopped
/// while a thread is inside the hook.
pub fn set_chunk_hook(hook: fn(start: usize, len: usize)) {
    CHUNK_HOOK.store(hook as usize, Ordering::Release);
}

/// Calls `f(start, len)` for every chunk of committed heap memory, in address
/// order: exactly the ranges the chunk hook was (or would have been) called
/// with, each page aligned and disjoint from the others. Pages returned to the
/// OS stay mapped and are included. Lock-free and non-allocating.
pub fn for_each_chunk(f: &mut dyn FnMut(usize, usize)) {
    let n = CHUNK_COUNT.load(Ordering::Acquire);
    let table = CHUNK_TABLE.load(Ordering::Acquire) as *const [u32; 2];
    let l = layout();
    for i in 0..n {
        // SAFETY: entries below CHUNK_COUNT were written before it was published.
        let [start, pages] = unsafe { *table.add(i) };
        f(l.page_addr(start as usize), pages as usize * PAGE_SIZE);
    }
}
