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
//! `__readlinkat_chk`, `__getcwd_chk`, `__poll_chk`, `__ppoll_chk`, and
//! the same system calls made through `syscall()` (module `syscall`).
//! Calls that take a signal mask pass it through
//! [`super::open_collector_signals`] so the collector's suspend signal is
//! never blocked while they wait.
//!
//! Not covered (they do not come through the C library's exported
//! symbols): raw `syscall` instructions (rustix's `linux_raw` backend, Go-
//! or assembly-style code), io_uring, POSIX AIO completions, writes by
//! another process (`process_vm_writev`, ptrace), and the C library's
//! internal calls (`fread`, `readdir`, `getaddrinfo`, ... into buffers the
//! program passed; they use hidden aliases).
//!
//! The wrappers never allocate, preserve `errno`, and read the program's
//! `iovec`/`msghdr` arrays only when tracking is on (a wild pointer there
//! then faults in the wrapper instead of failing with `EFAULT`).

use libc::{
    c_char, c_int, c_uint, c_void, iovec, mmsghdr, msghdr, off64_t, off_t, sigset_t, size_t,
    sockaddr, socklen_t, ssize_t, timespec,
};
use oohgc_dirty::mprotect::{any_tracked, KernelWrite};
use std::mem::size_of;

/// The real function `name` with the given C signature.
macro_rules! real {
    ($name:literal: fn($($arg:ty),*) -> $ret:ty) => {{
        static REAL: crate::interpose::RealFn = crate::interpose::RealFn::new($name);
        let p = REAL.get();
        // SAFETY: `p` is the C library's definition of this symbol, whose C
        // signature is the one written here.
        unsafe {
            std::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn($($arg),*) -> $ret>(p)
        }
    }};
}

mod info;
mod syscall;
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
    let pin = KernelWrite::begin_with(visit);
    set_errno(before);
    let r = call();
    let saved = errno();
    drop(pin);
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

// ---- sockets -------------------------------------------------------------

/// `recv(2)` with the buffer pinned.
///
/// # Safety
/// As `recv(2)`.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    let f = real!(c"recv": fn(c_int, *mut c_void, size_t, c_int) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(buf as usize, n),
        || unsafe { f(fd, buf, n, flags) },
    )
}

/// `recvfrom(2)` with the buffer and the address pinned.
///
/// # Safety
/// As `recvfrom(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    let f = real!(c"recvfrom": fn(c_int, *mut c_void, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t);
    with_pins(
        |add| {
            add(buf as usize, n);
            // SAFETY: the caller's address length is readable.
            unsafe { add_sockaddr(add, addr.cast(), addrlen) };
        },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, buf, n, flags, addr, addrlen) },
    )
}

/// `recvmsg(2)` with the `msghdr`, its address, control buffer and iovecs pinned.
///
/// # Safety
/// As `recvmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let f = real!(c"recvmsg": fn(c_int, *mut msghdr, c_int) -> ssize_t);
    with_pins(
        |add| {
            add_object(add, msg);
            // SAFETY: the caller's msghdr is readable.
            unsafe { add_msghdr_buffers(add, msg) };
        },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, msg, flags) },
    )
}

/// Name what `recvmmsg` writes: the `mmsghdr` array (headers and lengths),
/// every message's buffers, and the timeout (updated by the kernel).
///
/// # Safety
/// `vec` is null or points at `vlen` readable `mmsghdr`s.
pub(super) unsafe fn add_mmsghdrs(
    add: Add,
    vec: *mut mmsghdr,
    vlen: usize,
    timeout: *mut timespec,
) {
    if vec.is_null() {
        return;
    }
    let vlen = vlen.min(UIO_MAXIOV);
    add(vec as usize, vlen * size_of::<mmsghdr>());
    for i in 0..vlen {
        // SAFETY: per the contract.
        unsafe { add_msghdr_buffers(add, &(*vec.add(i)).msg_hdr) };
    }
    add_object(add, timeout);
}

/// `recvmmsg(2)` with every message's buffers pinned.
///
/// # Safety
/// As `recvmmsg(2)`.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    vec: *mut mmsghdr,
    vlen: c_uint,
    flags: c_int,
    timeout: *mut timespec,
) -> c_int {
    let f = real!(c"recvmmsg": fn(c_int, *mut mmsghdr, c_uint, c_int, *mut timespec) -> c_int);
    with_pins(
        // SAFETY: the caller passes `vlen` readable headers.
        |add| unsafe { add_mmsghdrs(add, vec, vlen as usize, timeout) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, vec, vlen, flags, timeout) },
    )
}

/// `accept(2)` with the address pinned.
///
/// # Safety
/// As `accept(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let f = real!(c"accept": fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int);
    with_pins(
        // SAFETY: the caller's length is readable.
        |add| unsafe { add_sockaddr(add, addr.cast(), len) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, addr, len) },
    )
}

/// `accept4(2)` with the address pinned.
///
/// # Safety
/// As `accept4(2)`.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let f = real!(c"accept4": fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int);
    with_pins(
        // SAFETY: the caller's length is readable.
        |add| unsafe { add_sockaddr(add, addr.cast(), len) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, addr, len, flags) },
    )
}

/// `getsockname(2)` with the address pinned.
///
/// # Safety
/// As `getsockname(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let f = real!(c"getsockname": fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int);
    with_pins(
        // SAFETY: the caller's length is readable.
        |add| unsafe { add_sockaddr(add, addr.cast(), len) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, addr, len) },
    )
}

/// `getpeername(2)` with the address pinned.
///
/// # Safety
/// As `getpeername(2)`.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let f = real!(c"getpeername": fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int);
    with_pins(
        // SAFETY: the caller's length is readable.
        |add| unsafe { add_sockaddr(add, addr.cast(), len) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, addr, len) },
    )
}

/// `getsockopt(2)` with the value and its length pinned.
///
/// # Safety
/// As `getsockopt(2)`.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let f = real!(c"getsockopt": fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int);
    with_pins(
        // SAFETY: the caller's length is readable.
        |add| unsafe { add_sockaddr(add, val, len) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, level, name, val, len) },
    )
}

/// `pipe(2)` with the descriptor pair pinned.
///
/// # Safety
/// As `pipe(2)`.
#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    let f = real!(c"pipe": fn(*mut c_int) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(fds as usize, 8), || unsafe { f(fds) })
}

/// `pipe2(2)` with the descriptor pair pinned.
///
/// # Safety
/// As `pipe2(2)`.
#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    let f = real!(c"pipe2": fn(*mut c_int, c_int) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(fds as usize, 8), || unsafe { f(fds, flags) })
}

/// `socketpair(2)` with the descriptor pair pinned.
///
/// # Safety
/// As `socketpair(2)`.
#[no_mangle]
pub unsafe extern "C" fn socketpair(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int {
    let f = real!(c"socketpair": fn(c_int, c_int, c_int, *mut c_int) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(sv as usize, 8), || unsafe { f(d, t, p, sv) })
}
