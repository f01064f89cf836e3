//! The [`Checkpointer`]: tracks ranges with a dirty source, dumps full and
//! incremental images, restores them (see the crate doc for the dump's
//! steps and the image format).

use crate::error::CheckpointError;
use crate::format::{self, Header, ImageId, RecordWriter, IMAGE_FILE, TEMP_FILE};
use crate::freeze::{Freezer, NoFreeze};
use crate::pages::{self, PageBits};
use crate::restore::{Image, RestoreReport};
use crate::staging::Staging;
use oohgc_dirty::{DirtySource, PageRange, PAGE_SIZE};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`Checkpointer::new`] accepts: a source name (as
/// `oohgc_dirty::open` takes it) or a source already opened.
pub enum SourceArg {
    /// A name from `oohgc_dirty::SOURCE_NAMES`.
    Name(String),
    /// An open source.
    Source(Box<dyn DirtySource>),
}

impl From<&str> for SourceArg {
    fn from(name: &str) -> Self {
        SourceArg::Name(name.to_string())
    }
}

impl From<String> for SourceArg {
    fn from(name: String) -> Self {
        SourceArg::Name(name)
    }
}

impl From<Box<dyn DirtySource>> for SourceArg {
    fn from(source: Box<dyn DirtySource>) -> Self {
        SourceArg::Source(source)
    }
}

/// What one dump did and cost. Times are wall-clock nanoseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DumpReport {
    /// The image's directory.
    pub dir: PathBuf,
    /// 1 for the first dump.
    pub generation: u64,
    /// Whether the image holds every tracked page (no parent).
    pub full: bool,
    /// Pages tracked at dump time.
    pub tracked_pages: u64,
    /// Pages in the image (written since the parent, or all when full).
    pub pages: u64,
    /// Of those, pages stored with their bytes.
    pub data_pages: u64,
    /// Of those, all-zero pages stored as a marker.
    pub zero_pages: u64,
    /// Pages the source reported (a range may be reported more than once;
    /// tracked-since-last-dump ranges are not counted here).
    pub pages_reported: u64,
    /// Bytes of the image file.
    pub image_bytes: u64,
    /// From the call to `freeze` to the return of `thaw`.
    pub frozen_ns: u64,
    /// Inside `freeze` (stopping the writers).
    pub stop_ns: u64,
    /// The source's harvest (frozen).
    pub harvest_ns: u64,
    /// Copying written pages into the staging buffer (frozen).
    pub copy_ns: u64,
    /// `arm` before the first freeze (not frozen; 0 after the first dump).
    pub arm_ns: u64,
    /// Writing, syncing and renaming the image after the thaw.
    pub write_ns: u64,
    /// The whole `dump` call.
    pub total_ns: u64,
}

/// One tracked range and its page state.
struct Tracked {
    range: PageRange,
    /// Pages to put in the next image.
    dirty: PageBits,
    /// Of `dirty`, pages found all-zero by the copy (reset per dump).
    zero: PageBits,
    /// Tracked since the last image: the next one takes every page.
    whole: bool,
    /// Private anonymous memory (checked at `track`): without swap, a page
    /// `mincore` does not report resident is zero and is not read.
    anonymous: bool,
}

/// The last image written: the next one's parent.
struct Parent {
    dir: PathBuf,
    id: ImageId,
}

/// Checkpoints page ranges of the calling process. See the crate doc.
pub struct Checkpointer {
    source: Box<dyn DirtySource>,
    tracked: Vec<Tracked>,
    freezer: Box<dyn Freezer>,
    staging: Staging,
    parent: Option<Parent>,
    armed: bool,
    generation: u64,
    /// A buffer for `mincore` answers while staging.
    residency_buf: Vec<u8>,
}

impl Checkpointer {
    /// A checkpointer over `source`: a name (`epml`, `spml`,
    /// `pagemap-scan`, `uffd`, `mprotect`, `soft-dirty`, `none`, ...) or
    /// an open `Box<dyn DirtySource>`. A source this kernel cannot run is
    /// refused with the source's own reason.
    pub fn new(source: impl Into<SourceArg>) -> Result<Checkpointer, CheckpointError> {
        let refuse = |name: &str| {
            CheckpointError::Usage(format!(
                "the `{name}` source only sees pointer stores made through its write barrier; \
                 a checkpoint needs every write: use one of {}",
                usable_sources().collect::<Vec<_>>().join(", ")
            ))
        };
        let source = match source.into() {
            // Refused by what the table says, before (or without) opening it.
            SourceArg::Name(name)
                if oohgc_dirty::registry::capabilities_of(&name).needs_barrier =>
            {
                return Err(refuse(&name));
            }
            SourceArg::Name(name) => oohgc_dirty::open(&name)?,
            SourceArg::Source(s) if s.capabilities().needs_barrier => return Err(refuse(s.name())),
            SourceArg::Source(s) => s,
        };
        Ok(Checkpointer {
            source,
            tracked: Vec::new(),
            freezer: Box::new(NoFreeze),
            staging: Staging::new(),
            parent: None,
            armed: false,
            generation: 0,
            residency_buf: vec![0; pages::RESIDENCY_CHUNK],
        })
    }

    /// The dirty source (for its name and counters).
    pub fn source(&self) -> &dyn DirtySource {
        &*self.source
    }

    /// How writers are stopped during dumps (default [`NoFreeze`]).
    pub fn set_freezer(&mut self, freezer: impl Freezer + 'static) {
        self.freezer = Box::new(freezer);
    }

    /// The ranges tracked now, ascending.
    pub fn ranges(&self) -> Vec<PageRange> {
        self.tracked.iter().map(|t| t.range).collect()
    }

    /// The generation of the last image written (0 before the first).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Start checkpointing `range` (mapped, readable memory; not
    /// overlapping a tracked range). The next image holds all of it.
    pub fn track(&mut self, range: PageRange) -> Result<(), CheckpointError> {
        let at = self
            .tracked
            .partition_point(|t| t.range.start < range.start);
        let overlaps = |t: &Tracked| t.range.start < range.end() && range.start < t.range.end();
        if self.tracked.get(at).is_some_and(overlaps) || at > 0 && overlaps(&self.tracked[at - 1]) {
            return Err(CheckpointError::BadRange {
                range,
                what: "overlaps a tracked range; ranges must be disjoint".into(),
            });
        }
        if !pages::is_mapped(range) {
            return Err(CheckpointError::BadRange {
                range,
                what: "is not wholly mapped in this process".into(),
            });
        }
        self.source.track(range)?;
        self.tracked.insert(
            at,
            Tracked {
                range,
                dirty: PageBits::new(range.pages()),
                zero: PageBits::new(range.pages()),
                whole: true,
                anonymous: pages::is_private_anonymous(range),
            },
        );
        Ok(())
    }

    /// Stop checkpointing `range`, which must be exactly a tracked range.
    /// Later images leave it out; earlier ones still hold it.
    pub fn untrack(&mut self, range: PageRange) -> Result<(), CheckpointError> {
        let Some(i) = self.tracked.iter().position(|t| t.range == range) else {
            return Err(CheckpointError::BadRange {
                range,
                what: "is not tracked (untrack takes exactly a range given to track)".into(),
            });
        };
        self.source.untrack(range)?;
        self.tracked.remove(i);
        Ok(())
    }

    /// Dump an image into `dir` (created if missing; it must not hold an
    /// image already). The first image, and any image in which every
    /// tracked page was written, is full; the others hold the pages
    /// written since the previous image and link to it.
    pub fn dump(&mut self, dir: impl AsRef<Path>) -> Result<DumpReport, CheckpointError> {
        let t_start = Instant::now();
        let dir = dir.as_ref();
        if self.tracked.is_empty() {
            return Err(CheckpointError::Usage(
                "nothing to dump: track a range first".into(),
            ));
        }
        fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, "create directory", e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| CheckpointError::io(dir, "resolve", e))?;
        let final_path = dir.join(IMAGE_FILE);
        if final_path.exists() {
            return Err(CheckpointError::Usage(format!(
                "{} already holds an image; dump each generation into a new directory",
                dir.display()
            )));
        }
        if let Some(p) = &self.parent {
            if p.dir == dir {
                return Err(CheckpointError::Usage(format!(
                    "{} is the parent image's directory",
                    dir.display()
                )));
            }
        }
        let tracked_pages: usize = self.tracked.iter().map(|t| t.range.pages()).sum();
        self.staging
            .ensure(tracked_pages * PAGE_SIZE)
            .map_err(|e| CheckpointError::io("(anonymous memory)", "map the staging buffer", e))?;
        let mut report = DumpReport {
            dir: dir.clone(),
            tracked_pages: tracked_pages as u64,
            ..DumpReport::default()
        };
        if !self.armed {
            let t = Instant::now();
            self.source.arm()?;
            self.armed = true;
            report.arm_ns = t.elapsed().as_nanos() as u64;
        }
        for t in &mut self.tracked {
            if t.whole {
                t.dirty.set_all();
            }
        }
        let skip_unpopulated = !pages::swap_active();

        // --- frozen: stop, harvest, copy, thaw. Nothing here allocates.
        let t_freeze = Instant::now();
        if let Err(why) = self.freezer.freeze() {
            self.freezer.thaw();
            return Err(CheckpointError::Freeze(why));
        }
        let t_stopped = Instant::now();
        let mut reported = 0u64;
        let tracked = &mut self.tracked;
        let harvest = self.source.harvest(&mut |r: PageRange| {
            reported += r.pages() as u64;
            mark(tracked, r);
        });
        let t_harvested = Instant::now();
        let staged = if harvest.is_ok() {
            stage(
                &mut self.tracked,
                &self.staging,
                skip_unpopulated,
                &mut self.residency_buf,
            )
        } else {
            0
        };
        let t_copied = Instant::now();
        self.freezer.thaw();
        let t_thawed = Instant::now();
        // --- running again.

        if let Err(e) = harvest {
            // The source may have re-armed some pages before failing: the
            // next image must take everything.
            for t in &mut self.tracked {
                t.whole = true;
            }
            return Err(e.into());
        }
        report.stop_ns = (t_stopped - t_freeze).as_nanos() as u64;
        report.harvest_ns = (t_harvested - t_stopped).as_nanos() as u64;
        report.copy_ns = (t_copied - t_harvested).as_nanos() as u64;
        report.frozen_ns = (t_thawed - t_freeze).as_nanos() as u64;
        report.pages_reported = reported;

        let full = self.tracked.iter().all(|t| t.dirty.all());
        let pages: usize = self.tracked.iter().map(|t| t.dirty.count()).sum();
        let zero: usize = self.tracked.iter().map(|t| t.zero.count()).sum();
        report.full = full;
        report.pages = pages as u64;
        report.zero_pages = zero as u64;
        report.data_pages = (pages - zero) as u64;
        debug_assert_eq!(report.data_pages as usize, staged);

        let generation = self.generation + 1;
        let header = Header {
            full,
            generation,
            id: format::random_id()?,
            parent_id: match (&self.parent, full) {
                (Some(p), false) => p.id,
                _ => [0; 16],
            },
            ranges: self.ranges(),
            page_count: pages as u64,
            parent: match (&self.parent, full) {
                (Some(p), false) => Some(p.dir.clone()),
                _ => None,
            },
        };
        // The first image takes every page: all its ranges are new.
        debug_assert!(full || self.parent.is_some());
        let t_write = Instant::now();
        match self.write_image(&dir, &header) {
            Ok(bytes) => report.image_bytes = bytes,
            Err(e) => {
                // Harvested pages stay marked: the next dump takes them.
                for t in &mut self.tracked {
                    t.zero.clear();
                }
                let _ = fs::remove_file(dir.join(TEMP_FILE));
                return Err(e);
            }
        }
        report.write_ns = t_write.elapsed().as_nanos() as u64;
        for t in &mut self.tracked {
            t.dirty.clear();
            t.zero.clear();
            t.whole = false;
        }
        self.staging.used(staged);
        self.parent = Some(Parent { dir, id: header.id });
        self.generation = generation;
        report.generation = generation;
        report.total_ns = t_start.elapsed().as_nanos() as u64;
        Ok(report)
    }

    /// Write the staged image to `dir/image.tmp`, sync it, rename it to
    /// `dir/image` and sync the directory. Returns the file's length.
    fn write_image(&self, dir: &Path, header: &Header) -> Result<u64, CheckpointError> {
        let tmp = dir.join(TEMP_FILE);
        let file = File::create(&tmp).map_err(|e| CheckpointError::io(&tmp, "create", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let hbytes = header.encode();
        let werr = |e| CheckpointError::io(&tmp, "write", e);
        out.write_all(&hbytes).map_err(werr)?;
        let mut w = RecordWriter::new(out, hbytes.len() as u64);
        let mut slot = 0usize;
        for t in &self.tracked {
            let mut err = None;
            t.dirty.for_each_set(|i| {
                if err.is_some() {
                    return;
                }
                let addr = t.range.start + i * PAGE_SIZE;
                let r = if t.zero.get(i) {
                    w.page(addr, None)
                } else {
                    let data = self.staging.page(slot);
                    slot += 1;
                    w.page(addr, Some(data))
                };
                if let Err(e) = r {
                    err = Some(e);
                }
            });
            if let Some(e) = err {
                return Err(werr(e));
            }
        }
        let (out, len) = w.finish().map_err(werr)?;
        let file = out
            .into_inner()
            .map_err(|e| CheckpointError::io(&tmp, "write", e.into_error()))?;
        file.sync_all()
            .map_err(|e| CheckpointError::io(&tmp, "fsync", e))?;
        drop(file);
        let final_path = dir.join(IMAGE_FILE);
        fs::rename(&tmp, &final_path).map_err(|e| CheckpointError::io(&tmp, "rename", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| CheckpointError::io(dir, "fsync directory", e))?;
        Ok(len)
    }

    /// Restore the image in `dir` (and its parents) into the addresses it
    /// was dumped from, which must be mapped and writable. Nothing is
    /// written unless the whole chain verifies. Restored pages count as
    /// written for the next dump (they differ from the last image).
    pub fn restore(&mut self, dir: impl AsRef<Path>) -> Result<RestoreReport, CheckpointError> {
        Image::open(dir)?.restore()
    }
}

/// Mark the pages of `r` in the tracked range(s) it falls in. Reports
/// outside every tracked range are ignored (a source may report a range
/// just untracked).
fn mark(tracked: &mut [Tracked], r: PageRange) {
    let mut i = tracked.partition_point(|t| t.range.end() <= r.start);
    while let Some(t) = tracked.get_mut(i) {
        if t.range.start >= r.end() {
            break;
        }
        let from = r.start.max(t.range.start);
        let to = r.end().min(t.range.end());
        t.dirty.set_span(
            (from - t.range.start) / PAGE_SIZE,
            (to - t.range.start) / PAGE_SIZE,
        );
        i += 1;
    }
}

/// Copy every marked page into the staging buffer (zero pages are only
/// noted); returns the pages staged. Runs frozen: no allocation.
///
/// Where most of a private anonymous range is to be copied (a full dump)
/// and no swap is active, `mincore` says which pages were never populated:
/// those are zero and are not read, so a sparse range's full dump neither
/// faults the zero page in everywhere (a read fault per page) nor changes
/// page frames under the source's feet (the SPML model reports a page whose
/// frame changed as written).
fn stage(
    tracked: &mut [Tracked],
    staging: &Staging,
    skip_unpopulated: bool,
    buf: &mut [u8],
) -> usize {
    let mut slot = 0usize;
    for t in tracked.iter_mut() {
        let Tracked {
            range,
            dirty,
            zero,
            anonymous,
            ..
        } = t;
        let consult = skip_unpopulated && *anonymous && dirty.count() > range.pages() / 8;
        let mut chunk_first = usize::MAX;
        let mut chunk_ok = false;
        dirty.for_each_set(|i| {
            let addr = range.start + i * PAGE_SIZE;
            if consult {
                let first = i - i % buf.len();
                if first != chunk_first {
                    chunk_first = first;
                    let n = buf.len().min(range.pages() - first);
                    chunk_ok = pages::residency(range.start + first * PAGE_SIZE, n, buf);
                }
                if chunk_ok && buf[i - first] & 1 == 0 {
                    zero.set(i);
                    return;
                }
            }
            // SAFETY: `addr` is a page of a tracked range, which the caller
            // of `track` keeps mapped and readable; the staging slot is in
            // bounds (capacity covers every tracked page) and private.
            unsafe {
                if pages::page_is_zero(addr) {
                    zero.set(i);
                } else {
                    pages::copy_page(addr, staging.page_addr(slot));
                    slot += 1;
                }
            }
        });
    }
    slot
}

/// Every source a checkpoint can use, in the source table's order: all but
/// those that see only barrier-marked stores (`card`).
pub fn usable_sources() -> impl Iterator<Item = &'static str> {
    oohgc_dirty::registry::SOURCES
        .iter()
        .filter(|s| !s.capabilities.needs_barrier)
        .map(|s| s.name)
}
