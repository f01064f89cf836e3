//! Socket calls whose results the kernel writes into the program's memory:
//! received data (`recv`, `recvfrom`, `recvmsg`, `recvmmsg`: buffers,
//! addresses, control data and the headers themselves), peer and local
//! addresses (`accept`, `accept4`, `getsockname`, `getpeername`), option
//! values (`getsockopt`), and new descriptor pairs (`pipe`, `pipe2`,
//! `socketpair`).

use super::{add_msghdr_buffers, add_object, add_sockaddr, with_pins, Add, UIO_MAXIOV};
use libc::{
    c_int, c_uint, c_void, mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t, timespec,
};
use std::mem::size_of;

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
