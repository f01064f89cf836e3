//! array-writer: the OoH paper's micro-benchmark (its Fig. 4), run on dirty
//! sources directly, without a collector.
//!
//! A private anonymous region (1 MiB ..= 1 GiB) is first written once so
//! that first-touch faults count nowhere. Then, untracked, `passes` loops
//! each write one word per page: the baseline time. Then the named source
//! tracks the region, is armed, and the same loops run, each followed by a
//! harvest (as a collector harvests every cycle). The tracked loops stop
//! early after [`TRACKED_TIME_CAP`] so that slow sources finish; figures are
//! medians per pass. The region uses base pages (`MADV_NOHUGEPAGE`), as
//! the tracked runs do. Every harvest must report every page (each was written): a
//! source that misses one fails the run (a false negative).
//!
//! Figures: the mutator slowdown (tracked write time / untracked), the
//! total slowdown (writes + harvests / untracked), and the source's own
//! counters (PML events and modelled time for `epml` and `spml`).

use super::{Knobs, Size};
use crate::figures::median;
use crate::rng::mix;
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};
use std::time::{Duration, Instant};

/// Untracked passes at least (they are cheap; more make a steadier baseline).
pub const MIN_UNTRACKED_PASSES: u64 = 20;

/// Wall-time bound on the tracked passes (at least one pass always runs).
pub const TRACKED_TIME_CAP: Duration = Duration::from_secs(3);

/// What one array-writer run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Region size, bytes.
    pub region_bytes: u64,
    /// Untracked passes run.
    pub untracked_passes: u64,
    /// Tracked passes run.
    pub tracked_passes: u64,
    /// Untracked write time per pass (median), ns.
    pub untracked_pass_ns: f64,
    /// Tracked write time per pass (median), ns.
    pub tracked_pass_ns: f64,
    /// Harvest time per pass (median), ns.
    pub harvest_pass_ns: f64,
    /// Pages reported per harvest (averaged).
    pub pages_per_harvest: f64,
    /// Source-specific counters after the run.
    pub counters: Vec<(String, u64)>,
}

impl Figures {
    /// Tracked write time over untracked write time.
    pub fn mutator_slowdown(&self) -> f64 {
        self.tracked_pass_ns / self.untracked_pass_ns.max(1.0)
    }
    /// Tracked writes plus harvests over untracked writes.
    pub fn total_slowdown(&self) -> f64 {
        (self.tracked_pass_ns + self.harvest_pass_ns) / self.untracked_pass_ns.max(1.0)
    }
}

/// (region MiB, passes) for `size`, with the knobs applied and checked.
pub fn params(size: Size, knobs: &Knobs) -> Result<(u64, u64), String> {
    let (mib, passes) = size.pick((4, 4), (32, 10), (256, 6), (1024, 3));
    let mib = knobs.region_mib.unwrap_or(mib);
    let passes = knobs.passes.unwrap_or(passes);
    if !(1..=1024).contains(&mib) {
        return Err(format!(
            "--region-mib {mib} is out of range; allowed: 1 ..= 1024"
        ));
    }
    if passes == 0 {
        return Err("--passes 0: allowed values are 1 or more".into());
    }
    Ok((mib, passes))
}

/// A private anonymous mapping, unmapped on drop.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn map(len: usize) -> Result<Region, String> {
        // SAFETY: an anonymous private mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!(
                "mmap of {len} bytes failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Region {
            ptr: ptr as *mut u8,
            len,
        })
    }

    /// Write `value ^ page` into the first word of every page; with
    /// `CARD_BARRIER`, call the `card` source's write barrier after each
    /// store (that source sees only the stores announced to it).
    #[inline(never)]
    fn write_pass<const CARD_BARRIER: bool>(&self, value: u64) {
        for page in 0..self.len / PAGE_SIZE {
            let word = self.ptr.wrapping_add(page * PAGE_SIZE) as *mut u64;
            // SAFETY: in bounds of the live, writable mapping; 8-aligned
            // (a page start).
            unsafe { std::ptr::write_volatile(word, value ^ page as u64) };
            if CARD_BARRIER {
                oohgc_dirty::card::write_barrier(word as usize);
            }
        }
    }

    /// Whether every page holds what `write_pass(value)` wrote.
    fn holds_pass(&self, value: u64) -> bool {
        (0..self.len / PAGE_SIZE).all(|page| {
            // SAFETY: in bounds of the mapping, 8-aligned.
            let word =
                unsafe { std::ptr::read_volatile(self.ptr.add(page * PAGE_SIZE) as *const u64) };
            word == value ^ page as u64
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Run the benchmark on the source named `source`; returns the checksum
/// (independent of the source) and the figures.
pub fn run(source: &str, size: Size, knobs: &Knobs) -> Result<(u64, Figures), String> {
    let (mib, passes) = params(size, knobs)?;
    let len = (mib as usize) << 20;
    let pages = (len / PAGE_SIZE) as u64;
    let region = Region::map(len)?;
    region.write_pass::<false>(u64::MAX);

    let untracked_passes = passes.max(MIN_UNTRACKED_PASSES);
    let mut untracked = Vec::with_capacity(untracked_passes as usize);
    for pass in 0..untracked_passes {
        let t = Instant::now();
        region.write_pass::<false>(pass);
        untracked.push(t.elapsed().as_nanos() as f64);
    }

    let dirty: Box<dyn DirtySource> = oohgc_dirty::open(source).map_err(|e| e.to_string())?;
    let card = dirty.capabilities().needs_barrier;
    let range = PageRange::new(region.ptr as usize, len).map_err(|e| e.to_string())?;
    dirty.track(range).map_err(|e| e.to_string())?;
    dirty.arm().map_err(|e| e.to_string())?;
    // Pages of a newly tracked range count as dirty until first reported.
    dirty.harvest(&mut |_| {}).map_err(|e| e.to_string())?;

    let (mut tracked, mut harvest) = (Vec::new(), Vec::new());
    let (mut reported, mut done) = (0u64, 0u64);
    let loop_start = Instant::now();
    while done < passes && (done == 0 || loop_start.elapsed() < TRACKED_TIME_CAP) {
        let t = Instant::now();
        if card {
            region.write_pass::<true>(done);
        } else {
            region.write_pass::<false>(done);
        }
        tracked.push(t.elapsed().as_nanos() as f64);
        let mut this_harvest = 0u64;
        let t = Instant::now();
        dirty
            .harvest(&mut |r| {
                let lo = r.start.max(range.start);
                let hi = r.end().min(range.end());
                if hi > lo {
                    this_harvest += ((hi - lo) / PAGE_SIZE) as u64;
                }
            })
            .map_err(|e| e.to_string())?;
        harvest.push(t.elapsed().as_nanos() as f64);
        if this_harvest < pages {
            return Err(format!(
                "source `{source}` reported {this_harvest} of {pages} written pages in pass {done} (false negatives)"
            ));
        }
        reported += this_harvest;
        done += 1;
    }
    dirty.disarm().map_err(|e| e.to_string())?;
    let mut counters = Vec::new();
    let common = dirty.counters();
    counters.push(("write_traps".to_string(), common.write_traps));
    counters.push(("harvests".to_string(), common.harvests));
    counters.push(("pages_reported".to_string(), common.pages_reported));
    dirty.for_each_counter(&mut |name, value| counters.push((name.to_string(), value)));
    dirty.untrack(range).map_err(|e| e.to_string())?;
    drop(dirty);

    if !region.holds_pass(done - 1) {
        return Err(format!("under source `{source}` the region lost writes"));
    }
    let figures = Figures {
        region_bytes: len as u64,
        untracked_passes,
        tracked_passes: done,
        untracked_pass_ns: median(&untracked).unwrap_or(0.0),
        tracked_pass_ns: median(&tracked).unwrap_or(0.0),
        harvest_pass_ns: median(&harvest).unwrap_or(0.0),
        pages_per_harvest: reported as f64 / done as f64,
        counters,
    };
    // The checksum covers what every source must agree on (the region and
    // its page count; contents and harvests were checked above).
    Ok((mix(mix(0, len as u64), pages), figures))
}
