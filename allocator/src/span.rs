//! Spans: runs of pages that hold either many objects of one size class
//! (small spans) or one large object; their per-span record [`SpanMeta`].
//!
//! Invariants (the whole crate relies on them):
//! - A span's layout (`state`, `kind`, `class`, `start`, `pages`, `obj_size`,
//!   `slots`, `magic`) changes only under the heap lock and only while the
//!   span holds no allocated object. Writers bracket the change with `gen`
//!   (odd while changing), so lock-free readers detect a change and answer
//!   "no object" — which is then the truth.
//! - A slot is allocated exactly when its allocation byte is 1. Free slots,
//!   slots on a free list and slots popped by a thread that has not yet
//!   published them all have allocation byte 0. The allocation bytes of
//!   pooled pages are all 0.
//! - `free` and `avail_next` belong to the owning thread cache
//!   (`owner`) and are touched by no other thread. Everybody else frees
//!   through the atomic `thread_free` stack.
//! - `full` is ACTIVE while the span is its owner's current span or on one of
//!   its `avail` lists, FULL while it is in no owner list (detached when it ran
//!   out of free slots), CLAIMED once a sweep took an entirely dead FULL span
//!   back to the pool. FULL -> ACTIVE (by the owner) and FULL -> CLAIMED (by the
//!   sweep) are compare-exchanges, so exactly one side wins.

use crate::heap::layout;
use crate::object::ObjectKind;
use crate::size_class::CLASS_SIZE;
use crate::thread_cache::ThreadHeap;
use core::cell::UnsafeCell;
use core::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// `SpanMeta::state`: the page is no span head.
pub(crate) const SPAN_FREE: u8 = 0;
/// `SpanMeta::state`: a small-object span.
pub(crate) const SPAN_SMALL: u8 = 1;
/// `SpanMeta::state`: a large object.
pub(crate) const SPAN_LARGE: u8 = 2;

/// `SpanMeta::full`: owner's current span or on its avail list.
pub(crate) const ACTIVE: u8 = 0;
/// `SpanMeta::full`: detached from the owner's lists.
pub(crate) const FULL: u8 = 1;
/// `SpanMeta::full`: taken back by a sweep.
pub(crate) const CLAIMED: u8 = 2;

const MAGIC_SHIFT: u32 = 40;

/// The slot holding byte `offset` of a small span whose `magic` is given.
#[inline(always)]
pub(crate) fn span_slot_of(offset: usize, magic: u64) -> usize {
    ((offset as u64 * magic) >> MAGIC_SHIFT) as usize
}

/// Per-span record, stored in the span table at the span's first page.
/// All-zero is a valid "no span" record. Cache-line aligned: every field the
/// alloc/free fast paths touch is in the first 64 bytes.
#[repr(C, align(64))]
pub(crate) struct SpanMeta {
    /// Owner-only: free list of slots ready for allocation (link in the first word).
    pub free: UnsafeCell<*mut u8>,
    /// Owner-only: next span on the owner's avail list.
    pub avail_next: UnsafeCell<*const SpanMeta>,
    /// Seqlock generation of the layout (odd while it changes).
    pub gen: AtomicU32,
    pub state: AtomicU8,
    pub kind: AtomicU8,
    pub class: AtomicU8,
    pub full: AtomicU8,
    pub pages: AtomicU32,
    pub obj_size: AtomicU32,
    pub slots: AtomicU32,
    /// Remote frees in progress (pushing to `thread_free` and notifying).
    pub in_progress: AtomicU32,
    /// `2^40 / obj_size + 1`: slot index = `offset * magic >> 40` (exact for spans <= 2^20 bytes).
    pub magic: AtomicU64,
    pub start: AtomicUsize,
    /// The thread cache owning a small span (null for large spans and free pages).
    pub owner: AtomicPtr<ThreadHeap>,
    /// Slots freed by other threads or by the sweep, not yet seen by the owner.
    pub thread_free: AtomicPtr<u8>,
    /// True while the span sits on its owner's `delayed` stack.
    pub in_delayed: AtomicBool,
    /// Link of the owner's `delayed` stack.
    pub delayed_next: AtomicPtr<SpanMeta>,
}

// SAFETY: the UnsafeCell fields are touched only by the owning thread (documented above);
// everything else is atomic.
unsafe impl Sync for SpanMeta {}

/// A consistent copy of a span's layout, read lock-free.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpanView {
    pub state: u8,
    pub kind: ObjectKind,
    pub start: usize,
    pub head: usize,
    pub pages: usize,
    pub obj_size: usize,
    pub slots: usize,
    pub magic: u64,
}

impl SpanView {
    /// Slot containing byte `addr` of the span (may be >= `slots` in the tail).
    #[inline(always)]
    pub fn slot_of(&self, addr: usize) -> usize {
        if self.state == SPAN_LARGE {
            0
        } else {
            span_slot_of(addr - self.start, self.magic)
        }
    }

    /// Address of slot `slot`.
    #[inline(always)]
    pub fn slot_addr(&self, slot: usize) -> usize {
        self.start + slot * self.obj_size
    }

    /// Bytes covered by the span's pages.
    #[inline(always)]
    pub fn end(&self) -> usize {
        self.start + self.pages * crate::config::PAGE_SIZE
    }
}

/// The layout of a span being created.
struct NewSpan {
    head: usize,
    pages: usize,
    state: u8,
    kind: ObjectKind,
    class: usize,
    obj_size: usize,
    slots: usize,
    owner: *mut ThreadHeap,
}

impl SpanMeta {
    /// Reads the layout. None when the span is free or changing. The caller
    /// re-checks with [`SpanMeta::unchanged`] after reading side tables.
    #[inline]
    pub fn view(&self) -> Option<(SpanView, u32)> {
        let gen = self.gen.load(Ordering::Acquire);
        if gen & 1 != 0 {
            return None;
        }
        let state = self.state.load(Ordering::Relaxed);
        if state == SPAN_FREE {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let view = SpanView {
            state,
            kind: ObjectKind::from_index(self.kind.load(Ordering::Relaxed)),
            start,
            head: layout().page_of(start),
            pages: self.pages.load(Ordering::Relaxed) as usize,
            obj_size: self.obj_size.load(Ordering::Relaxed) as usize,
            slots: self.slots.load(Ordering::Relaxed) as usize,
            magic: self.magic.load(Ordering::Relaxed),
        };
        if view.slots == 0 || view.obj_size == 0 {
            return None;
        }
        Some((view, gen))
    }

    /// True if the layout did not change since `view` returned `gen`.
    #[inline]
    pub fn unchanged(&self, gen: u32) -> bool {
        fence(Ordering::Acquire);
        self.gen.load(Ordering::Relaxed) == gen
    }

    fn begin_change(&self) {
        let g = self.gen.load(Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
    }

    fn end_change(&self) {
        let g = self.gen.load(Ordering::Relaxed);
        self.gen.store(g.wrapping_add(1), Ordering::Release);
    }

    /// Turns pages `head .. head+pages` into a span. Heap lock held; the pages
    /// came from the pool (their allocation bytes are 0).
    fn init(&self, n: NewSpan) {
        let NewSpan {
            head,
            pages,
            state,
            kind,
            class,
            obj_size,
            slots,
            owner,
        } = n;
        let l = layout();
        self.begin_change();
        self.state.store(state, Ordering::Relaxed);
        self.kind.store(kind.index() as u8, Ordering::Relaxed);
        self.class.store(class as u8, Ordering::Relaxed);
        self.pages.store(pages as u32, Ordering::Relaxed);
        self.obj_size.store(obj_size as u32, Ordering::Relaxed);
        self.slots.store(slots as u32, Ordering::Relaxed);
        self.magic.store(
            (1u64 << MAGIC_SHIFT) / obj_size as u64 + 1,
            Ordering::Relaxed,
        );
        self.start.store(l.page_addr(head), Ordering::Relaxed);
        self.owner.store(owner, Ordering::Relaxed);
        self.full.store(ACTIVE, Ordering::Relaxed);
        self.thread_free
            .store(core::ptr::null_mut(), Ordering::Relaxed);
        self.in_progress.store(0, Ordering::Relaxed);
        self.in_delayed.store(false, Ordering::Relaxed);
        // SAFETY: the span is not published to any owner yet; we hold the heap lock.
        unsafe {
            *self.free.get() = core::ptr::null_mut();
            *self.avail_next.get() = core::ptr::null();
        }
        self.end_change();
        for p in head..head + pages {
            l.head_entry(p).store(head as u32 + 1, Ordering::Release);
        }
    }

    /// Makes a small span of `class` at `head` owned by `owner`. Heap lock held.
    pub fn init_small(
        &self,
        head: usize,
        pages: usize,
        class: usize,
        kind: ObjectKind,
        owner: *mut ThreadHeap,
    ) {
        let size = CLASS_SIZE[class] as usize;
        let slots = pages * crate::config::PAGE_SIZE / size;
        self.init(NewSpan {
            head,
            pages,
            state: SPAN_SMALL,
            kind,
            class,
            obj_size: size,
            slots,
            owner,
        });
    }

    /// Makes a large-object span of `pages` pages at `head`. Heap lock held.
    pub fn init_large(&self, head: usize, pages: usize, kind: ObjectKind) {
        let size = pages * crate::config::PAGE_SIZE;
        self.init(NewSpan {
            head,
            pages,
            state: SPAN_LARGE,
            kind,
            class: 0,
            obj_size: size,
            slots: 1,
            owner: core::ptr::null_mut(),
        });
    }

    /// Dissolves the span (it holds no allocated object); its pages go back to
    /// the pool. Heap lock held.
    pub fn release(&self) {
        let l = layout();
        let head = l.page_of(self.start.load(Ordering::Relaxed));
        let pages = self.pages.load(Ordering::Relaxed) as usize;
        for p in head..head + pages {
            l.head_entry(p).store(0, Ordering::Release);
        }
        self.begin_change();
        self.state.store(SPAN_FREE, Ordering::Relaxed);
        self.owner.store(core::ptr::null_mut(), Ordering::Relaxed);
        self.thread_free
            .store(core::ptr::null_mut(), Ordering::Relaxed);
        self.end_change();
        crate::page_pool::put(head, pages);
    }
}
