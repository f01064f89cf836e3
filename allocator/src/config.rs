//! Heap configuration, the crate's fixed constants and the errors `init` reports.

use core::fmt;

/// Minimum object size and alignment, in bytes. Every object starts on a granule.
pub const GRANULE: usize = 16;
/// The page size the heap manages memory in (and the OS page size on x86_64 Linux).
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub(crate) const PAGE_SHIFT: u32 = 12;
/// Smallest allowed [`HeapConfig::max_heap`]: 4 MiB. Below that a single growth
/// step plus the spans of a few size classes would already exhaust the heap.
pub const MIN_HEAP: usize = 4 << 20;
/// Largest allowed [`HeapConfig::reserve`]: 1 TiB of address space (the side
/// tables reserve about 1/6 of it again, without committing it).
pub const MAX_RESERVE: usize = 1 << 40;
/// Default [`HeapConfig::reserve`]: 64 GiB of address space (MAP_NORESERVE).
pub const DEFAULT_RESERVE: usize = 64 << 30;
/// Memory is committed (made readable and writable) in steps of this many bytes,
/// or less when a step would pass `max_heap`. Each step is one chunk reported to
/// the chunk hook and by `for_each_chunk`.
pub const COMMIT_CHUNK: usize = 4 << 20;
/// Largest supported alignment for `alloc` (1 GiB); larger requests return null.
pub const MAX_ALIGN: usize = 1 << 30;

/// Settings fixed at [`crate::init`].
#[derive(Clone, Copy, Debug)]
pub struct HeapConfig {
    /// Bytes of committed heap memory never exceeded (default: the reservation size).
    /// Must be at least [`MIN_HEAP`] and at most `reserve`.
    pub max_heap: usize,
    /// Virtual address space reserved at init (default [`DEFAULT_RESERVE`], MAP_NORESERVE).
    /// Must be a multiple of [`PAGE_SIZE`], at least [`MIN_HEAP`], at most [`MAX_RESERVE`].
    pub reserve: usize,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig {
            max_heap: DEFAULT_RESERVE,
            reserve: DEFAULT_RESERVE,
        }
    }
}

/// Why [`crate::init`] refused to start the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeapError {
    /// The heap is live already (an earlier `init` or the first allocation started it).
    AlreadyInitialized,
    /// `max_heap` is below [`MIN_HEAP`].
    MaxHeapTooSmall {
        /// The rejected value.
        max_heap: usize,
    },
    /// `max_heap` is larger than `reserve`.
    MaxHeapAboveReserve {
        /// The rejected value.
        max_heap: usize,
        /// The reservation it must fit in.
        reserve: usize,
    },
    /// `reserve` is not a multiple of [`PAGE_SIZE`] or outside `MIN_HEAP..=MAX_RESERVE`.
    BadReserve {
        /// The rejected value.
        reserve: usize,
    },
    /// The operating system refused a mapping.
    MapFailed {
        /// What the mapping was for.
        what: &'static str,
        /// Its size in bytes.
        bytes: usize,
        /// `errno` of the failed call.
        errno: i32,
    },
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeapError::AlreadyInitialized => write!(
                f,
                "the heap is already initialized: init() must be called once, before the first allocation"
            ),
            HeapError::MaxHeapTooSmall { max_heap } => write!(
                f,
                "max heap {max_heap} bytes is below the minimum {} MiB (MIN_HEAP = {MIN_HEAP} bytes)",
                MIN_HEAP >> 20
            ),
            HeapError::MaxHeapAboveReserve { max_heap, reserve } => write!(
                f,
                "max heap {max_heap} bytes is larger than the reservation of {reserve} bytes; allowed: MIN_HEAP ({MIN_HEAP}) ..= reserve"
            ),
            HeapError::BadReserve { reserve } => write!(
                f,
                "reserve {reserve} bytes is not allowed: it must be a multiple of {PAGE_SIZE} between MIN_HEAP ({MIN_HEAP}) and MAX_RESERVE ({MAX_RESERVE}) bytes"
            ),
            HeapError::MapFailed { what, bytes, errno } => write!(
                f,
                "mmap of {bytes} bytes for the {what} failed (errno {errno})"
            ),
        }
    }
}

impl std::error::Error for HeapError {}

impl HeapConfig {
    /// Checks every setting; the error names the setting and the allowed values.
    pub fn validate(&self) -> Result<(), HeapError> {
        let reserve = self.reserve;
        if !reserve.is_multiple_of(PAGE_SIZE) || !(MIN_HEAP..=MAX_RESERVE).contains(&reserve) {
            return Err(HeapError::BadReserve { reserve });
        }
        if self.max_heap < MIN_HEAP {
            return Err(HeapError::MaxHeapTooSmall {
                max_heap: self.max_heap,
            });
        }
        if self.max_heap > reserve {
            return Err(HeapError::MaxHeapAboveReserve {
                max_heap: self.max_heap,
                reserve,
            });
        }
        Ok(())
    }
}
