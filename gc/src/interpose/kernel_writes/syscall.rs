//! `syscall(3)`, interposed: the system calls of [`super`] made by number
//! (the `getrandom` crate, `std`'s fallbacks and others call
//! `libc::syscall`) get the same pins, and those that take a kernel signal
//! mask get it without the collector's signals. Every other number goes
//! straight to the real `syscall`.
//!
//! `syscall` is variadic in C. On x86-64 variadic integer arguments travel
//! exactly like fixed ones (six registers, then the stack), so a definition
//! with the number and six integer arguments receives whatever the caller
//! passed; unused trailing arguments hold garbage that the kernel ignores
//! and that is only forwarded. Other architectures do not get this wrapper.

#![cfg(target_arch = "x86_64")]

use super::sockets::add_mmsghdrs;
use super::system::add_ioctl;
use super::{add_iovecs, add_msghdr_buffers, add_object, add_sockaddr, with_pins};
use super::{Add, UIO_MAXIOV};
use libc::{c_long, epoll_event, iovec, mmsghdr, msghdr, pollfd, socklen_t};
use std::mem::size_of;

/// `io_pgetevents` on x86-64 (the `libc` crate lacks the constant).
const SYS_IO_PGETEVENTS: c_long = 333;

/// The kernel's `sigset_t` size on x86-64 (the `sigsetsize` argument).
const KERNEL_SIGSET: c_long = 8;

/// `syscall(3)` with the writing system calls' buffers pinned.
///
/// # Safety
/// As `syscall(3)` with the same arguments.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let f = real!(c"syscall": fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long);
    let (mut a4, mut a5, mut a6) = (a4, a5, a6);
    // Storage the filtered masks point into while the call runs.
    let mut mask_copy = 0u64;
    let pselect_data: [usize; 2];
    match n {
        libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 if a6 == KERNEL_SIGSET => {
            // SAFETY: per this function's contract the mask is null or a
            // valid kernel mask of `sigsetsize` (8) bytes.
            a5 = unsafe { open_kernel_mask(a5, &mut mask_copy) };
        }
        libc::SYS_ppoll if a5 == KERNEL_SIGSET => {
            // SAFETY: as above.
            a4 = unsafe { open_kernel_mask(a4, &mut mask_copy) };
        }
        libc::SYS_pselect6 | SYS_IO_PGETEVENTS
            if a6 != 0 && oohgc_barriers::current_config().is_some() =>
        {
            // The sixth argument points at { const sigset_t *ss; size_t ss_len; }
            // (pselect6's sigset argument, io_pgetevents' __aio_sigset).
            // SAFETY: per the contract a non-null sixth argument of these
            // calls points at that two-word structure.
            let data = unsafe { *(a6 as *const [usize; 2]) };
            if data[1] == KERNEL_SIGSET as usize {
                // SAFETY: its mask is null or 8 readable bytes.
                let ss = unsafe { open_kernel_mask(data[0] as c_long, &mut mask_copy) };
                pselect_data = [ss as usize, data[1]];
                a6 = pselect_data.as_ptr() as c_long;
            }
        }
        _ => {}
    }
    with_pins(
        // SAFETY: the arguments are what the caller passes to the kernel.
        |add| unsafe { add_regions(add, n, [a1, a2, a3, a4, a5, a6]) },
        // SAFETY: forwarding the caller's arguments (masks filtered).
        || unsafe { f(n, a1, a2, a3, a4, a5, a6) },
    )
}

/// `mask` (a kernel signal mask, or 0) without the collector's suspend and
/// restart signals: itself, or `copy` holding the filtered mask.
///
/// # Safety
/// `mask` is 0 or the address of 8 readable bytes.
unsafe fn open_kernel_mask(mask: c_long, copy: &mut u64) -> c_long {
    let Some(signals) = oohgc_barriers::current_config() else {
        return mask;
    };
    if mask == 0 {
        return mask;
    }
    let bits = (1u64 << (signals.suspend - 1)) | (1u64 << (signals.restart - 1));
    // SAFETY: per the contract.
    let m = unsafe { *(mask as *const u64) };
    if m & bits == 0 {
        return mask;
    }
    *copy = m & !bits;
    copy as *mut u64 as c_long
}

/// Name the memory system call `n` writes, from its arguments.
///
/// # Safety
/// The pointer arguments of the call are null or as the kernel expects
/// them (the iovec, msghdr and socket-length arguments are read).
unsafe fn add_regions(add: Add, n: c_long, a: [c_long; 6]) {
    let p = |i: usize| a[i] as usize;
    // SAFETY: per the contract, for every arm.
    unsafe {
        match n {
            libc::SYS_read
            | libc::SYS_pread64
            | libc::SYS_getdents64
            | libc::SYS_getdents
            | libc::SYS_readlink
            | libc::SYS_recvfrom => {
                add(p(1), p(2));
                if n == libc::SYS_recvfrom {
                    add_sockaddr(add, a[4] as *mut _, a[5] as *mut socklen_t);
                }
            }
            libc::SYS_readv | libc::SYS_preadv | libc::SYS_preadv2 => {
                add_iovecs(add, a[1] as *const iovec, p(2).min(UIO_MAXIOV));
            }
            libc::SYS_recvmsg => {
                add_object(add, a[1] as *const msghdr);
                add_msghdr_buffers(add, a[1] as *const msghdr);
            }
            libc::SYS_recvmmsg => {
                add_mmsghdrs(add, a[1] as *mut mmsghdr, p(2), a[4] as *mut _);
            }
            libc::SYS_epoll_wait | libc::SYS_epoll_pwait | libc::SYS_epoll_pwait2 => {
                add(p(1), (a[2].max(0) as usize) * size_of::<epoll_event>());
            }
            libc::SYS_getrandom | libc::SYS_getcwd => add(p(0), p(1)),
            libc::SYS_readlinkat => add(p(2), p(3)),
            libc::SYS_poll | libc::SYS_ppoll => {
                add(p(0), p(1) * size_of::<pollfd>());
                if n == libc::SYS_ppoll {
                    add_object(add, a[2] as *const libc::timespec);
                }
            }
            libc::SYS_select | libc::SYS_pselect6 => {
                let bytes = (a[0].max(0) as usize).div_ceil(64) * 8;
                for set in [p(1), p(2), p(3)] {
                    if set != 0 {
                        add(set, bytes);
                    }
                }
                // select's timeval and pselect6's timespec are both 16 bytes.
                add_object(add, a[4] as *const libc::timespec);
            }
            libc::SYS_statx => add_object(add, a[4] as *const libc::statx),
            libc::SYS_fstat | libc::SYS_stat | libc::SYS_lstat => {
                add_object(add, a[1] as *const libc::stat);
            }
            libc::SYS_newfstatat => add_object(add, a[2] as *const libc::stat),
            libc::SYS_wait4 => {
                add_object(add, a[1] as *const i32);
                add_object(add, a[3] as *const libc::rusage);
            }
            libc::SYS_waitid => {
                add_object(add, a[2] as *const libc::siginfo_t);
                add_object(add, a[4] as *const libc::rusage);
            }
            libc::SYS_accept
            | libc::SYS_accept4
            | libc::SYS_getsockname
            | libc::SYS_getpeername => {
                add_sockaddr(add, a[1] as *mut _, a[2] as *mut socklen_t);
            }
            libc::SYS_getsockopt => add_sockaddr(add, a[3] as *mut _, a[4] as *mut socklen_t),
            libc::SYS_pipe | libc::SYS_pipe2 => add(p(0), 8),
            libc::SYS_socketpair => add(p(3), 8),
            libc::SYS_uname => add_object(add, a[0] as *const libc::utsname),
            libc::SYS_sysinfo => add_object(add, a[0] as *const libc::sysinfo),
            libc::SYS_getrusage => add_object(add, a[1] as *const libc::rusage),
            libc::SYS_getrlimit => add_object(add, a[1] as *const libc::rlimit),
            libc::SYS_prlimit64 => add_object(add, a[3] as *const libc::rlimit64),
            libc::SYS_clock_gettime | libc::SYS_clock_getres => {
                add_object(add, a[1] as *const libc::timespec);
            }
            libc::SYS_sched_getaffinity => add(p(2), p(1)),
            libc::SYS_getxattr | libc::SYS_lgetxattr | libc::SYS_fgetxattr => add(p(2), p(3)),
            libc::SYS_listxattr | libc::SYS_llistxattr | libc::SYS_flistxattr => add(p(1), p(2)),
            libc::SYS_process_vm_readv => add_iovecs(add, a[1] as *const iovec, p(2)),
            libc::SYS_ioctl => add_ioctl(add, a[1] as libc::c_ulong, p(2)),
            libc::SYS_io_getevents | SYS_IO_PGETEVENTS => {
                // struct io_event is 32 bytes; the timeout is updated.
                add(p(3), p(2) * 32);
                add_object(add, a[4] as *const libc::timespec);
            }
            _ => {}
        }
    }
}
