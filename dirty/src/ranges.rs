//! The set of ranges a source tracks, kept in raw mmap.
//!
//! Every source keeps its tracked ranges (plus per-range data such as a
//! dirty bitmap) in a [`TrackedRanges`]. It refuses overlapping ranges and
//! untracking anything but a range exactly as it was tracked, so that the
//! per-range data never has to be split.

use crate::raw_vec::RawVec;
use crate::{DirtyError, PageRange};

/// Tracked ranges with a value of type `E` attached to each.
pub(crate) struct TrackedRanges<E: Copy> {
    entries: RawVec<(PageRange, E)>,
}

impl<E: Copy> Default for TrackedRanges<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> TrackedRanges<E> {
    /// No ranges.
    pub(crate) const fn new() -> Self {
        TrackedRanges {
            entries: RawVec::new(),
        }
    }

    /// Fail with `BadRange` if `range` overlaps a tracked range.
    pub(crate) fn check_disjoint(&self, range: PageRange) -> Result<(), DirtyError> {
        if self
            .entries
            .iter()
            .any(|(r, _)| r.start < range.end() && range.start < r.end())
        {
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "overlaps a range that is already tracked (tracked ranges must be disjoint)",
            });
        }
        Ok(())
    }

    /// Add `range` (call [`Self::check_disjoint`] first).
    pub(crate) fn insert(&mut self, range: PageRange, extra: E) {
        self.entries.push((range, extra));
    }

    /// The index of the entry tracked exactly as `range`, or `BadRange`.
    pub(crate) fn position(&self, range: PageRange) -> Result<usize, DirtyError> {
        self.entries
            .iter()
            .position(|(r, _)| *r == range)
            .ok_or(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "is not tracked (untrack takes exactly a range that was given to track)",
            })
    }

    /// Remove the entry at `index` (from [`Self::position`]) and return it.
    pub(crate) fn remove_at(&mut self, index: usize) -> (PageRange, E) {
        self.entries.swap_remove(index)
    }

    /// Remove and return any one entry (for teardown).
    #[cfg_attr(not(any(feature = "uffd", feature = "mprotect")), allow(dead_code))]
    pub(crate) fn pop(&mut self) -> Option<(PageRange, E)> {
        self.entries.pop()
    }

    /// The entry containing `addr`, if any.
    #[cfg_attr(not(feature = "uffd"), allow(dead_code))]
    pub(crate) fn find(&self, addr: usize) -> Option<&(PageRange, E)> {
        self.entries.iter().find(|(r, _)| r.contains(addr))
    }

    /// Every entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(PageRange, E)> {
        self.entries.iter()
    }

    /// Every entry, mutably.
    #[cfg_attr(not(feature = "soft-dirty"), allow(dead_code))]
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (PageRange, E)> {
        self.entries.iter_mut()
    }

    /// Total pages tracked.
    pub(crate) fn total_pages(&self) -> u64 {
        self.entries.iter().map(|(r, _)| r.pages() as u64).sum()
    }
}
