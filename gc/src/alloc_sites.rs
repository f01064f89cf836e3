//! Allocation sites for leak reports (`OOHGC_LEAK_BACKTRACES=1`): the
//! return addresses of every `GcAllocator` block's allocation, kept until
//! the block is freed, so that a leak report can say where a leaked block
//! came from.
//!
//! Capture walks the stack with the platform unwinder
//! (`_Unwind_Backtrace` of libgcc_s, which the Rust standard library already
//! links on Linux) and keeps raw instruction addresses only; they are turned
//! into names and lines at report time, after the world has restarted (see
//! `symbolize`). Walking through the unwinder directly (rather than with the
//! `backtrace` crate) keeps the allocation path free of anything but that one
//! call: no allocation and no lock of ours. libgcc (GCC >= 12) finds each
//! frame's unwind table with glibc's lock-free `_dl_find_object`.
//!
//! Storage never comes from the global allocator (it *is* the global
//! allocator being recorded) and takes no lock, so a mutator stopped for a
//! collection in the middle of a capture holds nothing the collector needs,
//! and `fork` needs no handler:
//!
//! * **Sites** (`TRACES`): each distinct stack — up to the configured depth
//!   (`OOHGC_LEAK_BACKTRACE_DEPTH`, at most [`MAX_FRAMES`]) of return
//!   addresses — is stored once, in a NORESERVE mapping, under a `u32` id
//!   found through an open-addressing hash index; a new stack is published
//!   by a compare-and-swap of its id into an empty index slot. When
//!   [`MAX_SITES`] distinct stacks have been seen, further new stacks are
//!   recorded as "table full" (the report says so).
//! * **Blocks** (`SHADOW`): one `u32` site id per heap granule over the
//!   heap's whole reservation (NORESERVE; only pages shadowing used heap
//!   memory are ever touched), written at the block's base address on
//!   allocation and cleared on `dealloc` *before* the heap gets the block
//!   back (so a thread that reuses the address at once cannot have its entry
//!   cleared by us). A `realloc` that moves a block moves its entry.
//!
//! When capture is off, the allocation path pays one relaxed load of
//! [`STATE`]; once capture has been on, `dealloc` keeps clearing entries
//! even if it is turned off again (so no entry outlives its block).

use oohgc_allocator::GRANULE;
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Most return addresses kept per allocation (after the capture's own
/// frames); the configured depth (`Config::leak_backtrace_depth`) is at
/// most this.
pub(crate) const MAX_FRAMES: usize = crate::config::MAX_LEAK_BACKTRACE_DEPTH;
/// Distinct allocation stacks kept; later new ones are "table full".
pub(crate) const MAX_SITES: usize = 1 << 18;
/// Slots of the site hash index (a power of two, twice [`MAX_SITES`]).
const INDEX_SLOTS: usize = MAX_SITES * 2;

/// One allocation stack: return addresses, innermost first, zero-padded.
pub(crate) type Frames = [usize; MAX_FRAMES];

/// Site id of a block with no recorded site.
pub(crate) const NO_SITE: u32 = 0;
/// Site id of a block whose stack did not fit in the full site table.
pub(crate) const SITE_TABLE_FULL: u32 = u32::MAX;

/// Capture has never been on: nothing to record or clear.
const NEVER: u8 = 0;
/// Capture is on.
const CAPTURING: u8 = 1;
/// Capture was on and is off: clear entries on free, record none.
const CLEARING_ONLY: u8 = 2;

/// [`NEVER`], [`CAPTURING`] or [`CLEARING_ONLY`].
static STATE: AtomicU8 = AtomicU8::new(NEVER);
/// Heap reservation start (the shadow's origin).
static HEAP_LO: AtomicUsize = AtomicUsize::new(0);
/// Granules covered by the shadow.
static SHADOW_LEN: AtomicUsize = AtomicUsize::new(0);
/// One site id per heap granule.
static SHADOW: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
/// `MAX_SITES` stacks; id 0 is never used.
static TRACES: AtomicPtr<Frames> = AtomicPtr::new(std::ptr::null_mut());
/// Hash index of [`TRACES`]: site ids, 0 = empty slot.
static INDEX: AtomicPtr<AtomicU32> = AtomicPtr::new(std::ptr::null_mut());
/// Frames walked per capture (the configured depth).
static DEPTH: AtomicUsize = AtomicUsize::new(crate::config::DEFAULT_LEAK_BACKTRACE_DEPTH);
/// Next site id to hand out.
static NEXT_SITE: AtomicU32 = AtomicU32::new(1);

thread_local! {
    /// Set while this thread captures a stack: an allocation made by the
    /// unwinder itself is not captured (no recursion).
    static IN_CAPTURE: Cell<bool> = const { Cell::new(false) };
}

/// Turn capture on or off and set the frames walked per capture, `depth`
/// (1..=[`MAX_FRAMES`], checked by the configuration), from the
/// configuration; the heap must be initialised. Turning it on the first time
/// maps the tables; if the kernel refuses the address space, capture stays
/// off and the reason is printed.
pub(crate) fn configure(on: bool, depth: usize) {
    DEPTH.store(depth.clamp(1, MAX_FRAMES), Ordering::Relaxed);
    if !on {
        // A compare-and-swap, not a store: never go back to NEVER.
        let _ = STATE.compare_exchange(
            CAPTURING,
            CLEARING_ONLY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        return;
    }
    if STATE.load(Ordering::Acquire) == CAPTURING {
        return;
    }
    if SHADOW.load(Ordering::Acquire).is_null() {
        if let Err(what) = map_tables() {
            crate::util::eprint_line(format_args!(
                "oohgc: cannot record allocation sites for leak reports: {what}; \
                 leak reports will show no backtraces"
            ));
            return;
        }
    }
    STATE.store(CAPTURING, Ordering::Release);
}

/// Whether allocations are being captured now.
pub(crate) fn capturing() -> bool {
    STATE.load(Ordering::Relaxed) == CAPTURING
}

/// Map the shadow, the site table and its index (once; callers are
/// serialised by the configuration lock or by heap start-up).
fn map_tables() -> Result<(), &'static str> {
    let (lo, hi) = oohgc_allocator::heap_bounds();
    if hi <= lo {
        return Err("the heap is not initialised");
    }
    let granules = (hi - lo) / GRANULE;
    let shadow = crate::raw_memory::map_noreserve(granules * std::mem::size_of::<u32>())
        .ok_or("mmap of the block table failed")?;
    let traces = crate::raw_memory::map_noreserve(MAX_SITES * std::mem::size_of::<Frames>())
        .ok_or("mmap of the site table failed")?;
    let index = crate::raw_memory::map_noreserve(INDEX_SLOTS * std::mem::size_of::<u32>())
        .ok_or("mmap of the site index failed")?;
    HEAP_LO.store(lo, Ordering::Release);
    SHADOW_LEN.store(granules, Ordering::Release);
    TRACES.store(traces.cast(), Ordering::Release);
    INDEX.store(index.cast(), Ordering::Release);
    SHADOW.store(shadow.cast(), Ordering::Release);
    Ok(())
}

/// The shadow slot of heap block `base`, if the tables exist and cover it.
fn shadow_slot(base: usize) -> Option<&'static AtomicU32> {
    let shadow = SHADOW.load(Ordering::Acquire);
    if shadow.is_null() {
        return None;
    }
    let i = base.wrapping_sub(HEAP_LO.load(Ordering::Relaxed)) / GRANULE;
    if i >= SHADOW_LEN.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: i is inside the shadow mapping, which is never unmapped.
    Some(unsafe { &*shadow.add(i) })
}

/// Record the allocation site of the new heap block `base` (allocation
/// path; call only when [`capturing`]).
#[inline(never)]
pub(crate) fn record_allocation(base: *mut u8) {
    if base.is_null() || IN_CAPTURE.with(|c| c.replace(true)) {
        return;
    }
    let mut frames = [0usize; MAX_FRAMES];
    capture(&mut frames);
    let site = intern(&frames);
    if let Some(slot) = shadow_slot(base as usize) {
        slot.store(site, Ordering::Release);
    }
    IN_CAPTURE.with(|c| c.set(false));
}

/// Clear the entry of heap block `base`, which is about to be freed
/// (call whenever capture has ever been on: see [`tracking_frees`]).
#[inline]
pub(crate) fn forget_block(base: *mut u8) -> u32 {
    match shadow_slot(base as usize) {
        Some(slot) => slot.swap(NO_SITE, Ordering::AcqRel),
        None => NO_SITE,
    }
}

/// Give block `base` the site id `site` (a `realloc` that moved it, or
/// one that failed and left it in place).
pub(crate) fn set_site(base: *mut u8, site: u32) {
    if let Some(slot) = shadow_slot(base as usize) {
        slot.store(site, Ordering::Release);
    }
}

/// Whether frees must clear entries (capture is or was on): the one load
/// `dealloc` pays.
#[inline]
pub(crate) fn tracking_frees() -> bool {
    STATE.load(Ordering::Relaxed) != NEVER
}

/// The site id recorded for block `base` ([`NO_SITE`] if none).
pub(crate) fn site_of(base: usize) -> u32 {
    shadow_slot(base).map_or(NO_SITE, |s| s.load(Ordering::Acquire))
}

/// The stack of site `site` (a real id from [`site_of`]).
pub(crate) fn frames_of(site: u32) -> Option<Frames> {
    let traces = TRACES.load(Ordering::Acquire);
    if site == NO_SITE || site == SITE_TABLE_FULL || traces.is_null() {
        return None;
    }
    if site as usize >= MAX_SITES {
        return None;
    }
    // SAFETY: an id read with Acquire from a slot was published (Release)
    // after its stack was written, and a stack is never written again.
    Some(unsafe { *traces.add(site as usize) })
}

/// (blocks with a recorded site, distinct sites stored): for tests that
/// check entries go away with their blocks. Scans the shadow of the
/// committed heap.
pub fn recorded_counts() -> (usize, usize) {
    let mut blocks = 0usize;
    oohgc_allocator::for_each_chunk(&mut |start, len| {
        let mut a = start;
        while a < start + len {
            if let Some(slot) = shadow_slot(a) {
                if slot.load(Ordering::Relaxed) != NO_SITE {
                    blocks += 1;
                }
            }
            a += GRANULE;
        }
    });
    let sites = (NEXT_SITE.load(Ordering::Relaxed) as usize - 1).min(MAX_SITES - 1);
    (blocks, sites)
}

/// The unwinder's per-frame context (opaque).
#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
}

/// `_Unwind_Reason_Code` values used here.
const URC_NO_REASON: libc::c_int = 0;
const URC_END_OF_STACK: libc::c_int = 5;

type TraceFn = extern "C" fn(*mut UnwindContext, *mut libc::c_void) -> libc::c_int;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut libc::c_void) -> libc::c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// Where [`capture`] writes.
struct CaptureState<'a> {
    frames: &'a mut Frames,
    len: usize,
    depth: usize,
    skip: usize,
}

extern "C" fn capture_frame(ctx: *mut UnwindContext, arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: arg is the &mut CaptureState passed to _Unwind_Backtrace by
    // `capture`, alive for the whole walk.
    let st = unsafe { &mut *arg.cast::<CaptureState<'_>>() };
    if st.skip > 0 {
        st.skip -= 1;
        return URC_NO_REASON;
    }
    // SAFETY: ctx is the live context the unwinder passed us.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 {
        return URC_END_OF_STACK;
    }
    st.frames[st.len] = ip;
    st.len += 1;
    if st.len == st.depth {
        URC_END_OF_STACK
    } else {
        URC_NO_REASON
    }
}

/// The return addresses of the stack, innermost first, from the caller of
/// [`record_allocation`] (this function's frame and that one are skipped;
/// both are `inline(never)`, so they are always exactly two frames).
#[inline(never)]
fn capture(frames: &mut Frames) {
    let mut st = CaptureState {
        frames,
        len: 0,
        depth: DEPTH.load(Ordering::Relaxed),
        skip: 2,
    };
    // SAFETY: capture_frame matches the unwinder's callback ABI and only
    // touches `st`, which outlives the call.
    unsafe { _Unwind_Backtrace(capture_frame, (&mut st as *mut CaptureState<'_>).cast()) };
}

/// The id of stack `frames`, storing it if it is new.
fn intern(frames: &Frames) -> u32 {
    let index = INDEX.load(Ordering::Acquire);
    let traces = TRACES.load(Ordering::Acquire);
    if index.is_null() || traces.is_null() {
        return NO_SITE;
    }
    let mut claimed = NO_SITE;
    let mut slot = hash(frames) & (INDEX_SLOTS - 1);
    for _ in 0..INDEX_SLOTS {
        // SAFETY: slot < INDEX_SLOTS, inside the index mapping.
        let cell = unsafe { &*index.add(slot) };
        let mut id = cell.load(Ordering::Acquire);
        if id == NO_SITE {
            if claimed == NO_SITE {
                claimed = NEXT_SITE.fetch_add(1, Ordering::Relaxed);
                if claimed as usize >= MAX_SITES {
                    NEXT_SITE.store(MAX_SITES as u32, Ordering::Relaxed);
                    return SITE_TABLE_FULL;
                }
                // SAFETY: a fresh id is ours alone until published below.
                unsafe { *traces.add(claimed as usize) = *frames };
            }
            match cell.compare_exchange(NO_SITE, claimed, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return claimed,
                Err(other) => id = other,
            }
        }
        // SAFETY: a published id's stack was written before it was published.
        if unsafe { &*traces.add(id as usize) } == frames {
            return id;
        }
        slot = (slot + 1) & (INDEX_SLOTS - 1);
    }
    SITE_TABLE_FULL
}

/// A 64-bit mix of the addresses (FxHash-style), reduced to an index.
fn hash(frames: &Frames) -> usize {
    let mut h: u64 = 0;
    for &f in frames.iter().take_while(|&&f| f != 0) {
        h = (h.rotate_left(5) ^ f as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    (h ^ (h >> 29)) as usize
}
