//! The `pagemap-scan` source: userfaultfd write-protect in async mode plus
//! the `PAGEMAP_SCAN` ioctl (Linux >= 6.7).
//!
//! With `UFFD_FEATURE_WP_ASYNC` a write to a write-protected page does not
//! stop the writer: the kernel resolves the fault itself, clears the page's
//! uffd-wp bit and lets the write proceed (~0.7 us per first write on the
//! project's VM). `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING` then returns
//! the pages whose protection is gone (`PAGE_IS_WRITTEN`) and protects them
//! again, atomically per page table entry, so a harvest is one system call
//! per 512-ish regions. Writes made by the kernel on the process's behalf
//! (`read(2)` into a tracked buffer) are seen too.
//!
//! Two layers:
//! * [`WpAsync`] — the bare tracker (register / protect / scan), usable
//!   without the [`DirtySource`] wrapper; public API, keep it stable.
//! * [`PagemapScanSource`] — the [`DirtySource`].
//!
//! A page that was never write-protected counts as written (a
//! conservative start), and so does a page whose contents were dropped
//! with `MADV_DONTNEED`.
//!
//! Owns: `WpAsync` (one userfaultfd in async mode + the scan scratch) and
//! `PagemapScanSource` with its `DisarmPolicy`. Must not touch: the ioctl
//! plumbing (`uffd_sys.rs`, `pagemap.rs`), the PML model (which shares that
//! plumbing, not this module).

use std::sync::Mutex;
use std::time::Instant;

use linux_raw_sys::general as uapi;

use crate::counters::{add_elapsed, AtomicCounters};
use crate::pagemap::Pagemap;
use crate::ranges::TrackedRanges;
use crate::raw_vec::RawVec;
use crate::uffd_sys::Uffd;
use crate::{Counters, DirtyError, DirtySource, PageRange};

/// The source's name.
const NAME: &str = "pagemap-scan";

/// Regions returned per `PAGEMAP_SCAN` call. The kernel fills at most this
/// many; a full buffer means "call again from the end of the last region".
pub const SCAN_REGIONS_PER_CALL: usize = 1024;

/// The bare async write-protect tracker over one userfaultfd.
///
/// Used by [`PagemapScanSource`]. (The PML model's `async` engine shares
/// the plumbing underneath, `uffd_sys.rs` and `pagemap.rs`, not this type:
/// it needs its own scan vector and the scan-call count.)
/// Ranges are not remembered here: callers keep their own list. No method
/// allocates through the global allocator.
pub struct WpAsync {
    uffd: Uffd,
    pagemap: Pagemap,
    regions: Mutex<RawVec<uapi::page_region>>,
}

impl WpAsync {
    /// Open a userfaultfd with `UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED`
    /// and `/proc/self/pagemap`. Fails with `Unavailable` (naming the
    /// missing kernel feature) where the kernel cannot do it.
    pub fn new() -> Result<WpAsync, DirtyError> {
        let features = (uapi::UFFD_FEATURE_WP_ASYNC | uapi::UFFD_FEATURE_WP_UNPOPULATED) as u64;
        let uffd = Uffd::open(NAME, features)?;
        let pagemap = Pagemap::open(NAME)?;
        let mut regions = RawVec::with_capacity(SCAN_REGIONS_PER_CALL);
        for _ in 0..SCAN_REGIONS_PER_CALL {
            regions.push(uapi::page_region {
                start: 0,
                end: 0,
                categories: 0,
            });
        }
        let tracker = WpAsync {
            uffd,
            pagemap,
            regions: Mutex::new(regions),
        };
        tracker.pagemap.check_scan_supported(NAME)?;
        Ok(tracker)
    }

    /// Whether the userfaultfd had to be opened with `UFFD_USER_MODE_ONLY`
    /// (unprivileged process). Async write-protect sees kernel writes either way.
    pub fn user_mode_only(&self) -> bool {
        self.uffd.user_mode_only()
    }

    /// Register `range` (private anonymous or shmem memory) for tracking.
    /// Its pages count as written until first protected.
    pub fn register(&self, range: PageRange) -> Result<(), DirtyError> {
        self.uffd.register_wp(range)
    }

    /// Stop tracking `range` (removes the protection).
    pub fn unregister(&self, range: PageRange) -> Result<(), DirtyError> {
        self.uffd.unregister(range)
    }

    /// Write-protect every page of `range` (populated or not): from now on
    /// the first write to each marks it written.
    pub fn protect(&self, range: PageRange) -> Result<(), DirtyError> {
        self.uffd.write_protect(range, true)
    }

    /// Write-protect again every page of `range` that was written,
    /// without reporting them: one `PAGEMAP_SCAN` with
    /// `PM_SCAN_WP_MATCHING` and no output buffer. Costs in proportion to
    /// the populated pages (~0.7 ms for 256 MiB all written, here), where
    /// [`Self::protect`] (`UFFDIO_WRITEPROTECT`) costs ~10-15 ms for the
    /// same range. Never-touched pages stay unprotected and count as
    /// written once touched, so the result is equivalent.
    pub fn protect_written(&self, range: PageRange) -> Result<(), DirtyError> {
        self.pagemap.protect_written(range)
    }

    /// Remove the protection from `range`: writes run at full speed and
    /// every populated page reads as written.
    pub fn unprotect(&self, range: PageRange) -> Result<(), DirtyError> {
        self.uffd.write_protect(range, false)
    }

    /// Report the written pages of `range` (which must be registered) to
    /// `sink` as runs of pages, in address order. With `reprotect`, each
    /// reported page is write-protected again in the same atomic step
    /// (`PM_SCAN_WP_MATCHING`), so a write racing with the scan is either
    /// reported now or by the next scan. Returns the number of pages reported.
    ///
    /// `sink` must not call back into this tracker.
    pub fn scan_written(
        &self,
        range: PageRange,
        reprotect: bool,
        sink: &mut dyn FnMut(PageRange),
    ) -> Result<u64, DirtyError> {
        let mut regions = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        let stats = self
            .pagemap
            .scan_written(range, reprotect, regions.as_mut_slice(), sink)?;
        Ok(stats.pages)
    }
}

/// What [`DirtySource::disarm`] does between collection cycles.
///
/// Measured with `benches/sources.rs` (`cycle/...`: disarm, the mutator
/// writes p% of a populated 256 MiB range, arm) on the project's VM:
///
/// | pages written between cycles | `Unprotect` | `KeepProtected` |
/// |---|---|---|
/// | 1%  | 2.9-5.9 ms | 0.4 ms |
/// | 10% | 3.2-6.9 ms | 4.2-4.8 ms |
/// | 50% | 4.1-12.8 ms | 28.9-40.8 ms |
///
/// (two runs on a shared, noisy VM). Un-write-protecting costs a few ms
/// per 256 MiB populated, once; keeping the protection costs one async
/// fault (~0.9-1.2 us) per page written between cycles, on the mutator.
/// The crossover lies between ~8% and ~20% of the tracked pages. A
/// garbage-collected heap writes more than that between cycles
/// (everything allocated), and `Unprotect` moves the cost from the
/// mutators to whoever calls `disarm`/`arm` (the collector thread), so it
/// is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisarmPolicy {
    /// Remove the write protection (`UFFDIO_WRITEPROTECT` mode 0): no
    /// faults at all between cycles; the next `arm` write-protects every
    /// populated page again.
    #[default]
    Unprotect,
    /// Leave the protection in place and simply stop scanning: each page
    /// written between cycles takes one async fault, and `disarm` itself
    /// costs nothing. Better when few pages are written between cycles.
    KeepProtected,
}

/// The `pagemap-scan` [`DirtySource`].
pub struct PagemapScanSource {
    tracker: WpAsync,
    ranges: Mutex<TrackedRanges<()>>,
    counters: AtomicCounters,
    policy: DisarmPolicy,
}

impl PagemapScanSource {
    /// Open with the default [`DisarmPolicy`].
    pub fn open() -> Result<PagemapScanSource, DirtyError> {
        Self::with_disarm_policy(DisarmPolicy::default())
    }

    /// Open with a chosen [`DisarmPolicy`].
    pub fn with_disarm_policy(policy: DisarmPolicy) -> Result<PagemapScanSource, DirtyError> {
        Ok(PagemapScanSource {
            tracker: WpAsync::new()?,
            ranges: Mutex::new(TrackedRanges::new()),
            counters: AtomicCounters::default(),
            policy,
        })
    }

    /// The underlying tracker.
    pub fn tracker(&self) -> &WpAsync {
        &self.tracker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackedRanges<()>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl DirtySource for PagemapScanSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        self.tracker.register(range)?;
        ranges.insert(range, ());
        Ok(())
    }

    fn untrack(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        let i = ranges.position(range)?;
        self.tracker.unregister(range)?;
        ranges.remove_at(i);
        Ok(())
    }

    fn arm(&self) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        ranges.for_each_span(|span| self.tracker.protect_written(span))?;
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let ranges = self.lock();
        let mut pages = 0;
        ranges.for_each_span(|span| {
            pages += self.tracker.scan_written(span, true, sink)?;
            Ok::<(), DirtyError>(())
        })?;
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        if self.policy == DisarmPolicy::Unprotect {
            let ranges = self.lock();
            ranges.for_each_span(|span| self.tracker.unprotect(span))?;
        }
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        f("tracked_pages", self.lock().total_pages());
        f("user_mode_only", self.tracker.user_mode_only() as u64);
    }
}
