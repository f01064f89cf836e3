//! Thin private wrappers over the kernel interfaces the PML engines stand on:
//! userfaultfd write-protection (async and synchronous modes), the
//! `PAGEMAP_SCAN` ioctl and `/proc/self/pagemap` reads.
//!
//! The model keeps its own wrappers (rather than sharing the kernel sources'
//! types) so that the engines under the PML model can be swapped for a real
//! hypervisor without touching the other backends. Nothing here allocates
//! through the global allocator.

use crate::contract::{DirtyError, PageRange};
use linux_raw_sys::general as uapi;
use linux_raw_sys::ioctl as uioctl;

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
