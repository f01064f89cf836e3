//! System-information calls whose answer the kernel writes into a
//! structure the program passes (`uname`, `sysinfo`, `getrusage`,
//! `getrlimit`, `prlimit`, `clock_gettime`/`clock_getres` when they leave
//! the vDSO, `sched_getaffinity`), extended attributes (`getxattr` and
//! `listxattr` families), `process_vm_readv` (the local iovecs) and
//! `ioctl` (requests that encode a read size, plus a few classic terminal
//! and socket ones).

use super::{add_iovecs, add_object, with_pins, Add};
use libc::{
    c_char, c_int, c_ulong, c_void, clockid_t, iovec, pid_t, rlimit, rlimit64, rusage, size_t,
    ssize_t, timespec,
};

/// `uname(2)` with the result pinned.
///
/// # Safety
/// As `uname(2)`.
#[no_mangle]
pub unsafe extern "C" fn uname(buf: *mut libc::utsname) -> c_int {
    let f = real!(c"uname": fn(*mut libc::utsname) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, buf), || unsafe { f(buf) })
}

/// `sysinfo(2)` with the result pinned.
///
/// # Safety
/// As `sysinfo(2)`.
#[no_mangle]
pub unsafe extern "C" fn sysinfo(info: *mut libc::sysinfo) -> c_int {
    let f = real!(c"sysinfo": fn(*mut libc::sysinfo) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, info), || unsafe { f(info) })
}

/// `getrusage(2)` with the result pinned.
///
/// # Safety
/// As `getrusage(2)`.
#[no_mangle]
pub unsafe extern "C" fn getrusage(who: c_int, usage: *mut rusage) -> c_int {
    let f = real!(c"getrusage": fn(c_int, *mut rusage) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, usage), || unsafe { f(who, usage) })
}

/// `getrlimit(2)` with the result pinned.
///
/// # Safety
/// As `getrlimit(2)`.
#[no_mangle]
pub unsafe extern "C" fn getrlimit(
    resource: libc::__rlimit_resource_t,
    rlim: *mut rlimit,
) -> c_int {
    let f = real!(c"getrlimit": fn(libc::__rlimit_resource_t, *mut rlimit) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, rlim), || unsafe { f(resource, rlim) })
}

/// `getrlimit64` with the result pinned.
///
/// # Safety
/// As `getrlimit(2)`.
#[no_mangle]
pub unsafe extern "C" fn getrlimit64(
    resource: libc::__rlimit_resource_t,
    rlim: *mut rlimit64,
) -> c_int {
    let f = real!(c"getrlimit64": fn(libc::__rlimit_resource_t, *mut rlimit64) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, rlim), || unsafe { f(resource, rlim) })
}

/// `prlimit(2)` with the old limit pinned.
///
/// # Safety
/// As `prlimit(2)`.
#[no_mangle]
pub unsafe extern "C" fn prlimit(
    pid: pid_t,
    resource: libc::__rlimit_resource_t,
    new: *const rlimit,
    old: *mut rlimit,
) -> c_int {
    let f = real!(c"prlimit": fn(pid_t, libc::__rlimit_resource_t, *const rlimit, *mut rlimit) -> c_int);
    with_pins(
        |add| add_object(add, old),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, resource, new, old) },
    )
}

/// `prlimit64` with the old limit pinned.
///
/// # Safety
/// As `prlimit(2)`.
#[no_mangle]
pub unsafe extern "C" fn prlimit64(
    pid: pid_t,
    resource: libc::__rlimit_resource_t,
    new: *const rlimit64,
    old: *mut rlimit64,
) -> c_int {
    let f = real!(c"prlimit64": fn(pid_t, libc::__rlimit_resource_t, *const rlimit64, *mut rlimit64) -> c_int);
    with_pins(
        |add| add_object(add, old),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, resource, new, old) },
    )
}

/// `clock_gettime(2)` with the result pinned (the vDSO answers most clocks
/// from user space; CPU-time clocks take the system call).
///
/// # Safety
/// As `clock_gettime(2)`.
#[no_mangle]
pub unsafe extern "C" fn clock_gettime(clock: clockid_t, tp: *mut timespec) -> c_int {
    let f = real!(c"clock_gettime": fn(clockid_t, *mut timespec) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, tp), || unsafe { f(clock, tp) })
}

/// `clock_getres(2)` with the result pinned.
///
/// # Safety
/// As `clock_getres(2)`.
#[no_mangle]
pub unsafe extern "C" fn clock_getres(clock: clockid_t, res: *mut timespec) -> c_int {
    let f = real!(c"clock_getres": fn(clockid_t, *mut timespec) -> c_int);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, res), || unsafe { f(clock, res) })
}

/// `sched_getaffinity(2)` with the CPU set pinned.
///
/// # Safety
/// As `sched_getaffinity(2)`.
#[no_mangle]
pub unsafe extern "C" fn sched_getaffinity(
    pid: pid_t,
    size: size_t,
    set: *mut libc::cpu_set_t,
) -> c_int {
    let f = real!(c"sched_getaffinity": fn(pid_t, size_t, *mut libc::cpu_set_t) -> c_int);
    with_pins(
        |add| add(set as usize, size),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, size, set) },
    )
}

/// `getxattr(2)` with the value pinned.
///
/// # Safety
/// As `getxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn getxattr(
    path: *const c_char,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    let f = real!(c"getxattr": fn(*const c_char, *const c_char, *mut c_void, size_t) -> ssize_t);
    with_pins(
        |add| add(value as usize, size),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(path, name, value, size) },
    )
}

/// `lgetxattr(2)` with the value pinned.
///
/// # Safety
/// As `lgetxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn lgetxattr(
    path: *const c_char,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    let f = real!(c"lgetxattr": fn(*const c_char, *const c_char, *mut c_void, size_t) -> ssize_t);
    with_pins(
        |add| add(value as usize, size),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(path, name, value, size) },
    )
}

/// `fgetxattr(2)` with the value pinned.
///
/// # Safety
/// As `fgetxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn fgetxattr(
    fd: c_int,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    let f = real!(c"fgetxattr": fn(c_int, *const c_char, *mut c_void, size_t) -> ssize_t);
    with_pins(
        |add| add(value as usize, size),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, name, value, size) },
    )
}

/// `listxattr(2)` with the list pinned.
///
/// # Safety
/// As `listxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn listxattr(
    path: *const c_char,
    list: *mut c_char,
    size: size_t,
) -> ssize_t {
    let f = real!(c"listxattr": fn(*const c_char, *mut c_char, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(list as usize, size),
        || unsafe { f(path, list, size) },
    )
}

/// `llistxattr(2)` with the list pinned.
///
/// # Safety
/// As `llistxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn llistxattr(
    path: *const c_char,
    list: *mut c_char,
    size: size_t,
) -> ssize_t {
    let f = real!(c"llistxattr": fn(*const c_char, *mut c_char, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(list as usize, size),
        || unsafe { f(path, list, size) },
    )
}

/// `flistxattr(2)` with the list pinned.
///
/// # Safety
/// As `flistxattr(2)`.
#[no_mangle]
pub unsafe extern "C" fn flistxattr(fd: c_int, list: *mut c_char, size: size_t) -> ssize_t {
    let f = real!(c"flistxattr": fn(c_int, *mut c_char, size_t) -> ssize_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(
        |add| add(list as usize, size),
        || unsafe { f(fd, list, size) },
    )
}

/// `process_vm_readv(2)` with the local iovecs pinned.
///
/// # Safety
/// As `process_vm_readv(2)`.
#[no_mangle]
pub unsafe extern "C" fn process_vm_readv(
    pid: pid_t,
    local: *const iovec,
    local_cnt: c_ulong,
    remote: *const iovec,
    remote_cnt: c_ulong,
    flags: c_ulong,
) -> ssize_t {
    let f = real!(c"process_vm_readv": fn(pid_t, *const iovec, c_ulong, *const iovec, c_ulong, c_ulong) -> ssize_t);
    with_pins(
        // SAFETY: the caller passes `local_cnt` readable iovecs.
        |add| unsafe { add_iovecs(add, local, local_cnt as usize) },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, local, local_cnt, remote, remote_cnt, flags) },
    )
}

/// Classic `ioctl` requests (no size encoded) that write through their
/// pointer argument, with the size they write.
const CLASSIC_READ_IOCTLS: [(c_ulong, usize); 6] = [
    (0x541B, 4),  // FIONREAD / TIOCINQ: int
    (0x5411, 4),  // TIOCOUTQ: int
    (0x5413, 8),  // TIOCGWINSZ: struct winsize
    (0x540F, 4),  // TIOCGPGRP: pid_t
    (0x5429, 4),  // TIOCGSID: pid_t
    (0x5401, 60), // TCGETS: struct termios (glibc's layout, larger than the kernel's)
];

/// Name what `ioctl(request, arg)` writes: `arg`'s size when the request
/// encodes a read direction (`_IOR`, `_IOWR`), or a classic request's size.
pub(super) fn add_ioctl(add: Add, request: c_ulong, arg: usize) {
    if arg == 0 {
        return;
    }
    let request = request & 0xFFFF_FFFF;
    let dir = request >> 30;
    let size = ((request >> 16) & 0x3FFF) as usize;
    if dir & 2 != 0 && size != 0 {
        add(arg, size);
    } else if let Some(&(_, size)) = CLASSIC_READ_IOCTLS.iter().find(|(r, _)| *r == request) {
        add(arg, size);
    }
}

/// `ioctl(2)`, variadic in C: on x86-64 the third (pointer or integer)
/// argument arrives in the register a fixed third parameter uses. Pins what
/// [`add_ioctl`] names.
///
/// # Safety
/// As `ioctl(2)`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let f = real!(c"ioctl": fn(c_int, c_ulong, *mut c_void) -> c_int);
    with_pins(
        |add| add_ioctl(add, request, arg as usize),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fd, request, arg) },
    )
}
