//! Userfaultfd system-call wrappers shared by `pagemap-scan`, `uffd` and
//! the PML model's engines.
//!
//! Owns: opening the descriptor (with the fallback to `UFFD_USER_MODE_ONLY`
//! for unprivileged processes), the feature handshake, registration and
//! write-protection, each turned into a [`DirtyError`] that names what went
//! wrong; the fault-serving loop of a handler thread
//! ([`Uffd::serve_wp_faults`]) and the eventfd that stops it ([`StopFd`]).
//!
//! Must not touch: what a fault means (recording it is the caller's
//! closure), tracked-range tables, `/proc/self/pagemap` (`crate::pagemap`).
//! Nothing here allocates after [`Uffd::open`].

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use linux_raw_sys::general as uapi;
use linux_raw_sys::ioctl as uapi_ioctl;

use crate::{DirtyError, PageRange};

/// Messages read per `read(2)` by [`Uffd::serve_wp_faults`] (kept on the
/// handler's stack).
const MESSAGES_PER_READ: usize = 64;

/// `UFFDIO_WRITEPROTECT_MODE_WP`: set write protection (0 removes it and wakes).
const WRITEPROTECT_MODE_WP: u64 = 1;
/// `_UFFDIO_WRITEPROTECT` bit in the `ioctls` answer of `UFFDIO_REGISTER`.
const UFFDIO_WRITEPROTECT_BIT: u64 = 1 << 0x06;

/// An open, API-negotiated userfaultfd.
pub(crate) struct Uffd {
    fd: OwnedFd,
    #[cfg_attr(not(any(feature = "pagemap-scan", feature = "uffd")), allow(dead_code))]
    user_mode_only: bool,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Run an ioctl, retrying while the kernel says EINTR or EAGAIN (EAGAIN:
/// the address space was changing under a userfaultfd operation).
pub(crate) fn ioctl_retry<T>(fd: RawFd, request: u32, arg: *mut T) -> Result<i64, i32> {
    loop {
        // SAFETY: `arg` points to the structure `request` expects (callers
        // pass the matching linux-raw-sys type), valid for the call.
        let r = unsafe { libc::ioctl(fd, request as libc::c_ulong, arg) };
        if r >= 0 {
            return Ok(r as i64);
        }
        let e = errno();
        if e != libc::EINTR && e != libc::EAGAIN {
            return Err(e);
        }
    }
}

impl Uffd {
    /// Open a userfaultfd for `source` and negotiate `features` (all required).
    pub(crate) fn open(source: &'static str, features: u64) -> Result<Uffd, DirtyError> {
        let base = libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: the userfaultfd system call takes one flags argument.
        let mut fd = unsafe { libc::syscall(libc::SYS_userfaultfd, base) } as i32;
        let mut user_mode_only = false;
        if fd < 0 && errno() == libc::EPERM {
            user_mode_only = true;
            let flags = base | uapi::UFFD_USER_MODE_ONLY as i32;
            // SAFETY: as above.
            fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) } as i32;
        }
        if fd < 0 {
            let e = errno();
            let reason = match e {
                libc::ENOSYS => "the kernel has no userfaultfd (CONFIG_USERFAULTFD is off)".to_string(),
                libc::EPERM => "userfaultfd is not permitted (vm.unprivileged_userfaultfd=0, no CAP_SYS_PTRACE, and UFFD_USER_MODE_ONLY was refused too)".to_string(),
                _ => format!("userfaultfd() failed: {}", std::io::Error::from_raw_os_error(e)),
            };
            return Err(DirtyError::Unavailable { source, reason });
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut api = uapi::uffdio_api {
            api: uapi::UFFD_API as u64,
            features,
            ioctls: 0,
        };
        if let Err(e) = ioctl_retry(fd.as_raw_fd(), uapi_ioctl::UFFDIO_API, &mut api) {
            let reason = if e == libc::EINVAL {
                format!(
                    "the kernel refused userfaultfd features {features:#x} \
                     (write-protect async mode needs Linux >= 6.7, unpopulated write-protect >= 6.4)"
                )
            } else {
                format!(
                    "UFFDIO_API failed: {}",
                    std::io::Error::from_raw_os_error(e)
                )
            };
            return Err(DirtyError::Unavailable { source, reason });
        }
        if api.features & features != features {
            return Err(DirtyError::Unavailable {
                source,
                reason: format!(
                    "the kernel offers userfaultfd features {:#x}, lacking {:#x}",
                    api.features,
                    features & !api.features
                ),
            });
        }
        Ok(Uffd { fd, user_mode_only })
    }

    /// The raw descriptor (for poll/read in a handler thread).
    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the descriptor was opened with `UFFD_USER_MODE_ONLY`
    /// (faults taken by the kernel itself are then not delivered).
    #[cfg_attr(not(any(feature = "pagemap-scan", feature = "uffd")), allow(dead_code))]
    pub(crate) fn user_mode_only(&self) -> bool {
        self.user_mode_only
    }

    /// Register `range` for write-protect tracking.
    pub(crate) fn register_wp(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut reg = uapi::uffdio_register {
            range: uapi::uffdio_range {
                start: range.start as u64,
                len: range.len as u64,
            },
            mode: uapi::UFFDIO_REGISTER_MODE_WP as u64,
            ioctls: 0,
        };
        match ioctl_retry(self.raw(), uapi_ioctl::UFFDIO_REGISTER, &mut reg) {
            Ok(_) => {}
            Err(libc::EINVAL) | Err(libc::ENOMEM) => {
                return Err(DirtyError::BadRange {
                    start: range.start,
                    len: range.len,
                    what: "is not entirely mapped private anonymous or shared memory \
                           (userfaultfd write-protect tracks only such mappings)",
                })
            }
            Err(libc::EBUSY) => {
                return Err(DirtyError::BadRange {
                    start: range.start,
                    len: range.len,
                    what:
                        "is already registered with another userfaultfd (another source tracks it)",
                })
            }
            Err(errno) => {
                return Err(DirtyError::Os {
                    op: "UFFDIO_REGISTER",
                    errno,
                })
            }
        }
        if reg.ioctls & UFFDIO_WRITEPROTECT_BIT == 0 {
            self.unregister(range)?;
            return Err(DirtyError::BadRange {
                start: range.start,
                len: range.len,
                what: "does not support userfaultfd write-protection (hugetlb or file mapping without WP support)",
            });
        }
        Ok(())
    }

    /// Undo [`Self::register_wp`] (also removes the protection and wakes waiters).
    pub(crate) fn unregister(&self, range: PageRange) -> Result<(), DirtyError> {
        let mut r = uapi::uffdio_range {
            start: range.start as u64,
            len: range.len as u64,
        };
        ioctl_retry(self.raw(), uapi_ioctl::UFFDIO_UNREGISTER, &mut r)
            .map(|_| ())
            .map_err(|errno| DirtyError::Os {
                op: "UFFDIO_UNREGISTER",
                errno,
            })
    }

    /// Write-protect (`protect`) or unprotect-and-wake `range`.
    pub(crate) fn write_protect(&self, range: PageRange, protect: bool) -> Result<(), DirtyError> {
        let mut wp = uapi::uffdio_writeprotect {
            range: uapi::uffdio_range {
                start: range.start as u64,
                len: range.len as u64,
            },
            mode: if protect { WRITEPROTECT_MODE_WP } else { 0 },
        };
        ioctl_retry(self.raw(), uapi_ioctl::UFFDIO_WRITEPROTECT, &mut wp)
            .map(|_| ())
            .map_err(|errno| DirtyError::Os {
                op: "UFFDIO_WRITEPROTECT",
                errno,
            })
    }

    /// Wake threads blocked on faults in `range` without changing protection.
    pub(crate) fn wake(&self, range: PageRange) {
        let mut r = uapi::uffdio_range {
            start: range.start as u64,
            len: range.len as u64,
        };
        // A failure only means there was nobody (or no registration) to wake.
        let _ = ioctl_retry(self.raw(), uapi_ioctl::UFFDIO_WAKE, &mut r);
    }

    /// The body of a handler thread: poll this descriptor and `stop`, read
    /// fault messages into a stack buffer and call `on_fault(address)` for
    /// each write-protect page fault, in the order the kernel queued them,
    /// until `stop` is signalled. Allocates nothing.
    pub(crate) fn serve_wp_faults(&self, stop: &StopFd, on_fault: &mut dyn FnMut(usize)) {
        let mut messages = [[0u64; 4]; MESSAGES_PER_READ];
        let mut fds = [
            libc::pollfd {
                fd: self.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: fds is a valid array of two pollfd.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                continue; // EINTR
            }
            if fds[1].revents != 0 {
                return;
            }
            // SAFETY: reading whole uffd_msg records (32 bytes each) into our buffer.
            let n = unsafe {
                libc::read(
                    self.raw(),
                    messages.as_mut_ptr().cast(),
                    std::mem::size_of_val(&messages),
                )
            };
            if n <= 0 {
                continue; // EAGAIN: another wake-up raced us
            }
            for msg in &messages[..n as usize / 32] {
                // uffd_msg: u8 event, 7 bytes reserved, then pagefault
                // { u64 flags, u64 address, u32 ptid }.
                let event = (msg[0] & 0xff) as u32;
                if event != uapi::UFFD_EVENT_PAGEFAULT {
                    continue;
                }
                let flags = msg[1];
                if flags & uapi::UFFD_PAGEFAULT_FLAG_WP as u64 == 0 {
                    continue;
                }
                on_fault(msg[2] as usize);
            }
        }
    }
}

/// A non-blocking eventfd that tells a handler thread
/// ([`Uffd::serve_wp_faults`]) to return.
pub(crate) struct StopFd(OwnedFd);

impl StopFd {
    /// A fresh, unsignalled eventfd.
    pub(crate) fn new() -> Result<StopFd, DirtyError> {
        // SAFETY: eventfd with an initial count of 0.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(DirtyError::Os {
                op: "eventfd",
                errno: errno(),
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(StopFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Signal it: every later or pending poll on it returns.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}
