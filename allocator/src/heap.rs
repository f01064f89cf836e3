//! The process-wide heap: the address-space reservation, the side tables
//! (outside the reservation), and `init`.
//!
//! Memory layout. One PROT_NONE/MAP_NORESERVE reservation `[lo, hi)` holds
//! nothing but objects; it is committed from the bottom up in chunks
//! (`page_pool`). Everything else is in separate anonymous mappings, so a
//! conservative scan of the reservation never sees metadata and a dirty source
//! tracking the committed chunks never sees metadata writes (mark bits
//! included). Side tables, all indexed by page number `(addr - lo) / 4096`:
//! - `page_head`: `head + 1` of the span covering the page, 0 when the page is
//!   in no span (the O(1) object map's first step);
//! - `spans`: one [`SpanMeta`] per page, meaningful at span heads;
//! - `alloc` and `mark`: 256 bytes per page; slot `i` of the span whose head
//!   is page `h` uses byte `h * 256 + i` (objects are >= 16 bytes, so a span
//!   of `n` pages has at most `n * 256` slots).

use crate::config::{HeapConfig, HeapError, PAGE_SHIFT, PAGE_SIZE};
use crate::lock::HEAP_LOCK;
use crate::os;
use crate::page_pool;
use crate::span::SpanMeta;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Side-table bytes (alloc bytes, mark bytes) per heap page.
pub(crate) const SLOTS_PER_PAGE: usize = PAGE_SIZE / crate::config::GRANULE;

/// Where everything is; written once by `init` under the heap lock, read-only after.
pub(crate) struct Layout {
    pub lo: usize,
    pub hi: usize,
    pub pages: usize,
    /// Changeable at run time ([`set_max_heap`]); never above the reservation.
    pub max_heap: core::sync::atomic::AtomicUsize,
    pub page_head: *const AtomicU32,
    pub spans: *const SpanMeta,
    pub alloc: *const AtomicU8,
    pub mark: *const AtomicU8,
}

struct LayoutCell(UnsafeCell<Layout>);
// SAFETY: written only once, before STATE is published with Release; read-only afterwards.
unsafe impl Sync for LayoutCell {}

static LAYOUT: LayoutCell = LayoutCell(UnsafeCell::new(Layout {
    lo: 0,
    hi: 0,
    pages: 0,
    max_heap: core::sync::atomic::AtomicUsize::new(0),
    page_head: core::ptr::null(),
    spans: core::ptr::null(),
    alloc: core::ptr::null(),
    mark: core::ptr::null(),
}));

const UNINIT: u8 = 0;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// The layout. Before init it is all zeros (lo = hi = 0: every address is outside).
#[inline(always)]
pub(crate) fn layout() -> &'static Layout {
    // SAFETY: LAYOUT is written only inside `init_locked` before STATE becomes READY;
    // readers either saw READY (Acquire) or read the all-zero initial value, which is never
    // written concurrently with a reader that could have observed a heap address.
    unsafe { &*LAYOUT.0.get() }
}

/// True once the heap is live.
#[inline]
pub fn is_initialized() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// Starts the heap with `config`. Must come before the first allocation; the
/// first allocation without it starts the heap with `HeapConfig::default()`.
pub fn init(config: HeapConfig) -> Result<(), HeapError> {
    config.validate()?;
    HEAP_LOCK.lock();
    let r = if is_initialized() {
        Err(HeapError::AlreadyInitialized)
    } else {
        init_locked(config)
    };
    HEAP_LOCK.unlock();
    r
}

/// Starts the heap with the default configuration if nobody did yet.
#[cold]
pub(crate) fn ensure_initialized() -> bool {
    if is_initialized() {
        return true;
    }
    HEAP_LOCK.lock();
    let ok = is_initialized() || init_locked(HeapConfig::default()).is_ok();
    HEAP_LOCK.unlock();
    ok
}

fn init_locked(config: HeapConfig) -> Result<(), HeapError> {
    let pages = config.reserve / PAGE_SIZE;
    let lo = os::reserve(config.reserve).map_err(|errno| HeapError::MapFailed {
        what: "heap reservation",
        bytes: config.reserve,
        errno,
    })?;
    let table = |what: &'static str, bytes: usize| {
        // No MADV_HUGEPAGE here (see os.rs): a huge-page fault on a side
        // table can stall the allocating thread for milliseconds.
        os::map_metadata(bytes).map_err(|errno| HeapError::MapFailed { what, bytes, errno })
    };
    let page_head = table("page map", pages * 4)?;
    let spans = table("span table", pages * core::mem::size_of::<SpanMeta>())?;
    let alloc = table("allocation bytes", pages * SLOTS_PER_PAGE)?;
    let mark = table("mark bytes", pages * SLOTS_PER_PAGE)?;
    page_pool::init(pages)?;
    crate::thread_cache::init_exit_hook();
    // SAFETY: we hold the heap lock and STATE is not READY, so no reader relies on LAYOUT yet.
    unsafe {
        *LAYOUT.0.get() = Layout {
            lo,
            hi: lo + config.reserve,
            pages,
            max_heap: core::sync::atomic::AtomicUsize::new(config.max_heap),
            page_head: page_head as *const AtomicU32,
            spans: spans as *const SpanMeta,
            alloc: alloc as *const AtomicU8,
            mark: mark as *const AtomicU8,
        };
    }
    STATE.store(READY, Ordering::Release);
    Ok(())
}

/// The end of the part of the reservation ever handed to the heap (every
/// object lies in `[heap_bounds().0, heap_extent())`; the extent only grows).
/// 0 before init.
pub fn heap_extent() -> usize {
    if is_initialized() {
        layout().page_addr(crate::page_pool::frontier_pages())
    } else {
        0
    }
}

/// `[lo, hi)` of the reservation, `(0, 0)` before init: the quick reject for
/// conservative scanning.
pub fn heap_bounds() -> (usize, usize) {
    let l = layout();
    if is_initialized() {
        (l.lo, l.hi)
    } else {
        (0, 0)
    }
}

impl Layout {
    /// Page number of a heap address (caller checked `lo <= addr < hi`).
    #[inline(always)]
    pub fn page_of(&self, addr: usize) -> usize {
        (addr - self.lo) >> PAGE_SHIFT
    }

    /// Address of page `page`.
    #[inline(always)]
    pub fn page_addr(&self, page: usize) -> usize {
        self.lo + (page << PAGE_SHIFT)
    }

    /// The page-map entry of `page` (< `pages`).
    #[inline(always)]
    pub fn head_entry(&self, page: usize) -> &'static AtomicU32 {
        debug_assert!(page < self.pages);
        // SAFETY: page < pages, and the table has `pages` entries for the process lifetime.
        unsafe { &*self.page_head.add(page) }
    }

    /// The span record of page `page` (< `pages`).
    #[inline(always)]
    pub fn span(&self, page: usize) -> &'static SpanMeta {
        debug_assert!(page < self.pages);
        // SAFETY: as for head_entry; the span table is zero-initialised, a valid SpanMeta.
        unsafe { &*self.spans.add(page) }
    }

    /// The span covering heap address `addr`, if any (no consistency check).
    #[inline(always)]
    pub fn span_at(&self, addr: usize) -> Option<&'static SpanMeta> {
        if addr.wrapping_sub(self.lo) >= self.hi - self.lo {
            return None;
        }
        let h = self.head_entry(self.page_of(addr)).load(Ordering::Acquire);
        if h == 0 {
            None
        } else {
            Some(self.span(h as usize - 1))
        }
    }

    /// Allocation byte `slot` of the span whose first page is `head`.
    #[inline(always)]
    pub fn alloc_byte(&self, head: usize, slot: usize) -> &'static AtomicU8 {
        // SAFETY: slot < pages_of_span * 256, so the index stays inside the span's pages' rows.
        unsafe { &*self.alloc.add(head * SLOTS_PER_PAGE + slot) }
    }

    /// The allocation bytes `8*word .. 8*word+8` of span `head` as one word
    /// (rows are 256-byte aligned, so the word is aligned and inside the row).
    #[inline(always)]
    pub fn alloc_word(&self, head: usize, word: usize) -> &'static AtomicU64 {
        // SAFETY: 8 * word < pages_of_span * 256; the table is 8-byte aligned (page-aligned mapping).
        unsafe { &*(self.alloc.add(head * SLOTS_PER_PAGE + 8 * word) as *const AtomicU64) }
    }

    /// The mark bytes `8*word .. 8*word+8` of span `head` as one word.
    #[inline(always)]
    pub fn mark_word(&self, head: usize, word: usize) -> &'static AtomicU64 {
        // SAFETY: as for alloc_word.
        unsafe { &*(self.mark.add(head * SLOTS_PER_PAGE + 8 * word) as *const AtomicU64) }
    }

    /// Mark byte `slot` of the span whose first page is `head`.
    #[inline(always)]
    pub fn mark_byte(&self, head: usize, slot: usize) -> &'static AtomicU8 {
        // SAFETY: as for alloc_byte.
        unsafe { &*self.mark.add(head * SLOTS_PER_PAGE + slot) }
    }
}

/// Change the heap limit of a live heap (or set it for a heap not yet
/// started, like `init` would). The new limit must be at least
/// [`MIN_HEAP`](crate::MIN_HEAP) and at most the reservation; memory already
/// committed above a lowered limit stays committed until a sweep returns it,
/// and no new memory is committed while the heap is over the limit.
pub fn set_max_heap(max_heap: usize) -> Result<(), crate::HeapError> {
    if !is_initialized() {
        return match init(crate::HeapConfig {
            max_heap,
            ..crate::HeapConfig::default()
        }) {
            Err(crate::HeapError::AlreadyInitialized) => set_max_heap(max_heap),
            r => r,
        };
    }
    let l = layout();
    crate::HeapConfig {
        max_heap,
        reserve: l.hi - l.lo,
    }
    .validate()?;
    l.max_heap.store(max_heap, Ordering::Release);
    Ok(())
}
