//! C library calls through which the kernel writes into the program's
//! memory, interposed so that those writes succeed under the `mprotect`
//! dirty source.
//!
//! Under `mprotect` an armed heap page is read-only, and the kernel raises
//! no fault for its own writes: `read(2)` into it fails with `EFAULT`. Each
//! wrapper here pins the buffers the call will write
//! ([`oohgc_dirty::mprotect::KernelWrite`]: their tracked pages are made
//! writable, recorded dirty, and kept writable until the call returns),
//! calls the real function, and unpins. When no `mprotect` range is tracked
//! (every other source, or no collector at all) the wrapper is one relaxed
//! load and a call of the real function; when the buffers touch no tracked
//! range it costs a scan of the tracked-range table.
//!
//! This module owns the pinning helper ([`with_pins`]) and the read
//! family; `sockets`, `waits` (epoll, poll, select, wait), `info` (stat,
//! `_FORTIFY_SOURCE` entry points), `system` (uname, rlimits, clocks,
//! xattrs, `process_vm_readv`, `ioctl`) and `syscall` hold the rest.
//!
//! Covered: `read`, `pread`, `pread64`, `readv`, `preadv`, `preadv64`,
//! `preadv2`, `preadv64v2`, `recv`, `recvfrom`, `recvmsg` (iovecs, name,
//! control and the `msghdr` itself), `recvmmsg`, `epoll_wait`,
//! `epoll_pwait`, `epoll_pwait2`, `poll`, `ppoll`, `select`, `pselect`,
//! `getrandom`, `readlink`, `readlinkat`, `getcwd`, `getdents64`, `statx`,
//! `stat`, `fstat`, `lstat`, `fstatat` (and their `64` names), `wait`,
//! `waitpid`, `wait4`, `waitid`, `accept`, `accept4`, `getsockopt`,
//! `getsockname`, `getpeername`, `pipe`, `pipe2`, `socketpair`, the
//! `_FORTIFY_SOURCE` variants `__read_chk`, `__pread_chk`,
//! `__pread64_chk`, `__recv_chk`, `__recvfrom_chk`, `__readlink_chk`,
//! `__readlinkat_chk`, `__getcwd_chk`, `__poll_chk`, `__ppoll_chk`,
//! `uname`, `sysinfo`, `getrusage`, `getrlimit(64)`, `prlimit(64)`,
//! `clock_gettime`, `clock_getres`, `sched_getaffinity`, `getxattr`,
//! `lgetxattr`, `fgetxattr`, `listxattr`, `llistxattr`, `flistxattr`,
//! `process_vm_readv` (local iovecs), `ioctl` (requests encoding a read
//! size, and `FIONREAD`, `TIOCOUTQ`, `TIOCGWINSZ`, `TIOCGPGRP`, `TIOCGSID`,
//! `TCGETS`), and the same system calls made through `syscall()` (module
//! `syscall`; also `io_getevents`/`io_pgetevents`' event array).
//! Calls that take a signal mask pass it through
//! [`super::open_collector_signals`] so the collector's suspend signal is
//! never blocked while they wait.
//!
//! Not covered (they do not come through the C library's exported
//! symbols): raw `syscall` instructions (rustix's `linux_raw` backend,
//! inline assembly), io_uring, POSIX AIO completions, writes by
//! another process (`process_vm_writev`, ptrace), and the C library's
//! internal calls (`fread`, `readdir`, `getaddrinfo`, ... into buffers the
//! program passed; they use hidden aliases).
//!
//! The wrappers never allocate, preserve `errno`, and read the program's
//! `iovec`/`msghdr` arrays only when tracking is on (a wild pointer there
//! then faults in the wrapper instead of failing with `EFAULT`).

use libc::{
    c_char, c_int, c_uint, c_void, iovec, msghdr, off64_t, off_t, sigset_t, size_t, socklen_t,
    ssize_t,
};
use oohgc_dirty::mprotect::{any_tracked, KernelWrite};
use std::mem::size_of;

/// The real function `name` with the given C signature, resolved at load
/// time (`.init_array`) so that a first call from a signal handler (a
/// `SIGCHLD` handler's `waitpid`, the collector's own `syscall(SYS_futex)`)
/// does not run `dlsym`.
macro_rules! real {
    ($name:literal: fn($($arg:ty),*) -> $ret:ty) => {{
        static REAL: crate::interpose::RealFn = crate::interpose::RealFn::new($name);
        extern "C" fn resolve_at_load() {
            REAL.preload();
        }
        #[used]
        #[link_section = ".init_array"]
        static RESOLVE_AT_LOAD: extern "C" fn() = resolve_at_load;
        let p = REAL.get();
        // SAFETY: `p` is the C library's definition of this symbol, whose C
        // signature is the one written here.
        unsafe {
            std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn($($arg),*) -> $ret>(p)
        }
    }};
}

mod info;
mod sockets;
mod syscall;
mod system;
mod waits;

/// The region visitor [`KernelWrite::begin_with`] hands out.
pub(super) type Add<'a> = &'a mut dyn FnMut(usize, usize);

/// Run `call` with the regions `visit` names pinned (when any `mprotect`
/// range is tracked); `errno` after the call is preserved across the unpin.
#[inline(always)]
pub(super) fn with_pins<R>(visit: impl FnOnce(Add), call: impl FnOnce() -> R) -> R {
    if !any_tracked() {
        return call();
    }
    // Pinning may yield or call mprotect: the call must see the caller's errno.
    let before = errno();
    // No drop glue in this frame during the call: a thread cancelled inside
    // it (`read` is a cancellation point) is unwound by glibc's forced
    // unwind, which must only cross frames without pending destructors.
    // Such a thread leaves its pin behind (its pages stay writable and are
    // reported by every harvest: false positives, never a lost write).
    let pin = std::mem::ManuallyDrop::new(KernelWrite::begin_with(visit));
    set_errno(before);
    let r = call();
    let saved = errno();
    drop(std::mem::ManuallyDrop::into_inner(pin));
    set_errno(saved);
    r
}

fn errno() -> c_int {
    // SAFETY: this thread's errno location.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: this thread's errno location.
    unsafe { *libc::__errno_location() = e };
}

/// The kernel's limit on iovecs per call (`UIO_MAXIOV`) and messages per
/// `recvmmsg`: a larger count fails with `EINVAL` (or is clamped) before
/// anything is written, so no more need pinning.
pub(super) const UIO_MAXIOV: usize = 1024;

/// Name the buffers of `cnt` iovecs at `iov`.
///
/// # Safety
/// `iov` is null or points at `cnt` readable iovecs (`cnt` clamped).
pub(super) unsafe fn add_iovecs(add: Add, iov: *const iovec, cnt: usize) {
    if iov.is_null() {
        return;
    }
    for i in 0..cnt.min(UIO_MAXIOV) {
        // SAFETY: per the contract.
        let v = unsafe { *iov.add(i) };
        add(v.iov_base as usize, v.iov_len);
    }
}

/// Name what `recvmsg` writes besides the `msghdr` itself: the address,
/// the control buffer and the data iovecs.
///
/// # Safety
/// `msg` is null or points at a readable `msghdr` whose iovec array is readable.
pub(super) unsafe fn add_msghdr_buffers(add: Add, msg: *const msghdr) {
    if msg.is_null() {
        return;
    }
    // SAFETY: per the contract.
    let m = unsafe { &*msg };
    if !m.msg_name.is_null() {
        add(m.msg_name as usize, m.msg_namelen as usize);
    }
    if !m.msg_control.is_null() {
        add(m.msg_control as usize, m.msg_controllen);
    }
    // SAFETY: per the contract.
    unsafe { add_iovecs(add, m.msg_iov, m.msg_iovlen) };
}

/// Name a socket address buffer whose length is in/out at `len`.
///
/// # Safety
/// `len` is null or points at a readable `socklen_t`.
pub(super) unsafe fn add_sockaddr(add: Add, addr: *mut c_void, len: *mut socklen_t) {
    if len.is_null() {
        return;
    }
    add(len as usize, size_of::<socklen_t>());
    if !addr.is_null() {
        // SAFETY: per the contract.
        add(addr as usize, unsafe { *len } as usize);
    }
}

/// Name an `fd_set` of `nfds` descriptors (`select` rewrites it).
pub(super) fn add_fd_set(add: Add, set: *mut libc::fd_set, nfds: c_int) {
    if !set.is_null() && nfds > 0 {
        add(set as usize, (nfds as usize).div_ceil(64) * 8);
    }
}

pub(super) fn add_object<T>(add: Add, p: *const T) {
    if !p.is_null() {
        add(p as usize, size_of::<T>());
    }
}

/// A zeroed signal set, scratch for [`open_collector_signals`].
pub(super) fn empty_sigset() -> sigset_t {
    // SAFETY: sigset_t is plain data; all-zero is the empty set.
    unsafe { std::mem::zeroed() }
}

// ---- read family -------------------------------------------------------

/// `read(2)` with the buffer pinned.
///
/// # Safety
/// As `read(2)`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let f = real!(c"read": fn(c_int, *mut c_void, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(fd, buf, n) })
}

/// `pread(2)` with the buffer pinned.
///
/// # Safety
/// As `pread(2)`.
#[no_mangle]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t {
    let f = real!(c"pread": fn(c_int, *mut c_void, size_t, off_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(fd, buf, n, off) })
}

/// `pread64` with the buffer pinned.
///
/// # Safety
/// As `pread(2)`.
#[no_mangle]
pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut c_void, n: size_t, off: off64_t) -> ssize_t {
    let f = real!(c"pread64": fn(c_int, *mut c_void, size_t, off64_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(fd, buf, n, off) })
}

/// `readv(2)` with every iovec pinned.
///
/// # Safety
/// As `readv(2)`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    let f = real!(c"readv": fn(c_int, *const iovec, c_int) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `cnt` valid iovecs.
        |add| unsafe { add_iovecs(add, iov, cnt.max(0) as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, iov, cnt) },
    )
}

/// `preadv(2)` with every iovec pinned.
///
/// # Safety
/// As `preadv(2)`.
#[no_mangle]
pub unsafe extern "C" fn preadv(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t {
    let f = real!(c"preadv": fn(c_int, *const iovec, c_int, off_t) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `cnt` valid iovecs.
        |add| unsafe { add_iovecs(add, iov, cnt.max(0) as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, iov, cnt, off) },
    )
}

/// `preadv64` with every iovec pinned.
///
/// # Safety
/// As `preadv(2)`.
#[no_mangle]
pub unsafe extern "C" fn preadv64(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off64_t,
) -> ssize_t {
    let f = real!(c"preadv64": fn(c_int, *const iovec, c_int, off64_t) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `cnt` valid iovecs.
        |add| unsafe { add_iovecs(add, iov, cnt.max(0) as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, iov, cnt, off) },
    )
}

/// `preadv2(2)` with every iovec pinned.
///
/// # Safety
/// As `preadv2(2)`.
#[no_mangle]
pub unsafe extern "C" fn preadv2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    let f = real!(c"preadv2": fn(c_int, *const iovec, c_int, off_t, c_int) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `cnt` valid iovecs.
        |add| unsafe { add_iovecs(add, iov, cnt.max(0) as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, iov, cnt, off, flags) },
    )
}

/// `preadv64v2` with every iovec pinned.
///
/// # Safety
/// As `preadv2(2)`.
#[no_mangle]
pub unsafe extern "C" fn preadv64v2(
    fd: c_int,
    iov: *const iovec,
    cnt: c_int,
    off: off64_t,
    flags: c_int,
) -> ssize_t {
    let f = real!(c"preadv64v2": fn(c_int, *const iovec, c_int, off64_t, c_int) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `cnt` valid iovecs.
        |add| unsafe { add_iovecs(add, iov, cnt.max(0) as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, iov, cnt, off, flags) },
    )
}

/// `getdents64(2)` with the buffer pinned.
///
/// # Safety
/// As `getdents64(2)`.
#[no_mangle]
pub unsafe extern "C" fn getdents64(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let f = real!(c"getdents64": fn(c_int, *mut c_void, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(fd, buf, n) })
}

/// `getrandom(2)` with the buffer pinned.
///
/// # Safety
/// As `getrandom(2)`.
#[no_mangle]
pub unsafe extern "C" fn getrandom(buf: *mut c_void, n: size_t, flags: c_uint) -> ssize_t {
    let f = real!(c"getrandom": fn(*mut c_void, size_t, c_uint) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(buf, n, flags) })
}

/// `readlink(2)` with the buffer pinned.
///
/// # Safety
/// As `readlink(2)`.
#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, n: size_t) -> ssize_t {
    let f = real!(c"readlink": fn(*const c_char, *mut c_char, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(path, buf, n) })
}

/// `readlinkat(2)` with the buffer pinned.
///
/// # Safety
/// As `readlinkat(2)`.
#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    n: size_t,
) -> ssize_t {
    let f = real!(c"readlinkat": fn(c_int, *const c_char, *mut c_char, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(buf as usize, n),
        || unsafe { f(dirfd, path, buf, n) },
    )
}

/// `getcwd(3)` with the buffer pinned (a null buffer is `malloc`ed by the
/// C library, outside the collected heap).
///
/// # Safety
/// As `getcwd(3)`.
#[no_mangle]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, n: size_t) -> *mut c_char {
    let f = real!(c"getcwd": fn(*mut c_char, size_t) -> *mut c_char);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(buf, n) })
}
