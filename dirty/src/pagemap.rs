//! `/proc/self/pagemap`: the one place that reads page-table entries and
//! runs the `PAGEMAP_SCAN` ioctl.
//!
//! Owns: opening the file, `pread` of 64-bit entries (present bit, frame
//! number), the frame of the kernel's shared zero page, the
//! `PAGEMAP_SCAN` request number (missing from linux-raw-sys) and the scan
//! loop over written pages (with the "full vector means call again"
//! rule), and the re-protect-only scan. Used by the `pagemap-scan` source
//! ([`crate::pagemap_scan::WpAsync`]) and by the PML model's engines and
//! SPML reverse map.
//!
//! Must not touch: userfaultfd registration or protection
//! (`crate::uffd_sys`), any source's tracked ranges or counters. Nothing
//! here allocates through the global allocator: callers pass the scratch
//! buffers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use linux_raw_sys::general as uapi;

use crate::contract::{DirtyError, PageRange, PAGE_SIZE};
use crate::uffd_sys::ioctl_retry;

/// `PAGEMAP_SCAN` = `_IOWR('f', 16, struct pm_scan_arg)` (96 bytes); the
/// number is missing from linux-raw-sys.
const PAGEMAP_SCAN: u32 = 0xC060_6610;

/// Bit 63 of a pagemap entry: the page is present in RAM.
pub(crate) const PAGEMAP_PRESENT: u64 = 1 << 63;
/// Bits 0-54 of a pagemap entry: the page frame number (zero when hidden).
pub(crate) const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;

/// What one [`Pagemap::scan_written`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanStats {
    /// Written pages reported.
    pub(crate) pages: u64,
    /// `PAGEMAP_SCAN` calls made.
    pub(crate) calls: u64,
}

/// An open `/proc/self/pagemap`.
pub(crate) struct Pagemap {
    fd: OwnedFd,
}

impl Pagemap {
    /// Open `/proc/self/pagemap` read-only; `Unavailable` for `source` if not.
    pub(crate) fn open(source: &'static str) -> Result<Pagemap, DirtyError> {
        // SAFETY: opening a NUL-terminated path read-only.
        let fd = unsafe {
            libc::open(
                c"/proc/self/pagemap".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(DirtyError::Unavailable {
                source,
                reason: format!(
                    "cannot open /proc/self/pagemap: {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Pagemap {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Read the pagemap entries of the `out.len()` pages starting at `addr`.
    pub(crate) fn read(&self, addr: usize, out: &mut [u64]) -> Result<(), DirtyError> {
        let mut done = 0usize;
        let bytes = std::mem::size_of_val(out);
        while done < bytes {
            let offset = (addr / PAGE_SIZE) as u64 * 8 + done as u64;
            // SAFETY: we read into the tail of `out`, which we borrow mutably.
            let n = unsafe {
                libc::pread(
                    self.fd.as_raw_fd(),
                    out.as_mut_ptr().cast::<u8>().add(done).cast(),
                    bytes - done,
                    offset as libc::off_t,
                )
            };
            if n <= 0 {
                return Err(DirtyError::Os {
                    op: "pread /proc/self/pagemap",
                    errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                });
            }
            done += n as usize;
        }
        Ok(())
    }

    /// Whether pagemap shows real frame numbers to this process (root).
    pub(crate) fn pfns_visible(&self) -> bool {
        let probe = 1u64; // on the stack: its page is present
        let addr = std::ptr::addr_of!(probe) as usize & !(PAGE_SIZE - 1);
        let mut entry = [0u64];
        self.read(addr, &mut entry).is_ok() && entry[0] & PAGEMAP_PFN_MASK != 0
    }

    /// The frame number of the kernel's shared zero page (what a read of a
    /// never-written anonymous page maps), when pagemap shows frames.
    pub(crate) fn zero_page_pfn(&self) -> Option<u64> {
        // SAFETY: a fresh private anonymous page, unmapped below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: reading our own readable page maps the zero page.
        unsafe { std::ptr::read_volatile(p as *const u8) };
        let mut entry = [0u64];
        let ok = self.read(p as usize, &mut entry).is_ok();
        // SAFETY: unmapping the page mapped above.
        unsafe { libc::munmap(p, PAGE_SIZE) };
        let pfn = entry[0] & PAGEMAP_PFN_MASK;
        (ok && entry[0] & PAGEMAP_PRESENT != 0 && pfn != 0).then_some(pfn)
    }

    fn scan_arg(
        flags: u64,
        start: usize,
        end: usize,
        vec: *mut uapi::page_region,
        vec_len: usize,
    ) -> uapi::pm_scan_arg {
        uapi::pm_scan_arg {
            size: std::mem::size_of::<uapi::pm_scan_arg>() as u64,
            flags,
            start: start as u64,
            end: end as u64,
            walk_end: 0,
            vec: vec as u64,
            vec_len: vec_len as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: uapi::PAGE_IS_WRITTEN as u64,
            category_anyof_mask: 0,
            return_mask: uapi::PAGE_IS_WRITTEN as u64,
        }
    }

    /// `PAGEMAP_SCAN` exists from Linux 6.7: ask for an empty range;
    /// `Unavailable` for `source` if the kernel lacks it.
    pub(crate) fn check_scan_supported(&self, source: &'static str) -> Result<(), DirtyError> {
        let mut arg = Self::scan_arg(0, 0, 0, std::ptr::null_mut(), 0);
        match ioctl_retry(self.fd.as_raw_fd(), PAGEMAP_SCAN, &mut arg) {
            Ok(_) => Ok(()),
            Err(e) => Err(DirtyError::Unavailable {
                source,
                reason: format!(
                    "the PAGEMAP_SCAN ioctl on /proc/self/pagemap failed ({}); it needs Linux >= 6.7",
                    std::io::Error::from_raw_os_error(e)
                ),
            }),
        }
    }

    /// Report the written pages of `range` (registered for async
    /// write-protect tracking) to `sink` as runs of pages, in address
    /// order. With `reprotect`, each reported page is write-protected
    /// again in the same atomic step (`PM_SCAN_WP_MATCHING`), so a write
    /// racing with the scan is either reported now or by the next scan.
    /// `regions` is the scratch vector one call may fill; a full vector
    /// means "maybe more" (`walk_end` is unreliable then) and the walk
    /// resumes after the last region returned.
    pub(crate) fn scan_written(
        &self,
        range: PageRange,
        reprotect: bool,
        regions: &mut [uapi::page_region],
        sink: &mut dyn FnMut(PageRange),
    ) -> Result<ScanStats, DirtyError> {
        let mut flags = uapi::PM_SCAN_CHECK_WPASYNC as u64;
        if reprotect {
            flags |= uapi::PM_SCAN_WP_MATCHING as u64;
        }
        let capacity = regions.len();
        let mut start = range.start;
        let mut stats = ScanStats::default();
        while start < range.end() {
            let mut arg = Self::scan_arg(flags, start, range.end(), regions.as_mut_ptr(), capacity);
            let n = ioctl_retry(self.fd.as_raw_fd(), PAGEMAP_SCAN, &mut arg)
                .map_err(|errno| scan_error(range, errno))? as usize;
            stats.calls += 1;
            let filled = &regions[..n.min(capacity)];
            for r in filled {
                let run = PageRange {
                    start: r.start as usize,
                    len: (r.end - r.start) as usize,
                };
                stats.pages += run.pages() as u64;
                sink(run);
            }
            if n < capacity {
                break;
            }
            start = (filled[n - 1].end as usize).max(start + PAGE_SIZE);
        }
        Ok(stats)
    }

    /// Write-protect again every written page of `range` without
    /// reporting them: one `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING` and
    /// no output vector. Costs in proportion to the populated pages, far
    /// less than `UFFDIO_WRITEPROTECT` over the whole range; never-touched
    /// pages stay unprotected and count as written once touched, so the
    /// result is equivalent for a scanner.
    pub(crate) fn protect_written(&self, range: PageRange) -> Result<(), DirtyError> {
        let flags = (uapi::PM_SCAN_CHECK_WPASYNC | uapi::PM_SCAN_WP_MATCHING) as u64;
        let mut arg = Self::scan_arg(flags, range.start, range.end(), std::ptr::null_mut(), 0);
        ioctl_retry(self.fd.as_raw_fd(), PAGEMAP_SCAN, &mut arg)
            .map(|_| ())
            .map_err(|errno| scan_error(range, errno))
    }
}

fn scan_error(range: PageRange, errno: i32) -> DirtyError {
    match errno {
        libc::EPERM | libc::EINVAL => DirtyError::BadRange {
            start: range.start,
            len: range.len,
            what: "is not (entirely) registered for async write-protect tracking",
        },
        errno => DirtyError::Os {
            op: "PAGEMAP_SCAN",
            errno,
        },
    }
}
