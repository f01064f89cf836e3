//! Thin private wrappers over the kernel interfaces the PML engines stand on:
//! userfaultfd write-protection (async and synchronous modes), the
//! `PAGEMAP_SCAN` ioctl and `/proc/self/pagemap` reads.
//!
//! The model keeps its own wrappers (rather than sharing the kernel sources'
//! types) so that the engines under the PML model can be swapped for a real
//! hypervisor without touching the other backends. Nothing here allocates
//! through the global allocator.

use crate::contract::{DirtyError, PageRange, PAGE_SIZE};
use linux_raw_sys::general as uapi;
use linux_raw_sys::ioctl as uioctl;

/// `PAGEMAP_SCAN` = `_IOWR('f', 16, struct pm_scan_arg)`; linux-raw-sys lacks it.
const PAGEMAP_SCAN: u64 = 0xC060_6610;
/// `UFFDIO_WRITEPROTECT_MODE_WP`: write-protect the range.
const WRITEPROTECT_MODE_WP: u64 = 1;
/// `UFFDIO_WRITEPROTECT_MODE_DONTWAKE`: do not wake faulting threads.
const WRITEPROTECT_MODE_DONTWAKE: u64 = 2;

/// The last `errno` as a [`DirtyError::Os`] for operation `op`.
pub(crate) fn os_error(op: &'static str) -> DirtyError {
    DirtyError::Os {
        op,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// An owned file descriptor closed on drop.
pub(crate) struct Fd(pub(crate) i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor and close it exactly once.
        unsafe { libc::close(self.0) };
    }
}

/// A userfaultfd opened for write-protect tracking.
pub(crate) struct Uffd {
    fd: Fd,
}

impl Uffd {
    /// Open a userfaultfd with `features` (e.g. `UFFD_FEATURE_WP_ASYNC`).
    /// `nonblocking` makes `read` return `EAGAIN` instead of sleeping.
    pub(crate) fn open(
        source: &'static str,
        features: u64,
        nonblocking: bool,
    ) -> Result<Uffd, DirtyError> {
        let mut flags = libc::O_CLOEXEC;
        if nonblocking {
            flags |= libc::O_NONBLOCK;
        }
        // SAFETY: plain system call with integer arguments.
        let mut fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as i32;
        if fd < 0 {
            // Unprivileged processes may only watch user-mode faults.
            // SAFETY: as above.
            fd = unsafe {
                libc::syscall(
                    libc::SYS_userfaultfd,
                    flags | uapi::UFFD_USER_MODE_ONLY as i32,
                )
            } as i32;
        }
        if fd < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(DirtyError::Unavailable {
                source,
                reason: format!(
                    "userfaultfd(2) failed ({}); the PML engines need userfaultfd write-protection \
                     (CONFIG_USERFAULTFD, and vm.unprivileged_userfaultfd=1 or CAP_SYS_PTRACE)",
                    std::io::Error::from_raw_os_error(errno)
                ),
            });
        }
        let uffd = Uffd { fd: Fd(fd) };
        let mut api = uapi::uffdio_api {
            api: uapi::UFFD_API as u64,
            features,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes the uffdio_api we pass.
        if unsafe { libc::ioctl(fd, uioctl::UFFDIO_API as _, &mut api) } != 0 {
            return Err(DirtyError::Unavailable {
                source,
                reason: format!(
                    "this kernel's userfaultfd lacks features {features:#x} \
                     (write-protect async mode needs Linux >= 6.7, unpopulated-page protection >= 6.4): {}",
                    std::io::Error::last_os_error()
                ),
            });
        }
        Ok(uffd)
    }

    /// The raw descriptor (for `poll`/`read`).
    pub(crate) fn raw(&self) -> i32 {
        self.fd.0
    }

    /// Register `range` for write-protect tracking.
    pub(crate) fn register(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut reg = uapi::uffdio_register {
            range: uapi::uffdio_range {
                start: range.start as u64,
                len: range.len as u64,
            },
            mode: uapi::UFFDIO_REGISTER_MODE_WP as u64,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads/writes the struct we pass.
        if unsafe { libc::ioctl(self.fd.0, uioctl::UFFDIO_REGISTER as _, &mut reg) } != 0 {
            return Err(os_error(
                "UFFDIO_REGISTER (is the range mapped, private and anonymous?)",
            ));
        }
        Ok(())
    }

    /// Unregister `range` (wakes any thread blocked on it).
    pub(crate) fn unregister(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut r = uapi::uffdio_range {
            start: range.start as u64,
            len: range.len as u64,
        };
        // SAFETY: UFFDIO_UNREGISTER reads the range we pass.
        if unsafe { libc::ioctl(self.fd.0, uioctl::UFFDIO_UNREGISTER as _, &mut r) } != 0 {
            return Err(os_error("UFFDIO_UNREGISTER"));
        }
        Ok(())
    }

    /// Write-protect (`protect == true`) or unprotect `range`. Unprotecting
    /// wakes threads blocked on it unless `wake` is false (the kernel
    /// refuses "don't wake" together with protection, so it is ignored then).
    pub(crate) fn write_protect(
        &self,
        range: PageRange,
        protect: bool,
        wake: bool,
    ) -> Result<(), DirtyError> {
        let mut mode = if protect { WRITEPROTECT_MODE_WP } else { 0 };
        if !wake && !protect {
            mode |= WRITEPROTECT_MODE_DONTWAKE;
        }
        let mut wp = uapi::uffdio_writeprotect {
            range: uapi::uffdio_range {
                start: range.start as u64,
                len: range.len as u64,
            },
            mode,
        };
        // SAFETY: UFFDIO_WRITEPROTECT reads the struct we pass.
        if unsafe { libc::ioctl(self.fd.0, uioctl::UFFDIO_WRITEPROTECT as _, &mut wp) } != 0 {
            return Err(os_error("UFFDIO_WRITEPROTECT"));
        }
        Ok(())
    }

    /// Wake threads blocked on faults in `range`.
    pub(crate) fn wake(&self, range: PageRange) {
        let mut r = uapi::uffdio_range {
            start: range.start as u64,
            len: range.len as u64,
        };
        // SAFETY: UFFDIO_WAKE reads the range we pass; failure only means no waiter.
        unsafe { libc::ioctl(self.fd.0, uioctl::UFFDIO_WAKE as _, &mut r) };
    }
}

/// Written-page runs returned by one `PAGEMAP_SCAN` call.
pub(crate) const SCAN_REGIONS: usize = 4096;

/// Scan `range` for pages written since they were last write-protected,
/// atomically re-protecting each reported page (`PM_SCAN_WP_MATCHING`), and
/// call `sink(start, end)` for each run of written pages. `regions` is
/// scratch space of [`SCAN_REGIONS`] entries.
pub(crate) fn pagemap_scan_written(
    pagemap: &Fd,
    range: PageRange,
    regions: &mut [uapi::page_region],
    sink: &mut dyn FnMut(usize, usize),
) -> Result<u64, DirtyError> {
    let mut start = range.start as u64;
    let end = range.end() as u64;
    let mut calls = 0;
    while start < end {
        let mut arg = uapi::pm_scan_arg {
            size: std::mem::size_of::<uapi::pm_scan_arg>() as u64,
            flags: (uapi::PM_SCAN_WP_MATCHING | uapi::PM_SCAN_CHECK_WPASYNC) as u64,
            start,
            end,
            walk_end: 0,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            max_pages: 0,
            category_inverted: 0,
            category_mask: uapi::PAGE_IS_WRITTEN as u64,
            category_anyof_mask: 0,
            return_mask: uapi::PAGE_IS_WRITTEN as u64,
        };
        // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most vec_len regions
        // into `regions`, which we own for the duration of the call.
        let n = unsafe { libc::ioctl(pagemap.0, PAGEMAP_SCAN as _, &mut arg) };
        calls += 1;
        if n < 0 {
            return Err(os_error("PAGEMAP_SCAN"));
        }
        let n = n as usize;
        for r in &regions[..n] {
            sink(r.start as usize, r.end as usize);
        }
        if n < regions.len() {
            break;
        }
        // A full vector: continue after the last region returned (walk_end is
        // unreliable when the vector fills).
        start = regions[n - 1].end.max(start + PAGE_SIZE as u64);
    }
    Ok(calls)
}

/// Write-protect again every written page of `range` without reporting
/// them: one `PAGEMAP_SCAN` with `PM_SCAN_WP_MATCHING` and no output
/// vector. Far cheaper than `UFFDIO_WRITEPROTECT` over the whole range;
/// pages never touched keep no protection and count as written once
/// touched, which the async engine's scans report.
pub(crate) fn pagemap_reprotect_written(pagemap: &Fd, range: PageRange) -> Result<(), DirtyError> {
    let mut arg = uapi::pm_scan_arg {
        size: std::mem::size_of::<uapi::pm_scan_arg>() as u64,
        flags: (uapi::PM_SCAN_WP_MATCHING | uapi::PM_SCAN_CHECK_WPASYNC) as u64,
        start: range.start as u64,
        end: range.end() as u64,
        walk_end: 0,
        vec: 0,
        vec_len: 0,
        max_pages: 0,
        category_inverted: 0,
        category_mask: uapi::PAGE_IS_WRITTEN as u64,
        category_anyof_mask: 0,
        return_mask: uapi::PAGE_IS_WRITTEN as u64,
    };
    // SAFETY: PAGEMAP_SCAN reads `arg`; with no vector it writes nothing else.
    if unsafe { libc::ioctl(pagemap.0, PAGEMAP_SCAN as _, &mut arg) } < 0 {
        return Err(os_error("PAGEMAP_SCAN (re-protect)"));
    }
    Ok(())
}

/// Bit 63 of a pagemap entry: the page is present in RAM.
pub(crate) const PAGEMAP_PRESENT: u64 = 1 << 63;
/// Bits 0-54 of a pagemap entry: the page frame number (zero when hidden).
pub(crate) const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;

/// Open `/proc/self/pagemap` read-only.
pub(crate) fn open_pagemap(source: &'static str) -> Result<Fd, DirtyError> {
    // SAFETY: a NUL-terminated path literal.
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
    Ok(Fd(fd))
}

/// Read the pagemap entries of the `out.len()` pages starting at `addr`.
pub(crate) fn read_pagemap(pagemap: &Fd, addr: usize, out: &mut [u64]) -> Result<(), DirtyError> {
    let mut done = 0usize;
    let bytes = std::mem::size_of_val(out);
    while done < bytes {
        let offset = (addr / PAGE_SIZE) as u64 * 8 + done as u64;
        // SAFETY: we read into the tail of `out`, which we borrow mutably.
        let n = unsafe {
            libc::pread(
                pagemap.0,
                out.as_mut_ptr().cast::<u8>().add(done).cast(),
                bytes - done,
                offset as libc::off_t,
            )
        };
        if n <= 0 {
            return Err(os_error("pread /proc/self/pagemap"));
        }
        done += n as usize;
    }
    Ok(())
}

/// The frame number of the kernel's shared zero page (what a read of a
/// never-written anonymous page maps), when pagemap shows frames.
pub(crate) fn zero_page_pfn(pagemap: &Fd) -> Option<u64> {
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
    let ok = read_pagemap(pagemap, p as usize, &mut entry).is_ok();
    // SAFETY: unmapping the page mapped above.
    unsafe { libc::munmap(p, PAGE_SIZE) };
    let pfn = entry[0] & PAGEMAP_PFN_MASK;
    (ok && entry[0] & PAGEMAP_PRESENT != 0 && pfn != 0).then_some(pfn)
}

/// Create a non-blocking eventfd (used to stop handler threads).
pub(crate) fn eventfd() -> Result<Fd, DirtyError> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(os_error("eventfd"));
    }
    Ok(Fd(fd))
}

/// Signal an eventfd.
pub(crate) fn eventfd_signal(fd: &Fd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local.
    unsafe { libc::write(fd.0, (&one as *const u64).cast(), 8) };
}
