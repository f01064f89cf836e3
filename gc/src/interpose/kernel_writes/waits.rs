//! The waiting calls that the kernel answers by writing into the program's
//! memory: `epoll_wait` and friends (the event array), `poll`/`ppoll` (the
//! `revents`), `select`/`pselect` (the descriptor sets, and `select`'s
//! timeout), and the `wait` family (status, `rusage`, `siginfo`). Those
//! taking a signal mask get it without the collector's signals.

use super::{add_fd_set, add_object, empty_sigset, with_pins};
use crate::interpose::open_collector_signals;
use libc::{
    c_int, epoll_event, id_t, idtype_t, nfds_t, pid_t, pollfd, rusage, siginfo_t, sigset_t,
    timespec, timeval,
};
use std::mem::size_of;

fn events_len(max: c_int) -> usize {
    max.max(0) as usize * size_of::<epoll_event>()
}

/// `epoll_wait(2)` with the event array pinned.
///
/// # Safety
/// As `epoll_wait(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    ep: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    let f = real!(c"epoll_wait": fn(c_int, *mut epoll_event, c_int, c_int) -> c_int);
    with_pins(
        |add| add(events as usize, events_len(max)),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(ep, events, max, timeout) },
    )
}

/// `epoll_pwait(2)` with the event array pinned and the collector's
/// signals left open.
///
/// # Safety
/// As `epoll_pwait(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    ep: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    let f =
        real!(c"epoll_pwait": fn(c_int, *mut epoll_event, c_int, c_int, *const sigset_t) -> c_int);
    let mut scratch = empty_sigset();
    // SAFETY: the caller's mask is null or valid.
    let mask = unsafe { open_collector_signals(mask, &mut scratch) };
    with_pins(
        |add| add(events as usize, events_len(max)),
        // SAFETY: forwarding the caller's arguments (mask filtered).
        || unsafe { f(ep, events, max, timeout, mask) },
    )
}

/// `epoll_pwait2(2)` with the event array pinned and the collector's
/// signals left open.
///
/// # Safety
/// As `epoll_pwait2(2)`.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    ep: c_int,
    events: *mut epoll_event,
    max: c_int,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let f = real!(c"epoll_pwait2": fn(c_int, *mut epoll_event, c_int, *const timespec, *const sigset_t) -> c_int);
    let mut scratch = empty_sigset();
    // SAFETY: the caller's mask is null or valid.
    let mask = unsafe { open_collector_signals(mask, &mut scratch) };
    with_pins(
        |add| add(events as usize, events_len(max)),
        // SAFETY: forwarding the caller's arguments (mask filtered).
        || unsafe { f(ep, events, max, timeout, mask) },
    )
}

/// `poll(2)` with the descriptor array pinned (`revents`).
///
/// # Safety
/// As `poll(2)`.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    let f = real!(c"poll": fn(*mut pollfd, nfds_t, c_int) -> c_int);
    with_pins(
        |add| add(fds as usize, n as usize * size_of::<pollfd>()),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(fds, n, timeout) },
    )
}

/// `ppoll(2)` with the descriptor array pinned and the collector's signals
/// left open.
///
/// # Safety
/// As `ppoll(2)`.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let f = real!(c"ppoll": fn(*mut pollfd, nfds_t, *const timespec, *const sigset_t) -> c_int);
    let mut scratch = empty_sigset();
    // SAFETY: the caller's mask is null or valid.
    let mask = unsafe { open_collector_signals(mask, &mut scratch) };
    with_pins(
        |add| add(fds as usize, n as usize * size_of::<pollfd>()),
        // SAFETY: forwarding the caller's arguments (mask filtered).
        || unsafe { f(fds, n, timeout, mask) },
    )
}

/// `select(2)` with the descriptor sets and the timeout (Linux updates it) pinned.
///
/// # Safety
/// As `select(2)`.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *mut timeval,
) -> c_int {
    let f = real!(c"select": fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *mut timeval) -> c_int);
    with_pins(
        |add| {
            add_fd_set(add, r, nfds);
            add_fd_set(add, w, nfds);
            add_fd_set(add, e, nfds);
            add_object(add, timeout);
        },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(nfds, r, w, e, timeout) },
    )
}

/// `pselect(2)` with the descriptor sets pinned and the collector's signals
/// left open.
///
/// # Safety
/// As `pselect(2)`.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    let f = real!(c"pselect": fn(c_int, *mut libc::fd_set, *mut libc::fd_set, *mut libc::fd_set, *const timespec, *const sigset_t) -> c_int);
    let mut scratch = empty_sigset();
    // SAFETY: the caller's mask is null or valid.
    let mask = unsafe { open_collector_signals(mask, &mut scratch) };
    with_pins(
        |add| {
            add_fd_set(add, r, nfds);
            add_fd_set(add, w, nfds);
            add_fd_set(add, e, nfds);
        },
        // SAFETY: forwarding the caller's arguments (mask filtered).
        || unsafe { f(nfds, r, w, e, timeout, mask) },
    )
}

/// `wait(2)` with the status pinned.
///
/// # Safety
/// As `wait(2)`.
#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    let f = real!(c"wait": fn(*mut c_int) -> pid_t);
    // SAFETY: forwarding the caller's arguments.
    with_pins(|add| add_object(add, status), || unsafe { f(status) })
}

/// `waitpid(2)` with the status pinned.
///
/// # Safety
/// As `waitpid(2)`.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    let f = real!(c"waitpid": fn(pid_t, *mut c_int, c_int) -> pid_t);
    with_pins(
        |add| add_object(add, status),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, status, options) },
    )
}

/// `wait4(2)` with the status and the resource usage pinned.
///
/// # Safety
/// As `wait4(2)`.
#[no_mangle]
pub unsafe extern "C" fn wait4(
    pid: pid_t,
    status: *mut c_int,
    options: c_int,
    usage: *mut rusage,
) -> pid_t {
    let f = real!(c"wait4": fn(pid_t, *mut c_int, c_int, *mut rusage) -> pid_t);
    with_pins(
        |add| {
            add_object(add, status);
            add_object(add, usage);
        },
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(pid, status, options, usage) },
    )
}

/// `waitid(2)` with the `siginfo_t` pinned.
///
/// # Safety
/// As `waitid(2)`.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: idtype_t,
    id: id_t,
    info: *mut siginfo_t,
    options: c_int,
) -> c_int {
    let f = real!(c"waitid": fn(idtype_t, id_t, *mut siginfo_t, c_int) -> c_int);
    with_pins(
        |add| add_object(add, info),
        // SAFETY: forwarding the caller's arguments.
        || unsafe { f(idtype, id, info, options) },
    )
}
