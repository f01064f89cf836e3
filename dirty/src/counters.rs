//! Lock-free counters shared by the sources, snapshotted into [`Counters`].
//!
//! Every field is an atomic so that signal handlers and fault-handler
//! threads can count without locks or allocation.
//!
//! Owns: `AtomicCounters` and the helpers that add to them and snapshot
//! them. Must not touch: what a source counts or when (the sources decide);
//! no allocation, no locks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::Counters;

/// The common counters of one source, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    pub(crate) write_traps: AtomicU64,
    pub(crate) harvests: AtomicU64,
    pub(crate) pages_reported: AtomicU64,
    pub(crate) false_positives: AtomicU64,
    pub(crate) harvest_ns: AtomicU64,
    pub(crate) arm_ns: AtomicU64,
}

impl AtomicCounters {
    /// A consistent-enough snapshot (each field read once).
    pub(crate) fn snapshot(&self) -> Counters {
        Counters {
            write_traps: self.write_traps.load(Ordering::Relaxed),
            harvests: self.harvests.load(Ordering::Relaxed),
            pages_reported: self.pages_reported.load(Ordering::Relaxed),
            false_positives: self.false_positives.load(Ordering::Relaxed),
            harvest_ns: self.harvest_ns.load(Ordering::Relaxed),
            arm_ns: self.arm_ns.load(Ordering::Relaxed),
        }
    }

    /// Count one finished harvest that reported `pages` pages and started
    /// at `since`.
    pub(crate) fn record_harvest(&self, pages: u64, since: Instant) {
        bump(&self.pages_reported, pages);
        bump(&self.harvests, 1);
        add_elapsed(&self.harvest_ns, since);
    }
}

/// Add `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Add the nanoseconds elapsed since `since` to a counter.
pub(crate) fn add_elapsed(counter: &AtomicU64, since: Instant) {
    let ns = since.elapsed().as_nanos().min(u64::MAX as u128) as u64;
    counter.fetch_add(ns, Ordering::Relaxed);
}
