//! Per-thread allocation caches ("thread heaps"): the lock-free fast paths for
//! small objects, refilling, local and remote frees, and hand-over at thread
//! exit.
//!
//! Each thread owns a [`ThreadHeap`] (mmap'd, never freed, recycled through
//! an abandoned list). Per kind and size class it has a `current` span whose
//! free list feeds the fast path, and an `avail` list of other owned spans
//! with free slots. Owned spans with no free slot are detached (`FULL`) and in
//! no list. The owner frees into its own spans by pushing on their free list
//! (no atomics); every other thread, and the sweep, frees through the span's
//! atomic `thread_free` stack. A free into a FULL span also pushes the span on
//! its owner's `delayed` stack (once, guarded by `in_delayed`), so the owner
//! gets it back on its avail list at its next refill.
//!
//! Memory-ordering argument for detaching (the Dekker pair): the owner stores
//! `full = FULL` then loads `thread_free`; a remote free stores into
//! `thread_free` then loads `full` — all SeqCst, so at least one side sees the
//! other and no freed slot is forgotten. A span is retired to the page pool by
//! its owner only when none of its slots is allocated and then (checked in
//! that order) no free is in progress — remote frees and the sweep raise
//! `in_progress` before they clear an allocation byte — and it is not on the
//! delayed stack.
//!
//! A thread stopped at any instruction leaves these structures consistent for
//! the collector: it only reads allocation/mark bytes and uses the atomic
//! `thread_free`/`delayed` stacks, never the owner-only fields.

use crate::heap::{ensure_initialized, layout};
use crate::lock::{with_heap_lock, HEAP_LOCK};
use crate::object::{ObjectKind, KINDS};
use crate::page_pool;
use crate::size_class::{span_pages, CLASS_SIZE, NUM_CLASSES};
use crate::span::{SpanMeta, ACTIVE, CLAIMED, FULL};
use crate::trigger;
use core::cell::{Cell, UnsafeCell};
use core::ptr::{self, null, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};

/// One thread's allocation cache.
#[repr(C)]
pub(crate) struct ThreadHeap {
    current: [[*const SpanMeta; NUM_CLASSES]; KINDS],
    avail: [[*const SpanMeta; NUM_CLASSES]; KINDS],
    /// Spans that received a free while FULL (pushed by any thread).
    delayed: AtomicPtr<SpanMeta>,
    /// Bytes allocated on the fast path, not yet added to the global counter.
    pub(crate) allocated: usize,
    next_abandoned: *mut ThreadHeap,
}

thread_local! {
    /// This thread's cache (const init, no destructor: reading it never allocates).
    static THREAD_HEAP: Cell<*mut ThreadHeap> = const { Cell::new(null_mut()) };
}

struct Abandoned(UnsafeCell<*mut ThreadHeap>);
// SAFETY: accessed only with HEAP_LOCK held.
unsafe impl Sync for Abandoned {}
/// Caches of exited threads, waiting for a new thread to adopt them.
static ABANDONED: Abandoned = Abandoned(UnsafeCell::new(null_mut()));

static EXIT_KEY: AtomicU32 = AtomicU32::new(0);
static EXIT_KEY_OK: AtomicBool = AtomicBool::new(false);

/// While true, `alloc` marks each object it returns.
pub(crate) static ALLOCATE_BLACK: AtomicBool = AtomicBool::new(false);

/// This thread's cache, or null.
#[inline(always)]
pub(crate) fn this_heap() -> *mut ThreadHeap {
    THREAD_HEAP.with(|h| h.get())
}

/// Registers the thread-exit hook (a pthread key destructor: Rust's TLS
/// destructors may allocate through the global allocator, which is us).
pub(crate) fn init_exit_hook() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: creating a key with a valid extern "C" destructor.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        EXIT_KEY.store(key, Ordering::Relaxed);
        EXIT_KEY_OK.store(true, Ordering::Release);
    }
}

extern "C" fn on_thread_exit(heap: *mut libc::c_void) {
    if this_heap() as *mut libc::c_void == heap {
        flush_current_thread_cache();
    }
}

fn set_exit_value(value: *mut ThreadHeap) {
    if EXIT_KEY_OK.load(Ordering::Acquire) {
        // SAFETY: the key was created by init_exit_hook; the value is only compared, never dereferenced by glibc.
        unsafe {
            libc::pthread_setspecific(
                EXIT_KEY.load(Ordering::Relaxed),
                value as *const libc::c_void,
            );
        }
    }
}

/// This thread's cache, adopting an abandoned one or mapping a new one if needed.
#[inline]
fn obtain_heap() -> *mut ThreadHeap {
    let h = this_heap();
    if !h.is_null() {
        return h;
    }
    adopt_heap()
}

#[cold]
fn adopt_heap() -> *mut ThreadHeap {
    if !ensure_initialized() {
        return null_mut();
    }
    let heap = with_heap_lock(|| {
        // SAFETY: ABANDONED is guarded by the heap lock, which we hold.
        unsafe {
            let list = &mut *ABANDONED.0.get();
            if !list.is_null() {
                let h = *list;
                *list = (*h).next_abandoned;
                (*h).next_abandoned = null_mut();
                return h;
            }
        }
        let bytes = core::mem::size_of::<ThreadHeap>().next_multiple_of(crate::config::PAGE_SIZE);
        // Zeroed memory is a valid empty ThreadHeap (null pointers, zero counters).
        crate::os::map_metadata(bytes).map_or(null_mut(), |a| a as *mut ThreadHeap)
    });
    if !heap.is_null() {
        THREAD_HEAP.with(|h| h.set(heap));
        set_exit_value(heap);
    }
    heap
}

/// Adds this thread's fast-path byte count to the global allocation counter.
pub(crate) fn flush_allocation_count() {
    let h = this_heap();
    if !h.is_null() {
        // SAFETY: our own cache; only this thread touches `allocated`.
        unsafe {
            let n = (*h).allocated;
            if n != 0 {
                (*h).allocated = 0;
                trigger::note_allocated(n);
            }
        }
    }
}

/// Bytes this thread allocated on the fast path and not yet flushed.
pub(crate) fn unflushed_allocation_count() -> usize {
    let h = this_heap();
    // SAFETY: our own cache.
    if h.is_null() {
        0
    } else {
        unsafe { (*h).allocated }
    }
}

/// The fast path: pop a slot of `class` from this thread's current span.
/// Null when the cache has nothing ready (the caller takes the slow path).
///
/// # Safety
/// `class < NUM_CLASSES`, `kind < KINDS`.
#[inline(always)]
pub(crate) unsafe fn try_alloc_fast(class: usize, kind: usize) -> *mut u8 {
    let heap = this_heap();
    if heap.is_null() {
        return null_mut();
    }
    // SAFETY: heap is this thread's cache; indices in range per the contract.
    let span = unsafe { *(*heap).current.get_unchecked(kind).get_unchecked(class) };
    if span.is_null() {
        return null_mut();
    }
    // SAFETY: current spans are owned by this thread and live in the span table.
    unsafe { pop(heap, &*span, class) }
}

/// Pops one slot off an owned span's free list and publishes it as allocated.
#[inline(always)]
unsafe fn pop(heap: *mut ThreadHeap, span: &SpanMeta, class: usize) -> *mut u8 {
    // SAFETY: owner-only fields of a span this thread owns; free-list links are
    // written only by this thread (local frees) or handed over through thread_free.
    unsafe {
        let p = *span.free.get();
        if p.is_null() {
            return null_mut();
        }
        *span.free.get() = *(p as *const *mut u8);
        let size = *CLASS_SIZE.get_unchecked(class) as usize;
        zero_slot(p, size);
        let start = span.start.load(Ordering::Relaxed);
        let slot =
            (((p as usize - start) as u64 * span.magic.load(Ordering::Relaxed)) >> 40) as usize;
        let l = layout();
        let head = l.page_of(start);
        // Mark before publishing: a sweep that sees allocation byte 1 sees the
        // mark. With allocate-black off the mark byte is left as it is: it is 0
        // unless a previous occupant of the slot was marked and freed since the
        // last `clear_marks`, and the collector clears all marks before it
        // marks (at worst such an object survives one sweep run without
        // allocate-black).
        if ALLOCATE_BLACK.load(Ordering::Relaxed) {
            l.mark_byte(head, slot).store(1, Ordering::Relaxed);
        }
        l.alloc_byte(head, slot).store(1, Ordering::Release);
        (*heap).allocated += size;
        p
    }
}

/// Zeroes a small slot (16-byte aligned, size a multiple of 16). Slots up to
/// 256 bytes are cleared with inline 16-byte stores (volatile, so the loop is
/// not turned back into a `memset` call, whose call and dispatch cost more
/// than the stores for small sizes); bigger ones use `memset`.
#[inline(always)]
unsafe fn zero_slot(p: *mut u8, size: usize) {
    use core::arch::x86_64::{__m128i, _mm_setzero_si128};
    if size <= 256 {
        let mut off = 0;
        while off < size {
            // SAFETY: p + off is a 16-byte aligned part of the slot.
            unsafe { ptr::write_volatile(p.add(off) as *mut __m128i, _mm_setzero_si128()) };
            off += 16;
        }
    } else {
        // SAFETY: the slot is `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
}

/// Slow path for a small object of `class` (also used for aligned requests,
/// which skip the fast path).
pub(crate) fn alloc_small_slow(class: usize, kind: ObjectKind) -> *mut u8 {
    let heap = obtain_heap();
    if heap.is_null() {
        return null_mut();
    }
    let k = kind.index();
    // SAFETY: heap is this thread's cache; all spans reached are owned by it.
    unsafe {
        let cur = (*heap).current[k][class];
        if !cur.is_null() {
            let p = pop(heap, &*cur, class);
            if !p.is_null() {
                return p;
            }
        }
        if refill(heap, k, class) {
            pop(heap, &*(*heap).current[k][class], class)
        } else {
            null_mut()
        }
    }
}

/// Makes `current[k][c]` a span with a non-empty free list. False on out of memory.
unsafe fn refill(heap: *mut ThreadHeap, k: usize, c: usize) -> bool {
    // SAFETY (whole body): owner-only access to this thread's cache and spans.
    unsafe {
        let h = &mut *heap;
        let cur = h.current[k][c];
        if !cur.is_null() {
            let s = &*cur;
            if collect_thread_free(s) {
                return true;
            }
            h.current[k][c] = null();
            if detach_or_keep(s) {
                h.current[k][c] = cur;
                return true;
            }
        }
        drain_delayed(h);
        while !h.avail[k][c].is_null() {
            let sp = h.avail[k][c];
            let s = &*sp;
            h.avail[k][c] = *s.avail_next.get();
            collect_thread_free(s);
            if !h.avail[k][c].is_null() && try_retire(s) {
                continue;
            }
            if !(*s.free.get()).is_null() || detach_or_keep(s) {
                h.current[k][c] = sp;
                return true;
            }
        }
        match new_small_span(heap, k, c) {
            Some(sp) => {
                h.current[k][c] = sp;
                true
            }
            None => false,
        }
    }
}

/// Moves the span's `thread_free` stack onto its free list. Returns whether the
/// free list is non-empty afterwards.
unsafe fn collect_thread_free(s: &SpanMeta) -> bool {
    // SAFETY: owner-only fields; the swapped-out stack is ours alone.
    unsafe {
        if s.thread_free.load(Ordering::Relaxed).is_null() {
            return !(*s.free.get()).is_null();
        }
        let list = s.thread_free.swap(null_mut(), Ordering::Acquire);
        if list.is_null() {
            return !(*s.free.get()).is_null();
        }
        if (*s.free.get()).is_null() {
            // The usual case (a refill of an exhausted span): the stack
            // becomes the free list as it is, without walking it to its
            // tail, a dependent load per freed slot.
            *s.free.get() = list;
            return true;
        }
        let mut tail = list;
        while !(*(tail as *const *mut u8)).is_null() {
            tail = *(tail as *const *mut u8);
        }
        *(tail as *mut *mut u8) = *s.free.get();
        *s.free.get() = list;
        true
    }
}

/// The span has an empty free list: detach it (FULL), unless a concurrent free
/// arrived, in which case it is collected and kept (true).
unsafe fn detach_or_keep(s: &SpanMeta) -> bool {
    s.full.store(FULL, Ordering::SeqCst);
    if s.thread_free.load(Ordering::SeqCst).is_null() {
        return false;
    }
    if s.full
        .compare_exchange(FULL, ACTIVE, Ordering::SeqCst, Ordering::Relaxed)
        .is_err()
    {
        // A sweep claimed it (entirely dead): it is the pool's now.
        return false;
    }
    // SAFETY: we own the span again.
    unsafe { collect_thread_free(s) }
}

/// Moves every span on the delayed stack back onto its avail list.
unsafe fn drain_delayed(h: &mut ThreadHeap) {
    let mut sp = h.delayed.swap(null_mut(), Ordering::Acquire);
    while !sp.is_null() {
        // SAFETY: spans on our delayed stack are ours; the link is read before
        // in_delayed is cleared (after that a remote free may push it again).
        unsafe {
            let s = &*sp;
            let next = s.delayed_next.load(Ordering::Relaxed);
            s.in_delayed.store(false, Ordering::SeqCst);
            if s.full
                .compare_exchange(FULL, ACTIVE, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                push_avail(h, s);
            }
            sp = next;
        }
    }
}

unsafe fn push_avail(h: &mut ThreadHeap, s: &SpanMeta) {
    let k = s.kind.load(Ordering::Relaxed) as usize;
    let c = s.class.load(Ordering::Relaxed) as usize;
    // SAFETY: owner-only link of a span we own.
    unsafe {
        *s.avail_next.get() = h.avail[k][c];
    }
    h.avail[k][c] = s;
}

/// True when no slot of owned span `s` is allocated (called by the owner, so
/// no allocation of it is half-way).
fn holds_no_object(s: &SpanMeta) -> bool {
    let l = layout();
    let head = l.page_of(s.start.load(Ordering::Relaxed));
    let slots = s.slots.load(Ordering::Relaxed) as usize;
    (0..slots.div_ceil(8)).all(|w| l.alloc_word(head, w).load(Ordering::Acquire) == 0)
}

/// Returns an empty owned span to the page pool if nobody can still reach it:
/// no allocated slot, no remote free in progress or pending, not on the
/// delayed stack.
unsafe fn try_retire(s: &SpanMeta) -> bool {
    // Order matters: allocation bytes first, then in_progress. A remote free
    // or a sweep raises in_progress before clearing an allocation byte, so if
    // we see the byte cleared we also see the free in progress.
    if !holds_no_object(s)
        || s.in_progress.load(Ordering::SeqCst) != 0
        || s.in_delayed.load(Ordering::SeqCst)
        || !s.thread_free.load(Ordering::SeqCst).is_null()
    {
        return false;
    }
    with_heap_lock(|| s.release());
    true
}

/// Takes fresh pages from the pool and makes them a span of class `c` owned by `heap`.
unsafe fn new_small_span(heap: *mut ThreadHeap, k: usize, c: usize) -> Option<*const SpanMeta> {
    let pages = span_pages(c);
    let (head, dirty) = page_pool::acquire(pages, 1)?;
    let l = layout();
    let s = l.span(head);
    with_heap_lock(|| s.init_small(head, pages, c, ObjectKind::from_index(k as u8), heap));
    let size = CLASS_SIZE[c] as usize;
    let start = l.page_addr(head);
    let slots = pages * crate::config::PAGE_SIZE / size;
    // Pooled pages keep the mark bytes of their last occupants (an object
    // marked, then freed explicitly). `clear_marks` only clears existing
    // spans, so a span made after it would hand out objects that look
    // marked, and a collector would never scan them (found by the torture
    // suite with the stop-the-world verifier). Start every span unmarked.
    for w in 0..slots.div_ceil(8) {
        l.mark_word(head, w).store(0, Ordering::Relaxed);
    }
    if dirty {
        // Recycled pages are cold: threading the free list through them
        // would take a read-for-ownership miss on every line. A span-sized
        // memset (`rep stosb`) writes whole lines without reading them
        // first; the threading and the allocations that follow then hit
        // the cache. GCBench mutator time -4.6%.
        // SAFETY: the span's pages are ours and nobody else uses them yet.
        unsafe { ptr::write_bytes(start as *mut u8, 0, pages * crate::config::PAGE_SIZE) };
    }
    let mut next: *mut u8 = null_mut();
    for i in (0..slots).rev() {
        let p = (start + i * size) as *mut u8;
        // SAFETY: p is a slot of the span we just took; nobody else uses it yet.
        unsafe { *(p as *mut *mut u8) = next };
        next = p;
    }
    // SAFETY: owner-only field of our new span.
    unsafe { *s.free.get() = next };
    Some(s)
}

/// Frees small object `p` of span `s`, whose allocation byte is `alloc_byte`.
///
/// # Safety
/// `p` is a slot of `s`, which is a small span.
#[inline(always)]
pub(crate) unsafe fn free_small(s: &SpanMeta, p: *mut u8, alloc_byte: &AtomicU8) {
    let heap = this_heap();
    if s.owner.load(Ordering::Relaxed) == heap {
        crate::api::clear_alloc_byte(alloc_byte, p);
        // SAFETY: we own the span: owner-only fields.
        unsafe {
            *(p as *mut *mut u8) = *s.free.get();
            *s.free.get() = p;
            if s.full.load(Ordering::Relaxed) == FULL {
                reactivate(heap, s);
            }
        }
    } else {
        // Announce the free before the allocation byte goes to 0: the owner
        // retires a span only if it sees no allocated slot and then no free
        // in progress (see try_retire).
        s.in_progress.fetch_add(1, Ordering::SeqCst);
        crate::api::clear_alloc_byte(alloc_byte, p);
        // SAFETY: p is a slot of s whose allocation byte we cleared.
        unsafe { push_chain_announced(s, p, p) };
        s.in_progress.fetch_sub(1, Ordering::Release);
    }
}

#[cold]
unsafe fn reactivate(heap: *mut ThreadHeap, s: &SpanMeta) {
    if s.full
        .compare_exchange(FULL, ACTIVE, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
    {
        // SAFETY: our own cache.
        unsafe { push_avail(&mut *heap, s) }
    }
}

/// Frees `p` into a span this thread does not own (or from the sweep).
///
/// # Safety
/// `p` is a slot of small span `s` whose allocation byte this caller cleared.
/// Pushes a chain of freed slots `first -> ... -> last` (linked through their
/// first words) onto `s`'s thread_free stack with one compare-exchange, and
/// notifies the owner if the span is detached.
///
/// # Safety
/// Every slot of the chain belongs to small span `s` and had its allocation
/// byte cleared by this caller, which incremented `s.in_progress` *before*
/// clearing them and decrements it after this call.
pub(crate) unsafe fn push_chain_announced(s: &SpanMeta, first: *mut u8, last: *mut u8) {
    let mut head = s.thread_free.load(Ordering::Relaxed);
    loop {
        // SAFETY: the slots are free and ours until the push succeeds.
        unsafe { *(last as *mut *mut u8) = head };
        match s
            .thread_free
            .compare_exchange_weak(head, first, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    if s.full.load(Ordering::SeqCst) == FULL && !s.in_delayed.swap(true, Ordering::SeqCst) {
        let owner = s.owner.load(Ordering::Acquire);
        // SAFETY: a small span with an allocated object always has an owner, and
        // thread caches are never unmapped.
        let delayed = unsafe { &(*owner).delayed };
        let sp = s as *const SpanMeta as *mut SpanMeta;
        let mut top = delayed.load(Ordering::Relaxed);
        loop {
            s.delayed_next.store(top, Ordering::Relaxed);
            match delayed.compare_exchange_weak(top, sp, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(t) => top = t,
            }
        }
    }
}

/// Hands this thread's cache back: empty spans return to the page pool, the
/// others stay in the cache, which waits on the abandoned list for the next
/// new thread to adopt it (with its spans and their free slots). Called at thread exit (pthread key destructor) and by the collector.
pub fn flush_current_thread_cache() {
    let heap = this_heap();
    if heap.is_null() {
        return;
    }
    flush_allocation_count();
    HEAP_LOCK.lock();
    // SAFETY: our own cache; the heap lock protects the abandoned list.
    unsafe {
        let h = &mut *heap;
        drain_delayed(h);
        for k in 0..KINDS {
            for c in 0..NUM_CLASSES {
                let mut list = [h.current[k][c], h.avail[k][c]];
                h.current[k][c] = null();
                h.avail[k][c] = null();
                for (i, first) in list.iter_mut().enumerate() {
                    let mut sp = *first;
                    while !sp.is_null() {
                        let s = &*sp;
                        sp = if i == 1 { *s.avail_next.get() } else { null() };
                        collect_thread_free(s);
                        if try_retire(s) {
                            continue;
                        }
                        // Spans with free slots stay on the cache's avail list
                        // for the thread that adopts it; full ones are detached
                        // (a free will put them back on the delayed stack).
                        if !(*s.free.get()).is_null() || detach_or_keep(s) {
                            push_avail(h, s);
                        }
                    }
                }
            }
        }
        h.next_abandoned = *ABANDONED.0.get();
        *ABANDONED.0.get() = heap;
    }
    HEAP_LOCK.unlock();
    THREAD_HEAP.with(|h| h.set(null_mut()));
    set_exit_value(null_mut());
}

/// Sweep helper: true when `s` is a detached span that may be claimed.
pub(crate) fn claimable(s: &SpanMeta) -> bool {
    s.full.load(Ordering::SeqCst) == FULL
        && s.in_progress.load(Ordering::SeqCst) == 0
        && !s.in_delayed.load(Ordering::SeqCst)
}

/// Sweep helper: claims a detached span from its owner. True if the sweep won.
pub(crate) fn claim(s: &SpanMeta) -> bool {
    s.full
        .compare_exchange(FULL, CLAIMED, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok()
}
