//! The `card` source: a software card table and an explicit write barrier.
//!
//! One byte ("card") per page of the whole user address space, in one
//! global table reserved lazily with `MAP_NORESERVE` (32 GiB of address
//! space for 47-bit user addresses; only the table pages covering tracked
//! memory are ever touched). The mutator calls [`write_barrier`] after each
//! pointer store; it is a load, a shift, a compare and a byte store. A
//! harvest reports the tracked pages whose card is set and clears them.
//!
//! **When it is sound.** Only if *every* store of a pointer into tracked
//! memory is followed by `write_barrier(slot_address)`. Writes the barrier
//! does not see are NOT reported — false negatives: writes by the kernel
//! (`read(2)` into the heap), `memcpy`/`ptr::copy` of blocks containing
//! pointers, `ptr::write` of whole structs, and any code that does not
//! know about the barrier (C libraries, std collections moving their
//! contents). So `card` is only a correct dirty source for programs that
//! route every pointer store through the barrier; that is why
//! [`crate::open_best`] never picks it on its own.
//!
//! The table is shared by all `card` sources of the process: two sources
//! must not track overlapping memory (each would clear the other's cards).
//!
//! Owns: the process-wide card table, `write_barrier` and `CardSource`.
//! Must not touch: page protection or any kernel tracking; the barrier must
//! stay a few instructions with no call.

use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::counters::{add_elapsed, AtomicCounters};
use crate::ranges::TrackedRanges;
use crate::{Counters, DirtyError, DirtySource, PageRange};

const NAME: &str = "card";

/// log2 of the card size: one card per 4 KiB page.
pub const CARD_SHIFT: u32 = 12;
/// Bits of user-space virtual address covered (x86-64 4-level paging).
const ADDRESS_BITS: u32 = 47;
/// Cards in the global table.
pub const CARD_COUNT: usize = 1 << (ADDRESS_BITS - CARD_SHIFT);

/// The global card table; null until the first `card` source is opened.
static CARD_TABLE: AtomicPtr<AtomicU8> = AtomicPtr::new(std::ptr::null_mut());
static RESERVE: Mutex<()> = Mutex::new(());

/// Mark the card of `slot_addr`. Call it after every store of a pointer
/// into tracked memory, with the address that was stored to. Does nothing
/// before a `card` source exists or for addresses above the table.
#[inline]
pub fn write_barrier(slot_addr: usize) {
    let table = CARD_TABLE.load(Ordering::Acquire);
    let card = slot_addr >> CARD_SHIFT;
    if !table.is_null() && card < CARD_COUNT {
        // SAFETY: card < CARD_COUNT, inside the table mapping, which is
        // never unmapped once published.
        unsafe { (*table.add(card)).store(1, Ordering::Release) };
    }
}

/// Reserve the table (once per process).
fn table() -> Result<*const AtomicU8, DirtyError> {
    let _g = RESERVE.lock().unwrap_or_else(|p| p.into_inner());
    let existing = CARD_TABLE.load(Ordering::Acquire);
    if !existing.is_null() {
        return Ok(existing);
    }
    // SAFETY: reserving address space for the table; NORESERVE so that
    // untouched table pages cost nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CARD_COUNT,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(DirtyError::Unavailable {
            source: NAME,
            reason: format!(
                "cannot reserve {} GiB of address space for the card table: {}",
                CARD_COUNT >> 30,
                std::io::Error::last_os_error()
            ),
        });
    }
    CARD_TABLE.store(p.cast(), Ordering::Release);
    Ok(p.cast())
}

/// The `card` [`DirtySource`].
pub struct CardSource {
    table: *const AtomicU8,
    ranges: Mutex<TrackedRanges<()>>,
    counters: AtomicCounters,
}

// SAFETY: `table` points at the process-wide table, accessed only atomically.
unsafe impl Send for CardSource {}
// SAFETY: as above.
unsafe impl Sync for CardSource {}

impl CardSource {
    /// Reserve the global table if needed and open a source.
    pub fn open() -> Result<CardSource, DirtyError> {
        Ok(CardSource {
            table: table()?,
            ranges: Mutex::new(TrackedRanges::new()),
            counters: AtomicCounters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TrackedRanges<()>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn card(&self, index: usize) -> &AtomicU8 {
        // SAFETY: callers pass indices of tracked pages, all < CARD_COUNT.
        unsafe { &*self.table.add(index) }
    }

    fn set_cards(&self, range: PageRange, value: u8) {
        for c in range.start >> CARD_SHIFT..range.end() >> CARD_SHIFT {
            self.card(c).store(value, Ordering::Release);
        }
    }
}

impl DirtySource for CardSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        if range.end() > CARD_COUNT << CARD_SHIFT {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "lies above the 47-bit user address space the card table covers",
            });
        }
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        // Dirty until the next arm or harvest.
        self.set_cards(range, 1);
        ranges.insert(range, ());
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        let i = ranges.position(range)?;
        ranges.remove_at(i);
        self.set_cards(range, 0);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        for (r, _) in ranges.iter() {
            self.set_cards(*r, 0);
        }
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        let mut pages = 0u64;
        for (r, _) in ranges.iter() {
            let mut run: Option<(usize, usize)> = None;
            for c in r.start >> CARD_SHIFT..r.end() >> CARD_SHIFT {
                let card = self.card(c);
                if card.load(Ordering::Relaxed) == 0 || card.swap(0, Ordering::AcqRel) == 0 {
                    continue;
                }
                pages += 1;
                run = match run {
                    Some((s, end)) if end == c => Some((s, c + 1)),
                    Some((s, end)) => {
                        sink(card_run(s, end));
                        Some((c, c + 1))
                    }
                    None => Some((c, c + 1)),
                };
            }
            if let Some((s, end)) = run {
                sink(card_run(s, end));
            }
        }
        drop(ranges);
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        // The barrier costs the same armed or not; the next arm clears.
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        f("tracked_pages", self.lock().total_pages());
        f("card_size_bytes", 1 << CARD_SHIFT);
    }
}

fn card_run(first: usize, end: usize) -> PageRange {
    PageRange {
        start: first << CARD_SHIFT,
        len: (end - first) << CARD_SHIFT,
    }
}
