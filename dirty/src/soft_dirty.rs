//! The `soft-dirty` source: `clear_refs` "4" plus pagemap bit 55 (bdwgc's
//! `SOFT_VDB`).
//!
//! Writing "4" to `/proc/self/clear_refs` clears the soft-dirty bit of every
//! page of the process (and write-protects them in the kernel); the first
//! write to a page sets bit 55 of its `/proc/self/pagemap` entry again. A
//! harvest reads the entries of the tracked ranges, reports the pages with
//! bit 55, then clears the whole process again.
//!
//! **Availability.** The kernel must be built with `CONFIG_MEM_SOFT_DIRTY`.
//! Without it `clear_refs` still accepts "4" and silently does nothing,
//! and bit 55 stays clear after writes — which would be a source reporting
//! nothing at all. [`probe`] therefore tests the real behaviour (map a
//! page, write, clear, expect bit 55 clear, write, expect it set), and
//! [`SoftDirtySource::open`] refuses with `Unavailable` when it fails. On
//! the project's VM (kernel 6.18 without `CONFIG_MEM_SOFT_DIRTY`) it does.
//!
//! **Concurrency.** Reading the entries and clearing them are two steps,
//! and the clear is process-wide: a write landing between them is lost.
//! A harvest is exact only while no other thread writes tracked memory
//! (bdwgc calls it with the world stopped); a concurrent harvest may miss
//! writes made during it, which the contract forbids — so callers must
//! harvest this source only with the mutators stopped. `clear_refs` also
//! resets the bits of every other user of soft-dirty in the process.
//!
//! Owns: `SoftDirtySource`, the `clear_refs` file, the bit-55 reading, and
//! the behavioural probe. Must not touch: userfaultfd or `PAGEMAP_SCAN`
//! (other sources); it reads entries through `crate::pagemap`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::counters::{add_elapsed, AtomicCounters};
use crate::pagemap::Pagemap;
use crate::ranges::TrackedRanges;
use crate::raw_vec::RawVec;
use crate::{Counters, DirtyError, DirtySource, PageRange, PAGE_SIZE};

const NAME: &str = "soft-dirty";
/// The soft-dirty bit of a `/proc/<pid>/pagemap` entry.
pub const PAGEMAP_SOFT_DIRTY_BIT: u32 = 55;
/// Pagemap entries read per `pread`.
const ENTRIES_PER_READ: usize = 4096;

fn unavailable(reason: String) -> DirtyError {
    DirtyError::Unavailable {
        source: NAME,
        reason,
    }
}

fn open_proc(path: &std::ffi::CStr, flags: i32) -> Result<OwnedFd, DirtyError> {
    // SAFETY: opening a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(unavailable(format!(
            "cannot open {}: {}",
            path.to_string_lossy(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The two procfs files the mechanism uses.
struct ProcFiles {
    clear_refs: OwnedFd,
    pagemap: Pagemap,
}

impl ProcFiles {
    fn open() -> Result<ProcFiles, DirtyError> {
        Ok(ProcFiles {
            clear_refs: open_proc(c"/proc/self/clear_refs", libc::O_WRONLY)?,
            pagemap: Pagemap::open(NAME)?,
        })
    }

    /// Clear the soft-dirty bits of the whole process.
    fn clear(&self) -> Result<(), DirtyError> {
        // SAFETY: writing one byte from a static buffer.
        let n = unsafe { libc::write(self.clear_refs.as_raw_fd(), b"4".as_ptr().cast(), 1) };
        if n != 1 {
            return Err(DirtyError::Os {
                op: "write 4 to /proc/self/clear_refs",
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Read the pagemap entries of `out.len()` pages from `first_page` into `out`.
    fn read_entries(&self, first_page: usize, out: &mut [u64]) -> Result<(), DirtyError> {
        self.pagemap.read(first_page * PAGE_SIZE, out)
    }

    fn is_soft_dirty(&self, addr: usize) -> Result<bool, DirtyError> {
        let mut e = [0u64; 1];
        self.read_entries(addr / PAGE_SIZE, &mut e)?;
        Ok(e[0] >> PAGEMAP_SOFT_DIRTY_BIT & 1 == 1)
    }
}

/// Test whether soft-dirty tracking really works on this kernel (see the
/// module documentation); `Unavailable` with the reason if not.
pub fn probe() -> Result<(), DirtyError> {
    let files = ProcFiles::open()?;
    // SAFETY: a one-page anonymous private mapping.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(unavailable("cannot map a probe page".into()));
    }
    let result = probe_page(&files, page as usize).map_err(|e| match e {
        DirtyError::Os { .. } => unavailable(format!("the soft-dirty probe failed: {e}")),
        other => other,
    });
    // SAFETY: unmapping the probe page.
    unsafe { libc::munmap(page, PAGE_SIZE) };
    result
}

fn probe_page(files: &ProcFiles, page: usize) -> Result<(), DirtyError> {
    // SAFETY: volatile writes into our own probe page.
    let write = |v: u8| unsafe { std::ptr::write_volatile(page as *mut u8, v) };
    write(1);
    files.clear()?;
    if files.is_soft_dirty(page)? {
        return Err(unavailable(
            "writing \"4\" to /proc/self/clear_refs did not clear pagemap bit 55 \
             (the kernel does not implement soft-dirty clearing)"
                .into(),
        ));
    }
    write(2);
    if !files.is_soft_dirty(page)? {
        return Err(unavailable(
            "the kernel lacks CONFIG_MEM_SOFT_DIRTY: pagemap bit 55 is never set after a write \
             (clear_refs accepts \"4\" and does nothing); use pagemap-scan instead"
                .into(),
        ));
    }
    Ok(())
}

/// The `soft-dirty` [`DirtySource`]. Harvest only with writers stopped
/// (see the module documentation).
pub struct SoftDirtySource {
    files: ProcFiles,
    /// Tracked ranges; the flag says "newly tracked: report all of it once".
    ranges: Mutex<TrackedRanges<bool>>,
    entries: Mutex<RawVec<u64>>,
    counters: AtomicCounters,
}

impl SoftDirtySource {
    /// Probe the kernel (see [`probe`]) and open the source.
    pub fn open() -> Result<SoftDirtySource, DirtyError> {
        probe()?;
        let mut entries = RawVec::with_capacity(ENTRIES_PER_READ);
        for _ in 0..ENTRIES_PER_READ {
            entries.push(0);
        }
        Ok(SoftDirtySource {
            files: ProcFiles::open()?,
            ranges: Mutex::new(TrackedRanges::new()),
            entries: Mutex::new(entries),
            counters: AtomicCounters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TrackedRanges<bool>> {
        self.ranges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Report the soft-dirty pages of `range`; returns how many.
    fn scan(&self, range: PageRange, sink: &mut dyn FnMut(PageRange)) -> Result<u64, DirtyError> {
        let mut buf = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let first = range.start / PAGE_SIZE;
        let mut pages = 0u64;
        let mut run: Option<(usize, usize)> = None;
        let mut done = 0;
        while done < range.pages() {
            let n = (range.pages() - done).min(ENTRIES_PER_READ);
            let chunk = &mut buf.as_mut_slice()[..n];
            self.files.read_entries(first + done, chunk)?;
            for (i, e) in chunk.iter().enumerate() {
                if e >> PAGEMAP_SOFT_DIRTY_BIT & 1 == 0 {
                    continue;
                }
                let page = first + done + i;
                pages += 1;
                run = match run {
                    Some((s, end)) if end == page => Some((s, page + 1)),
                    Some((s, end)) => {
                        sink(page_run(s, end));
                        Some((page, page + 1))
                    }
                    None => Some((page, page + 1)),
                };
            }
            done += n;
        }
        if let Some((s, end)) = run {
            sink(page_run(s, end));
        }
        Ok(pages)
    }
}

fn page_run(first: usize, end: usize) -> PageRange {
    PageRange {
        start: first * PAGE_SIZE,
        len: (end - first) * PAGE_SIZE,
    }
}

impl DirtySource for SoftDirtySource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn track(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut ranges = self.lock();
        ranges.check_disjoint(range)?;
        ranges.insert(range, true);
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
        let mut ranges = self.lock();
        self.files.clear()?;
        for (_, fresh) in ranges.iter_mut() {
            *fresh = false;
        }
        add_elapsed(&self.counters.arm_ns, t);
        Ok(())
    }

    fn harvest(&self, sink: &mut dyn FnMut(PageRange)) -> Result<(), DirtyError> {
        let t = Instant::now();
        let mut ranges = self.lock();
        let mut pages = 0u64;
        for (r, fresh) in ranges.iter_mut() {
            if *fresh {
                sink(*r);
                pages += r.pages() as u64;
                *fresh = false;
            } else {
                pages += self.scan(*r, sink)?;
            }
        }
        self.files.clear()?;
        drop(ranges);
        self.counters.record_harvest(pages, t);
        Ok(())
    }

    fn disarm(&self) -> Result<(), DirtyError> {
        // Soft-dirty bits cannot be switched off; the next arm clears them.
        Ok(())
    }

    fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    fn for_each_counter(&self, f: &mut dyn FnMut(&'static str, u64)) {
        f("tracked_pages", self.lock().total_pages());
        // 1: a harvest is exact only while no other thread writes tracked
        // memory (see the module documentation): callers must not harvest
        // concurrently with mutators.
        f("harvest_needs_stopped_writers", 1);
    }
}
