//! The dirty-source contract: what every page-tracking backend promises.
//!
//! A [`DirtySource`] watches page-aligned ranges of the process's address
//! space and answers "which pages were written since I last asked?".
//!
//! * [`DirtySource::track`] / [`DirtySource::untrack`] add and remove ranges.
//! * [`DirtySource::arm`] starts an epoch: from now on every tracked page is
//!   clean until written.
//! * [`DirtySource::harvest`] reports every page written since the last
//!   `arm` or `harvest` (through a callback, so the caller picks the
//!   storage) and re-arms exactly those pages.
//! * [`DirtySource::disarm`] stops watching writes (between collection
//!   cycles) so that the program runs at full speed; the next `arm` starts
//!   a fresh epoch.
//!
//! **No false negatives, ever**: a page written (by the program, by another
//! thread, or by the kernel on the process's behalf, e.g. `read(2)` into a
//! tracked buffer) after the start of an epoch is reported by the first
//! harvest that begins after the write completed. False positives are
//! allowed and are counted where the source can know them.
//!
//! **No allocation through the global allocator** in `track`, `untrack`,
//! `arm`, `harvest`, `disarm`, signal handlers or handler threads: the
//! garbage collector calls these with its heap locked and the world stopped,
//! and its heap *is* the global allocator. Sources keep their own memory in
//! raw mmap ([`crate::raw_vec::RawVec`]). Construction (`open`) may allocate.
//!
//! Owns: the `DirtySource` trait, `PageRange`, `PAGE_SIZE`, `Counters` and
//! `DirtyError`: the types every source and every caller share. Must not
//! touch: any mechanism or system call; it defines the promise, the sources
//! keep it.

use std::fmt;

/// Size of the pages every source works in (x86-64 base pages).
pub const PAGE_SIZE: usize = 4096;

/// A page-aligned range of addresses: `start` inclusive, `start + len` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageRange {
    /// First byte; a multiple of [`PAGE_SIZE`].
    pub start: usize,
    /// Length in bytes; a multiple of [`PAGE_SIZE`].
    pub len: usize,
}

impl PageRange {
    /// A range, checked for page alignment.
    pub fn new(start: usize, len: usize) -> Result<PageRange, DirtyError> {
        if start & (PAGE_SIZE - 1) != 0 || len & (PAGE_SIZE - 1) != 0 || len == 0 {
            return Err(DirtyError::Misaligned { start, len });
        }
        Ok(PageRange { start, len })
    }
    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.start + self.len
    }
    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.len / PAGE_SIZE
    }
    /// Whether `addr` lies in the range.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.start && addr < self.end()
    }
}

/// Counters every source keeps. Fields a source cannot observe stay zero;
/// source-specific events go through [`DirtySource::for_each_counter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Write traps taken (first write to a clean page that the source saw
    /// one at a time: faults, signals, PML entries).
    pub write_traps: u64,
    /// Calls to `harvest`.
    pub harvests: u64,
    /// Pages reported dirty, summed over harvests.
    pub pages_reported: u64,
    /// Pages reported dirty that the source knows were not written
    /// (e.g. `none` reports everything). Zero where unknowable.
    pub false_positives: u64,
    /// Wall time spent inside `harvest`, nanoseconds.
    pub harvest_ns: u64,
    /// Wall time spent inside `arm`, nanoseconds.
    pub arm_ns: u64,
}

/// Why an operation failed or a source cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirtyError {
    /// The name given to [`crate::open`] is not a source.
    UnknownSource {
        /// What was asked for.
        name: String,
    },
    /// The source exists but cannot run on this kernel / process.
    Unavailable {
        /// The source's name.
        source: &'static str,
        /// Why, in words a user can act on.
        reason: String,
    },
    /// A range that is not page aligned or is empty.
    Misaligned {
        /// The start given.
        start: usize,
        /// The length given.
        len: usize,
    },
    /// `untrack` of a range that was never tracked, or overlapping `track`.
    BadRange {
        /// The start given.
        start: usize,
        /// The length given.
        len: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// A system call failed.
    Os {
        /// Which operation.
        op: &'static str,
        /// `errno`.
        errno: i32,
    },
    /// Fixed-capacity internal storage is exhausted.
    Capacity {
        /// What ran out.
        what: &'static str,
    },
}

impl fmt::Display for DirtyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirtyError::UnknownSource { name } => write!(
                f,
                "unknown dirty source {name:?}; the sources are: {}",
                crate::SOURCE_NAMES.join(", ")
            ),
            DirtyError::Unavailable { source, reason } => {
                write!(f, "dirty source `{source}` is unavailable: {reason}")
            }
            DirtyError::Misaligned { start, len } => write!(
                f,
                "range {start:#x}+{len:#x} is not a non-empty range of whole {PAGE_SIZE}-byte pages"
            ),
            DirtyError::BadRange { start, len, what } => {
                write!(f, "range {start:#x}+{len:#x}: {what}")
            }
            DirtyError::Os { op, errno } => write!(
                f,
                "{op} failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            DirtyError::Capacity { what } => write!(f, "out of capacity: {what}"),
        }
    }
}

impl std::error::Error for DirtyError {}

/// A dirty-page tracking backend. See the module documentation for the
/// contract. All methods take `&self`: a source is shared between the
/// collector and the threads it serves.
pub trait DirtySource: Send + Sync {
    /// The source's name, as accepted by [`crate::open`].
    fn name(&self) -> &'static str;

    /// Start watching `range` (pages already mapped or not yet touched).
    /// Pages of a newly tracked range count as dirty until the next `arm`
    /// or `harvest` reports them (a conservative start).
    fn track(&self, range: PageRange) -> Result<(), DirtyError>;

    /// Stop watching `range`, which must have been tracked.
    fn untrack(&self, range: PageRange) -> Result<(), DirtyError>;

    /// Start an epoch: every tracked page becomes clean.
    fn arm(&self) -> Result<(), DirtyError>;

    /// Report every page written since the last `arm` or `harvest`
    /// (calling `sink` with ranges of whole pages, in any order, possibly
    /// more than once for a page) and re-arm those pages.
    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError>;

    /// Stop watching writes until the next `arm`.
    fn disarm(&self) -> Result<(), DirtyError>;

    /// The caller has just discarded the contents of `range` (inside tracked
    /// memory) with `MADV_DONTNEED`, before anything wrote it again. A source
    /// whose tracking does not survive a discard (synchronous userfaultfd
    /// loses the write-protection of anonymous pages) counts those pages
    /// dirty, so the next harvest reports and re-arms them. The default does
    /// nothing: async write-protect reports discarded pages as written, and
    /// `mprotect` keeps the protection of the mapping.
    fn discarded(&self, range: PageRange) -> Result<(), DirtyError> {
        let _ = range;
        Ok(())
    }

    /// What the source can see and needs (from its row in
    /// [`crate::registry::SOURCES`]; a wrapper reports its inner source's).
    fn capabilities(&self) -> crate::Capabilities {
        crate::registry::capabilities_of(self.name())
    }

    /// A snapshot of the common counters.
    fn counters(&self) -> Counters;

    /// Source-specific counters (PML events, modelled time, ...), by name.
    /// Modelled (estimated) figures have names ending in `_modelled_ns`.
    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        let _ = f;
    }
}
