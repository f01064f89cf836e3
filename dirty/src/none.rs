//! The `none` source: every tracked page is dirty at every harvest.
//!
//! It observes nothing, so it costs the mutator nothing and turns a
//! mostly-concurrent collector into a correct stop-the-world one (the
//! final pause re-scans the whole heap). It is the correctness and
//! performance baseline. It cannot know which reported pages were really
//! written, so `false_positives` stays zero and `pages_reported` counts
//! everything.
//!
//! Owns: `NoneSource`: its range list and counters. Must not touch: the
//! kernel: it observes nothing.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::counters::{add_elapsed, AtomicCounters};
use crate::ranges::TrackedRanges;
use crate::{Counters, DirtyError, DirtySource, PageRange};

/// The `none` [`DirtySource`].
#[derive(Default)]
pub struct NoneSource {
    ranges: Mutex<TrackedRanges<()>>,
    counters: AtomicCounters,
}

impl NoneSource {
    /// A source tracking nothing yet.
    pub fn new() -> NoneSource {
        NoneSource::default()
    }

    fn lock(&self) -> MutexGuard<'_, TrackedRanges<()>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DirtySource for NoneSource {
    fn name(&self) -> &'static str {
        "none"
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        ranges.insert(range, ());
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        let i = ranges.position(range)?;
        ranges.remove_at(i);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        for (r, _) in ranges.iter() {
            sink(*r);
        }
        let pages = ranges.total_pages();
        drop(ranges);
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        f("tracked_pages", self.lock().total_pages());
    }
}
