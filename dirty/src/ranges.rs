//! The set of ranges a source tracks, kept in raw mmap.
//!
//! Every source keeps its tracked ranges (plus per-range data such as a
//! dirty bitmap) in a [`TrackedRanges`]. It refuses overlapping ranges and
//! untracking anything but a range exactly as it was tracked, so that the
//! per-range data never has to be split.
//!
//! Owns: `TrackedRanges`: the overlap and exact-untrack rules and the per-
//! range data slots. Must not touch: the kernel (no system call besides its
//! mmap), any source's per-range meaning.

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

    /// Add `range` (call [`Self::check_disjoint`] first). Entries stay
    /// sorted by address.
    pub(crate) fn insert(&mut self, range: PageRange, extra: E) {
        let at = self.entries.iter().position(|(r, _)| r.start > range.start);
        self.entries.push((range, extra));
        if let Some(at) = at {
            self.entries.as_mut_slice()[at..].rotate_right(1);
        }
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

    /// Remove the entry at `index` (from [`Self::position`]) and return it,
    /// keeping the others sorted.
    pub(crate) fn remove_at(&mut self, index: usize) -> (PageRange, E) {
        self.entries.as_mut_slice()[index..].rotate_left(1);
        self.entries.pop().expect("remove_at of an existing index")
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

    /// Call `f` with each maximal span of address-adjacent tracked ranges
    /// (a heap committed in adjacent chunks is then one span: one system
    /// call instead of one per chunk). Stops at the first error.
    #[cfg_attr(not(feature = "pagemap-scan"), allow(dead_code))]
    pub(crate) fn for_each_span<Err>(
        &self,
        mut f: impl FnMut(PageRange) -> Result<(), Err>,
    ) -> Result<(), Err> {
        let mut span: Option<PageRange> = None;
        for (r, _) in self.entries.iter() {
            span = match span {
                Some(s) if s.end() == r.start => Some(PageRange {
                    start: s.start,
                    len: s.len + r.len,
                }),
                Some(s) => {
                    f(s)?;
                    Some(*r)
                }
                None => Some(*r),
            };
        }
        match span {
            Some(s) => f(s),
            None => Ok(()),
        }
    }

    /// Total pages tracked.
    pub(crate) fn total_pages(&self) -> u64 {
        self.entries.iter().map(|(r, _)| r.pages() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PAGE_SIZE;

    fn r(first_page: usize, pages: usize) -> PageRange {
        PageRange::new(first_page * PAGE_SIZE, pages * PAGE_SIZE).unwrap()
    }

    #[test]
    fn sorted_spans_merge_adjacent_ranges() {
        let mut t = TrackedRanges::new();
        for (range, tag) in [
            (r(10, 2), 'a'),
            (r(2, 3), 'b'),
            (r(5, 5), 'c'),
            (r(20, 1), 'd'),
        ] {
            t.check_disjoint(range).unwrap();
            t.insert(range, tag);
        }
        assert!(t.check_disjoint(r(4, 2)).is_err());
        let order: Vec<char> = t.iter().map(|(_, c)| *c).collect();
        assert_eq!(order, ['b', 'c', 'a', 'd']);
        let mut spans = Vec::new();
        t.for_each_span(|s| {
            spans.push(s);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(spans, [r(2, 10), r(20, 1)]);
        let i = t.position(r(5, 5)).unwrap();
        assert_eq!(t.remove_at(i).1, 'c');
        let order: Vec<char> = t.iter().map(|(_, c)| *c).collect();
        assert_eq!(order, ['b', 'a', 'd']);
        assert!(t.position(r(5, 5)).is_err());
        assert_eq!(t.total_pages(), 6);
    }
}
