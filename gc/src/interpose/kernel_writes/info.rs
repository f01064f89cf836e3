//! File-status calls (`stat`, `fstat`, `lstat`, `fstatat`, their `64`
//! names, `statx`), whose result structure may live in the collected heap,
//! and the `_FORTIFY_SOURCE` entry points (`__read_chk`, ...) that C code
//! compiled with fortification calls instead of `read` and friends.

use super::{add_object, add_sockaddr, empty_sigset, with_pins};
use crate::interpose::open_collector_signals;
use libc::{
    c_char, c_int, c_uint, c_void, nfds_t, off64_t, off_t, pollfd, sigset_t, size_t, sockaddr,
    socklen_t, ssize_t, timespec,
};
use std::mem::size_of;

/// `stat(2)` with the result pinned.
///
/// # Safety
/// As `stat(2)`.
#[no_mangle]
pub unsafe extern "C" fn stat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    let f = real!(c"stat": fn(*const c_char, *mut libc::stat) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(path, buf) })
}

/// `stat64` with the result pinned.
///
/// # Safety
/// As `stat(2)`.
#[no_mangle]
pub unsafe extern "C" fn stat64(path: *const c_char, buf: *mut libc::stat64) -> c_int {
    let f = real!(c"stat64": fn(*const c_char, *mut libc::stat64) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(path, buf) })
}

/// `lstat(2)` with the result pinned.
///
/// # Safety
/// As `lstat(2)`.
#[no_mangle]
pub unsafe extern "C" fn lstat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    let f = real!(c"lstat": fn(*const c_char, *mut libc::stat) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(path, buf) })
}

/// `lstat64` with the result pinned.
///
/// # Safety
/// As `lstat(2)`.
#[no_mangle]
pub unsafe extern "C" fn lstat64(path: *const c_char, buf: *mut libc::stat64) -> c_int {
    let f = real!(c"lstat64": fn(*const c_char, *mut libc::stat64) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(path, buf) })
}

/// `fstat(2)` with the result pinned.
///
/// # Safety
/// As `fstat(2)`.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    let f = real!(c"fstat": fn(c_int, *mut libc::stat) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(fd, buf) })
}

/// `fstat64` with the result pinned.
///
/// # Safety
/// As `fstat(2)`.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int {
    let f = real!(c"fstat64": fn(c_int, *mut libc::stat64) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(fd, buf) })
}

/// `fstatat(2)` with the result pinned.
///
/// # Safety
/// As `fstatat(2)`.
#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    let f = real!(c"fstatat": fn(c_int, *const c_char, *mut libc::stat, c_int) -> c_int);
    with_pins(
        |add| add_object(add, buf),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(dirfd, path, buf, flags) },
    )
}

/// `fstatat64` with the result pinned.
///
/// # Safety
/// As `fstatat(2)`.
#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat64,
    flags: c_int,
) -> c_int {
    let f = real!(c"fstatat64": fn(c_int, *const c_char, *mut libc::stat64, c_int) -> c_int);
    with_pins(
        |add| add_object(add, buf),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(dirfd, path, buf, flags) },
    )
}

/// `statx(2)` with the result pinned.
///
/// # Safety
/// As `statx(2)`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    let f = real!(c"statx": fn(c_int, *const c_char, c_int, c_uint, *mut libc::statx) -> c_int);
    with_pins(
        |add| add_object(add, buf),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(dirfd, path, flags, mask, buf) },
    )
}

// ---- _FORTIFY_SOURCE entry points -------------------------------------

/// `__read_chk` (fortified `read`) with the buffer pinned.
///
/// # Safety
/// As `read(2)`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    let f = real!(c"__read_chk": fn(c_int, *mut c_void, size_t, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(buf as usize, n),
        || unsafe { f(fd, buf, n, buflen) },
    )
}

/// `__pread_chk` (fortified `pread`) with the buffer pinned.
///
/// # Safety
/// As `pread(2)`.
#[no_mangle]
pub unsafe extern "C" fn __pread_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    off: off_t,
    buflen: size_t,
) -> ssize_t {
    let f = real!(c"__pread_chk": fn(c_int, *mut c_void, size_t, off_t, size_t) -> ssize_t);
    with_pins(
        |add| add(buf as usize, n),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, buf, n, off, buflen) },
    )
}

/// `__pread64_chk` (fortified `pread64`) with the buffer pinned.
///
/// # Safety
/// As `pread(2)`.
#[no_mangle]
pub unsafe extern "C" fn __pread64_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    off: off64_t,
    buflen: size_t,
) -> ssize_t {
    let f = real!(c"__pread64_chk": fn(c_int, *mut c_void, size_t, off64_t, size_t) -> ssize_t);
    with_pins(
        |add| add(buf as usize, n),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, buf, n, off, buflen) },
    )
}

/// `__recv_chk` (fortified `recv`) with the buffer pinned.
///
/// # Safety
/// As `recv(2)`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    let f = real!(c"__recv_chk": fn(c_int, *mut c_void, size_t, size_t, c_int) -> ssize_t);
    with_pins(
        |add| add(buf as usize, n),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, buf, n, buflen, flags) },
    )
}

/// `__recvfrom_chk` (fortified `recvfrom`) with the buffer and address pinned.
///
/// # Safety
/// As `recvfrom(2)`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    let f = real!(c"__recvfrom_chk": fn(c_int, *mut c_void, size_t, size_t, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t);
    with_pins(
        |add| {
            add(buf as usize, n);
            // SAFETY: the caller's address length is readable.
            unsafe { add_sockaddr(add, addr.cast(), addrlen) };
        },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, buf, n, buflen, flags, addr, addrlen) },
    )
}

/// `__readlink_chk` (fortified `readlink`) with the buffer pinned.
///
/// # Safety
/// As `readlink(2)`.
#[no_mangle]
pub unsafe extern "C" fn __readlink_chk(
    path: *const c_char,
    buf: *mut c_char,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    let f = real!(c"__readlink_chk": fn(*const c_char, *mut c_char, size_t, size_t) -> ssize_t);
    with_pins(
        |add| add(buf as usize, n),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(path, buf, n, buflen) },
    )
}

/// `__readlinkat_chk` (fortified `readlinkat`) with the buffer pinned.
///
/// # Safety
/// As `readlinkat(2)`.
#[no_mangle]
pub unsafe extern "C" fn __readlinkat_chk(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    let f = real!(c"__readlinkat_chk": fn(c_int, *const c_char, *mut c_char, size_t, size_t) -> ssize_t);
    with_pins(
        |add| add(buf as usize, n),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(dirfd, path, buf, n, buflen) },
    )
}

/// `__getcwd_chk` (fortified `getcwd`) with the buffer pinned.
///
/// # Safety
/// As `getcwd(3)`.
#[no_mangle]
pub unsafe extern "C" fn __getcwd_chk(buf: *mut c_char, n: size_t, buflen: size_t) -> *mut c_char {
    let f = real!(c"__getcwd_chk": fn(*mut c_char, size_t, size_t) -> *mut c_char);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add(buf as usize, n), || unsafe { f(buf, n, buflen) })
}

/// `__poll_chk` (fortified `poll`) with the descriptor array pinned.
///
/// # Safety
/// As `poll(2)`.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    let f = real!(c"__poll_chk": fn(*mut pollfd, nfds_t, c_int, size_t) -> c_int);
    with_pins(
        |add| add(fds as usize, n as usize * size_of::<pollfd>()),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fds, n, timeout, fdslen) },
    )
}

/// `__ppoll_chk` (fortified `ppoll`) with the descriptor array pinned and
/// the collector's signals left open.
///
/// # Safety
/// As `ppoll(2)`.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    let f = real!(c"__ppoll_chk": fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t, size_t) -> c_int);
    let mut scratch = empty_sigset();
    // SAFETY: the caller's mask is null or valid.
    let mask = unsafe { open_collector_signals(mask, &mut scratch) };
    with_pins(
        |add| add(fds as usize, n as usize * size_of::<pollfd>()),
        // SAFETY: forwarding the caller's arguments (mask filtered).
        || unsafe { f(fds, n, timeout, mask, fdslen) },
    )
}
