//! Conservative marking: the mark stack and the word-by-word scan.
//!
//! Every aligned word of a scanned range is a candidate pointer. A word that
//! falls inside the heap reservation and inside an allocated object (interior
//! pointers included — the object map answers in O(1)) marks that object and,
//! unless it is pointer-free, pushes it for scanning.
//!
//! The mark stack lives in its own `mmap` reservation (never in the heap, never
//! scanned). If it fills, entries are dropped and an overflow flag is set;
//! [`Marker::drain`] then recovers as bdwgc does, by re-scanning every marked
//! object until no overflow happens (correct, only slower).
//!
//! Words are read with relaxed atomic loads: during concurrent marking other
//! threads write the memory being scanned, and a plain read would be a data
//! race in Rust's memory model.

use crate::mark_cache::MarkCache;
use crate::raw_memory;
use oohgc_allocator::{self as heap, MarkAttempt, ObjectInfo, ObjectKind};
use oohgc_dirty::raw_vec::RawVec;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One pending object: its base and size.
#[derive(Clone, Copy)]
pub(crate) struct Entry {
    base: usize,
    size: usize,
}

/// Entries in the mark stack's reservation (256 MiB of address space,
/// committed only as it is touched).
const STACK_CAPACITY: usize = (256 << 20) / std::mem::size_of::<Entry>();

/// Objects in flight between the mark stack and the scan (see [`Marker::drain`]).
const PREFETCH_DISTANCE: usize = 16;

/// Ask the CPU to start loading the cache line at `addr`.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// The mark stack: a fixed reservation with an overflow flag.
pub(crate) struct MarkStack {
    entries: *mut Entry,
    len: usize,
    capacity: usize,
    overflowed: bool,
}

// SAFETY: the stack owns its mapping; it is only used by one marking thread
// at a time (the collector holds the cycle lock).
unsafe impl Send for MarkStack {}

impl MarkStack {
    /// Reserve the stack's address space.
    pub(crate) fn new() -> MarkStack {
        Self::with_capacity(STACK_CAPACITY)
    }

    /// A stack of `capacity` entries (small ones exercise overflow recovery).
    pub(crate) fn with_capacity(capacity: usize) -> MarkStack {
        let bytes = capacity * std::mem::size_of::<Entry>();
        let Some(p) = raw_memory::map_noreserve(bytes) else {
            crate::util::fatal(format_args!(
                "cannot reserve {bytes} bytes for the mark stack"
            ));
        };
        MarkStack {
            entries: p.cast(),
            len: 0,
            capacity,
            overflowed: false,
        }
    }

    #[inline]
    fn push(&mut self, e: Entry) {
        if self.len == self.capacity {
            self.overflowed = true;
            return;
        }
        // SAFETY: len < capacity, inside our reservation.
        unsafe { self.entries.add(self.len).write(e) };
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the slot below the old len was written by push.
        Some(unsafe { self.entries.add(self.len).read() })
    }

    /// Entries on the stack.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Move the `n` oldest entries (the bottom of the stack: in a depth-first
    /// mark, the roots of the largest unexplored parts) to `out`.
    pub(crate) fn take_bottom(&mut self, n: usize, out: &mut RawVec<Entry>) {
        let n = n.min(self.len);
        for i in 0..n {
            // SAFETY: i < n <= len: written entries.
            out.push(unsafe { self.entries.add(i).read() });
        }
        // SAFETY: both ranges lie in the written part of the reservation;
        // `copy` handles the overlap.
        unsafe { std::ptr::copy(self.entries.add(n), self.entries, self.len - n) };
        self.len -= n;
    }

    /// Push entries taken from another marker.
    pub(crate) fn push_all(&mut self, entries: &[Entry]) {
        for &e in entries {
            self.push(e);
        }
    }

    /// Give the touched part of the stack back to the OS after a cycle.
    pub(crate) fn release_memory(&mut self) {
        debug_assert_eq!(self.len, 0);
        let bytes = self.capacity * std::mem::size_of::<Entry>();
        // SAFETY: advising our own, empty mapping.
        unsafe { libc::madvise(self.entries.cast(), bytes, libc::MADV_DONTNEED) };
    }
}

impl Drop for MarkStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, dropped with the stack.
        unsafe {
            raw_memory::unmap(
                self.entries.cast(),
                self.capacity * std::mem::size_of::<Entry>(),
            )
        };
    }
}

/// What one marking pass did.
#[derive(Clone, Copy, Debug, Default)]
pub struct MarkCounts {
    /// Objects newly marked.
    pub objects: u64,
    /// Bytes in newly marked objects.
    pub bytes: u64,
    /// Words examined.
    pub words: u64,
    /// Times the mark stack overflowed and was recovered.
    pub overflows: u64,
}

/// Where a marking pass records what it reached.
pub(crate) trait MarkSet {
    /// Record `base` as reached; true if it was not reached before.
    fn try_mark(&mut self, base: usize) -> bool;
    /// Whether `base` was reached.
    fn is_marked(&self, base: usize) -> bool;
    /// If `word` points into an allocated object not reached yet, record it
    /// as reached and return it.
    #[inline]
    fn mark_target(&mut self, word: usize) -> Option<ObjectInfo> {
        let obj = heap::find_object(word)?;
        self.try_mark(obj.base).then_some(obj)
    }
    /// A thread root points into a slot that is not (yet) an allocated
    /// object; see [`Marker::scan_thread_range`]. Default: ignore it.
    fn mark_unpublished_slot(&mut self, addr: usize) {
        let _ = addr;
    }
}

/// The heap's own side-table mark bits, with the marked-base cache in front
/// of them (see `mark_cache`).
#[derive(Clone, Copy)]
pub(crate) struct HeapMarks<'c> {
    cache: &'c MarkCache,
}

impl<'c> HeapMarks<'c> {
    /// The heap's marks for a new marking pass: empties `cache` (creating
    /// it on first use).
    pub(crate) fn new(cache: &'c mut Option<MarkCache>) -> HeapMarks<'c> {
        let (lo, hi) = heap::heap_bounds();
        // Made on first use, and again if the heap started after that
        // (the cache must cover every word the marker can pass it).
        if !cache.as_ref().is_some_and(|c| c.covers(lo, hi)) {
            *cache = Some(MarkCache::new(lo, hi).unwrap_or_else(|| {
                crate::util::fatal(format_args!(
                    "cannot reserve address space for the marked-base cache of a {} MiB heap reservation",
                    (hi - lo) >> 20
                ))
            }));
        }
        let cache = cache.as_mut().expect("made above");
        cache.clear(heap::heap_extent());
        HeapMarks { cache }
    }

    /// The cache, for a marker on another thread (`parallel_mark`).
    pub(crate) fn cache_ptr(&self) -> *const MarkCache {
        self.cache
    }

    /// The heap's marks over the cache `cache_ptr` returned.
    ///
    /// # Safety
    /// The cache must stay alive, and not be cleared, while the result is
    /// used.
    pub(crate) unsafe fn from_cache_ptr(cache: *const MarkCache) -> HeapMarks<'static> {
        HeapMarks {
            // SAFETY: per the contract, the cache outlives the use.
            cache: unsafe { &*cache },
        }
    }
}

impl MarkSet for HeapMarks<'_> {
    #[inline]
    fn try_mark(&mut self, base: usize) -> bool {
        heap::try_mark(base)
    }
    #[inline]
    fn is_marked(&self, base: usize) -> bool {
        heap::is_marked(base)
    }
    // Always inlined: returned out of line, the result goes through memory,
    // and reading it back stalled on store forwarding (a third of `drain`).
    #[inline(always)]
    fn mark_target(&mut self, word: usize) -> Option<ObjectInfo> {
        // SAFETY (the three calls): the marking loop passes only words
        // inside heap_bounds(), which the cache covers (and which is
        // non-empty only once the heap is initialized); bases found from
        // them lie inside it too.
        if unsafe { self.cache.contains_in_heap(word) } {
            return None;
        }
        match unsafe { heap::mark_object_at_in_heap(word) } {
            MarkAttempt::NotAnObject => None,
            MarkAttempt::AlreadyMarked(base) => {
                unsafe { self.cache.insert_in_heap(base) };
                None
            }
            MarkAttempt::NewlyMarked(obj) => {
                unsafe { self.cache.insert_in_heap(obj.base) };
                Some(obj)
            }
        }
    }
    fn mark_unpublished_slot(&mut self, addr: usize) {
        heap::mark_slot(addr);
    }
}

/// What [`Marker::for_each_heap_word`] does with a word that points into
/// the heap reservation.
trait WordAction {
    fn visit<M: MarkSet>(m: &mut Marker<'_, M>, word: usize);
}

/// Heap objects and data segments: mark the target, queue it if new.
struct MarkTarget;

impl WordAction for MarkTarget {
    #[inline(always)]
    fn visit<M: MarkSet>(m: &mut Marker<'_, M>, word: usize) {
        if let Some(obj) = m.marks.mark_target(word) {
            m.queue_newly_marked(obj);
        }
    }
}

/// A stopped thread's roots: as [`MarkTarget`], and a word pointing into a
/// slot not yet published as an object marks the slot.
struct MarkThreadRoot;

impl WordAction for MarkThreadRoot {
    #[inline(always)]
    fn visit<M: MarkSet>(m: &mut Marker<'_, M>, word: usize) {
        match heap::find_object(word) {
            Some(obj) => m.mark_object(obj),
            None => m.marks.mark_unpublished_slot(word),
        }
    }
}

/// A marking pass: a mark stack, a mark set, and counters.
pub(crate) struct Marker<'a, M: MarkSet> {
    stack: &'a mut MarkStack,
    marks: M,
    lo: usize,
    hi: usize,
    /// Set for a parallel drain: hand work to an idle marker.
    sharing: bool,
    /// What this pass did.
    pub counts: MarkCounts,
}

impl<'a, M: MarkSet> Marker<'a, M> {
    /// A marker recording into `marks`.
    pub(crate) fn new(stack: &'a mut MarkStack, marks: M) -> Marker<'a, M> {
        let (lo, hi) = heap::heap_bounds();
        Marker {
            stack,
            marks,
            lo,
            hi,
            sharing: false,
            counts: MarkCounts::default(),
        }
    }

    /// Turn work sharing (`parallel_mark`) on or off for [`Marker::drain`].
    pub(crate) fn set_sharing(&mut self, on: bool) {
        self.sharing = on;
    }

    /// The mark stack (for `parallel_mark`'s hand-offs).
    pub(crate) fn stack_mut(&mut self) -> &mut MarkStack {
        self.stack
    }

    /// The mark set (for the verifier's comparison).
    pub(crate) fn marks(&self) -> &M {
        &self.marks
    }

    /// Mark `obj` and queue it for scanning if it was unmarked.
    #[inline]
    pub(crate) fn mark_object(&mut self, obj: ObjectInfo) {
        if self.marks.try_mark(obj.base) {
            self.queue_newly_marked(obj);
        }
    }

    /// Count an object this pass just marked and queue it for scanning
    /// unless it is pointer-free.
    #[inline]
    fn queue_newly_marked(&mut self, obj: ObjectInfo) {
        self.counts.objects += 1;
        self.counts.bytes += obj.size as u64;
        if obj.kind != ObjectKind::ManagedNoScan {
            // Start loading the object now, not only when it enters the
            // drain's prefetch ring: in a depth-first mark it is popped
            // almost at once, and the ring alone hid too little of a miss.
            prefetch(obj.base);
            self.stack.push(Entry {
                base: obj.base,
                size: obj.size,
            });
        }
    }

    /// Scan every aligned word in `[lo, hi)`.
    pub(crate) fn scan_range(&mut self, lo: usize, hi: usize) {
        self.for_each_heap_word::<MarkTarget>(lo, hi);
    }

    /// Scan a stopped thread's stack, registers or TLS. Besides what
    /// [`Marker::scan_range`] does, a word pointing into a slot that is not
    /// an allocated object marks that slot: the thread may be stopped inside
    /// an allocation, holding a slot it has not published yet; when it
    /// resumes it publishes the object (unmarked, if it read the
    /// allocate-black flag before the collector set it), and a sweep running
    /// then must not free it.
    pub(crate) fn scan_thread_range(&mut self, lo: usize, hi: usize) {
        self.for_each_heap_word::<MarkThreadRoot>(lo, hi);
    }

    /// Apply `A` to every aligned word of `[lo, hi)` that points inside the
    /// heap reservation, counting the words examined. (A trait, not a
    /// closure: the compiler would not inline a closure this large into
    /// the loop, and the call per word cost a tenth of marking.)
    #[inline(always)]
    fn for_each_heap_word<A: WordAction>(&mut self, lo: usize, hi: usize) {
        let mut p = (lo + 7) & !7;
        let end = hi & !7;
        self.counts.words += (end.saturating_sub(p) / 8) as u64;
        let (heap_lo, heap_len) = (self.lo, self.hi.wrapping_sub(self.lo));
        while p < end {
            // SAFETY: the callers pass readable memory (a live object, a
            // stopped thread's stack or TLS, a data segment); an aligned
            // atomic load of a word cannot tear and does not race in the
            // memory model.
            let word = unsafe { (*(p as *const AtomicUsize)).load(Ordering::Relaxed) };
            p += 8;
            if word.wrapping_sub(heap_lo) < heap_len {
                A::visit(self, word);
            }
        }
    }

    /// Scan queued objects until none is left, recovering from overflow.
    ///
    /// Objects go through a small FIFO between the mark stack and the scan:
    /// each is prefetched as it enters and scanned [`PREFETCH_DISTANCE`]
    /// objects later, so the cache miss on its first line overlaps other
    /// work (Boehm's prefetch-on-grey; pointer chasing otherwise stalls on
    /// every object).
    pub(crate) fn drain(&mut self) {
        let mut ring = [Entry { base: 0, size: 0 }; PREFETCH_DISTANCE];
        let (mut head, mut len) = (0usize, 0usize);
        loop {
            while len < PREFETCH_DISTANCE {
                let Some(e) = self.stack.pop() else { break };
                prefetch(e.base);
                ring[(head + len) % PREFETCH_DISTANCE] = e;
                len += 1;
            }
            if len == 0 {
                if !self.stack.overflowed {
                    return;
                }
                self.stack.overflowed = false;
                self.counts.overflows += 1;
                self.rescan_all_marked();
                continue;
            }
            let e = ring[head];
            head = (head + 1) % PREFETCH_DISTANCE;
            len -= 1;
            self.scan_range(e.base, e.base + e.size);
            if self.sharing {
                crate::parallel_mark::offer_work(self.stack);
            }
        }
    }

    /// Overflow recovery: scan every marked scannable object again; what it
    /// marks is drained right away so the stack stays short. A drop during
    /// this pass sets the flag again and `drain` repeats.
    fn rescan_all_marked(&mut self) {
        heap::for_each_object(None, &mut |o| {
            if o.kind == ObjectKind::ManagedNoScan || !self.marks.is_marked(o.base) {
                return;
            }
            self.scan_range(o.base, o.base + o.size);
            while let Some(e) = self.stack.pop() {
                self.scan_range(e.base, e.base + e.size);
            }
        });
    }
}
