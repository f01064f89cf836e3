//! `GcAllocator`: the oohgc heap as the program's global allocator.
//!
//! Every `Box`, `Vec`, `String`, `HashMap` of the program then lives in the
//! collected heap as a *manual* block: scanned conservatively at every
//! collection (so a `Gc` kept in a `Vec` keeps its target alive) and freed
//! only by `dealloc`. The first allocation of a thread registers it with the
//! collector.
//!
//! While the collector builds its dirty source, that thread's requests go to
//! the C library's `malloc` instead (see `runtime::with_system_allocator`);
//! `dealloc` and `realloc` recognise such blocks by their address, outside
//! the heap's reservation.
//!
//! With leak backtraces on (`OOHGC_LEAK_BACKTRACES=1` with
//! `OOHGC_FIND_LEAKS=1`), each heap block's allocation site is recorded and
//! dropped again when the block is freed (see `alloc_sites`); with them off
//! the cost is one relaxed load per `alloc`, `dealloc` and `realloc`.

use crate::{alloc_sites, runtime};
use oohgc_allocator::ObjectKind;
use std::alloc::{GlobalAlloc, Layout};

/// The oohgc heap as a global allocator:
///
/// ```ignore
/// #[global_allocator]
/// static GC: oohgc::GcAllocator = oohgc::GcAllocator;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct GcAllocator;

// SAFETY: alloc returns blocks of at least layout.size() bytes aligned to
// layout.align() (or null), which stay valid until dealloc; realloc keeps
// contents; the heap is thread-safe.
unsafe impl GlobalAlloc for GcAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match runtime::alloc_route() {
            // SAFETY: same contract as this call.
            runtime::AllocRoute::Heap => unsafe { self.alloc_in_heap(layout) },
            runtime::AllocRoute::System => system_alloc(layout),
            runtime::AllocRoute::HeapOutsideBlocking => {
                // SAFETY: same contract as this call.
                oohgc_barriers::outside_blocking_region(|| unsafe { self.alloc_in_heap(layout) })
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // The heap hands out zero-filled memory.
        // SAFETY: same contract as alloc.
        unsafe { self.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if !in_heap(ptr) {
            system_free(ptr);
            return;
        }
        if alloc_sites::tracking_frees() {
            // Before the heap gets the block back: another thread may reuse
            // the address at once and record its own site there.
            alloc_sites::forget_block(ptr);
        }
        // SAFETY: ptr came from alloc/realloc of this allocator.
        unsafe { oohgc_allocator::free(ptr) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_heap(ptr) {
            // A system block stays a system block.
            let new_layout = Layout::from_size_align(new_size, layout.align());
            let Ok(new_layout) = new_layout else {
                return std::ptr::null_mut();
            };
            let q = system_alloc(new_layout);
            if !q.is_null() {
                // SAFETY: both blocks are valid for the smaller size.
                unsafe { std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size)) };
                system_free(ptr);
            }
            return q;
        }
        runtime::register_current_thread();
        if runtime::in_blocking() {
            return oohgc_barriers::outside_blocking_region(|| {
                // SAFETY: same contract as this call.
                unsafe { self.realloc_in_heap(ptr, layout, new_size) }
            });
        }
        // SAFETY: same contract as this call.
        unsafe { self.realloc_in_heap(ptr, layout, new_size) }
    }
}

impl GcAllocator {
    /// `alloc` from the collected heap, as a `Manual` block.
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline(always)]
    unsafe fn alloc_in_heap(&self, layout: Layout) -> *mut u8 {
        let p = oohgc_allocator::alloc(layout.size(), layout.align(), ObjectKind::Manual);
        if alloc_sites::capturing() {
            alloc_sites::record_allocation(p);
        }
        p
    }

    /// `realloc` of a block of the collected heap.
    ///
    /// # Safety
    /// As `GlobalAlloc::realloc`, with `ptr` in the heap.
    unsafe fn realloc_in_heap(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !alloc_sites::tracking_frees() {
            // SAFETY: ptr came from this allocator with `layout`.
            return unsafe { oohgc_allocator::realloc(ptr, new_size, layout.align()) };
        }
        // The entry is taken off before the heap may free the old block (see
        // dealloc) and put back at wherever the block now is.
        let site = alloc_sites::forget_block(ptr);
        // SAFETY: ptr came from this allocator with `layout`.
        let q = unsafe { oohgc_allocator::realloc(ptr, new_size, layout.align()) };
        if q.is_null() {
            alloc_sites::set_site(ptr, site);
        } else if site != alloc_sites::NO_SITE {
            alloc_sites::set_site(q, site);
        } else if alloc_sites::capturing() {
            // Allocated before capture was on: its site is this realloc.
            alloc_sites::record_allocation(q);
        }
        q
    }
}

/// Whether `p` lies in the collected heap (else it is a `malloc` block).
#[inline]
fn in_heap(p: *mut u8) -> bool {
    let (lo, hi) = oohgc_allocator::heap_bounds();
    (p as usize).wrapping_sub(lo) < hi - lo
}

/// Blocks handed out by [`system_alloc`], so that `dealloc` can tell them
/// from foreign pointers (never from the global allocator: raw mmap).
/// Sorted by address: symbolizing a leak report's frames makes thousands of
/// such blocks, and a free must not scan them all.
static SYSTEM_BLOCKS: std::sync::Mutex<oohgc_dirty::raw_vec::RawVec<usize>> =
    std::sync::Mutex::new(oohgc_dirty::raw_vec::RawVec::new());

/// A block from the C library, for collector machinery (see the module docs).
fn system_alloc(layout: Layout) -> *mut u8 {
    let mut p: *mut libc::c_void = std::ptr::null_mut();
    let align = layout.align().max(std::mem::size_of::<usize>());
    // SAFETY: posix_memalign with a power-of-two alignment >= sizeof(void*).
    let r = unsafe { libc::posix_memalign(&mut p, align, layout.size().max(1)) };
    if r != 0 {
        return std::ptr::null_mut();
    }
    let mut blocks = SYSTEM_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    let at = blocks.partition_point(|&b| b < p as usize);
    blocks.push(p as usize);
    blocks.as_mut_slice()[at..].rotate_right(1);
    drop(blocks);
    p.cast()
}

/// Free a block of [`system_alloc`]; anything else outside the heap is a
/// foreign pointer (from another allocator, a stack, a static) or a block
/// freed twice: say so and abort instead of corrupting memory.
fn system_free(p: *mut u8) {
    let mut blocks = SYSTEM_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
    match blocks.binary_search(&(p as usize)) {
        Ok(i) => {
            blocks.as_mut_slice()[i..].rotate_left(1);
            blocks.pop();
            drop(blocks);
            // SAFETY: a live block from posix_memalign, freed once.
            unsafe { libc::free(p.cast()) };
        }
        Err(_) => {
            drop(blocks);
            crate::util::fatal(format_args!(
                "dealloc of {p:p}, which is not a block of this allocator (a foreign pointer, or a block freed twice)"
            ));
        }
    }
}

/// What the probe found: not probed yet, `GcAllocator` installed, or another
/// global allocator (`System`, jemalloc, mimalloc...).
const UNPROBED: u8 = 0;
const INSTALLED: u8 = 1;
const MISSING: u8 = 2;
static PROBE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNPROBED);

/// The refusal, in the words a user needs to fix it.
pub(crate) const MISSING_MESSAGE: &str = "oohgc: `GcAllocator` is not this program's global allocator, so \
`Box`/`Vec`/`String`/`HashMap` memory comes from another allocator that the collector never scans, and a `Gc` \
kept there would be freed while in use. Add to the binary crate (a library's declaration only counts if the \
crate is linked): `#[global_allocator] static GC: oohgc::GcAllocator = oohgc::GcAllocator;` \
(or, if every `Gc` lives only on stacks, in statics, inside `Gc` objects or in `oohgc::add_roots` ranges, \
set OOHGC_REQUIRE_GLOBAL_ALLOCATOR=0 / `Config::require_global_allocator(false)`)";

/// Whether the program's `#[global_allocator]` is `GcAllocator`: one probe
/// allocation through `std::alloc`, whose address tells which allocator
/// served it (ours hands out heap addresses; collector machinery built
/// under `with_system_allocator` is never probed). Cached after the first
/// answer; one relaxed load afterwards.
#[inline]
pub(crate) fn installed() -> bool {
    match PROBE.load(std::sync::atomic::Ordering::Relaxed) {
        INSTALLED => true,
        MISSING => false,
        _ => probe(),
    }
}

#[cold]
fn probe() -> bool {
    runtime::ensure_heap();
    if runtime::using_system_allocator() {
        // This thread's requests go to malloc on purpose: no verdict now.
        return true;
    }
    let layout = Layout::new::<usize>();
    // SAFETY: a non-zero-size layout; the block is freed right away.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    let ours = in_heap(p);
    // SAFETY: allocated just above with the same layout.
    unsafe { std::alloc::dealloc(p, layout) };
    PROBE.store(
        if ours { INSTALLED } else { MISSING },
        std::sync::atomic::Ordering::Relaxed,
    );
    ours
}

/// Refuse (panic with [`MISSING_MESSAGE`]) a `Gc` allocation in a program
/// without `GcAllocator`, unless the configuration allows it.
#[inline]
pub(crate) fn check_before_gc_allocation() {
    if !installed() && runtime::global_allocator_required() {
        refuse();
    }
}

#[cold]
#[inline(never)]
fn refuse() -> ! {
    panic!("{MISSING_MESSAGE}")
}
