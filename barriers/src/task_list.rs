//! Lists the threads of this process from `/proc/self/task` with raw
//! `getdents64` into a stack buffer: finds threads that never registered
//! (a thread that never allocated may still hold a pointer) without
//! allocating.

use crate::sys;

/// Calls `f` with the thread id of every thread of the process. Returns
/// `false` if `/proc/self/task` cannot be read (no procfs): then nothing is
/// listed and the caller must fall back to the registry.
pub fn for_each_thread_id(mut f: impl FnMut(i32)) -> bool {
    let Some(fd) = sys::open_readonly(c"/proc/self/task", true) else {
        return false;
    };
    #[repr(C, align(8))]
    struct DirentBuffer([u8; 4096]);
    let mut buf = DirentBuffer([0; 4096]);
    let mut ok = true;
    loop {
        // SAFETY: `buf` is a writable buffer of the given size, aligned for
        // linux_dirent64 records.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.0.as_mut_ptr(), buf.0.len()) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            ok = false;
            break;
        }
        if n == 0 {
            break;
        }
        let filled = &buf.0[..n as usize];
        let mut offset = 0usize;
        // linux_dirent64: u64 d_ino, i64 d_off, u16 d_reclen, u8 d_type, name.
        while offset + 19 <= filled.len() {
            let reclen = usize::from(u16::from_ne_bytes([
                filled[offset + 16],
                filled[offset + 17],
            ]));
            if reclen == 0 || offset + reclen > filled.len() {
                break;
            }
            let name = &filled[offset + 19..offset + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            if let Some(tid) = sys::parse_decimal(name) {
                if let Ok(tid) = i32::try_from(tid) {
                    f(tid);
                }
            }
            offset += reclen;
        }
    }
    sys::close(fd);
    ok
}

/// Reads a small `/proc/self/task/<tid>/<file>` into `buf`; returns the
/// length read.
fn read_task_file(tid: i32, file: &[u8], buf: &mut [u8]) -> Option<usize> {
    let mut path = sys::StackText::<64>::new();
    path.push(b"/proc/self/task/")
        .push_int(i64::from(tid))
        .push(b"/")
        .push(file)
        .push(b"\0");
    let path = core::ffi::CStr::from_bytes_with_nul(path.as_bytes()).ok()?;
    let fd = sys::open_readonly(path, false)?;
    let mut len = 0;
    while len < buf.len() {
        match sys::read(fd, &mut buf[len..]) {
            Some(0) | None => break,
            Some(n) => len += n,
        }
    }
    sys::close(fd);
    Some(len)
}

/// The start time of thread `tid` (field 22 of its `stat`, in clock ticks
/// since boot): with the tid it identifies a thread even across tid reuse.
pub fn thread_start_time(tid: i32) -> Option<u64> {
    let mut buf = [0u8; 1024];
    let len = read_task_file(tid, b"stat", &mut buf)?;
    let text = &buf[..len];
    // The command name may contain spaces and parentheses: fields resume
    // after the last ')'. Field 3 (state) comes first; field 22 is 19 later.
    let after_name = text.iter().rposition(|&b| b == b')')? + 1;
    let field = text[after_name..]
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(19)?;
    sys::parse_decimal(field)
}

/// The signal mask of thread `tid` (bit `n - 1` set: signal `n` blocked),
/// from the `SigBlk:` line of `/proc/self/task/<tid>/status`. `None` if it
/// cannot be read.
pub fn thread_signal_mask(tid: i32) -> Option<u64> {
    thread_status(tid).map(|s| s.signal_mask)
}

/// What `/proc/self/task/<tid>/status` says about a thread, read at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// `SigBlk:` (bit `n - 1` set: signal `n` blocked).
    pub signal_mask: u64,
    /// The `State:` letter (`R` running, `S` sleeping, `D` disk sleep...).
    pub state: u8,
}

/// The signal mask and scheduling state of thread `tid`, from one read of
/// its `status` file. `None` if it cannot be read.
pub fn thread_status(tid: i32) -> Option<TaskStatus> {
    let mut buf = [0u8; 4096];
    let len = read_task_file(tid, b"status", &mut buf)?;
    parse_status(&buf[..len])
}

/// The thread's name (`comm`, at most 15 bytes) into `out`; returns its
/// length (0 if it cannot be read).
pub fn thread_name(tid: i32, out: &mut [u8; 16]) -> usize {
    let len = read_task_file(tid, b"comm", out).unwrap_or(0);
    out[..len].iter().position(|&b| b == b'\n').unwrap_or(len)
}

/// Extracts the mask and the state from the text of a `status` file.
fn parse_status(text: &[u8]) -> Option<TaskStatus> {
    let key = b"State:";
    let at = text.windows(key.len()).position(|w| w == key)?;
    let rest = &text[at + key.len()..];
    let state = *rest.iter().find(|b| !b.is_ascii_whitespace())?;
    Some(TaskStatus {
        signal_mask: parse_sigblk(text)?,
        state,
    })
}

/// Extracts the `SigBlk:` mask from the text of a `status` file.
fn parse_sigblk(text: &[u8]) -> Option<u64> {
    let key = b"SigBlk:";
    let at = text.windows(key.len()).position(|w| w == key)?;
    let rest = &text[at + key.len()..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    sys::parse_hex(&rest[..end]).map(|m| m as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigblk_line_is_parsed() {
        let text = b"Name:\tx\nSigPnd:\t0000000000000000\nSigBlk:\t0000000020000200\nSigIgn:\t0\n";
        let mask = parse_sigblk(text).unwrap();
        assert_eq!(mask, (1 << (30 - 1)) | (1 << (10 - 1)));
        assert_eq!(parse_sigblk(b"SigPnd:\t0\n"), None);
        let status = parse_status(b"Name:\tx\nState:\tS (sleeping)\nSigBlk:\t0000000000000200\n");
        assert_eq!(
            status,
            Some(TaskStatus {
                signal_mask: 1 << (10 - 1),
                state: b'S'
            })
        );
    }

    #[test]
    fn own_name_and_state_are_read() {
        let me = sys::gettid();
        let mut name = [0u8; 16];
        let len = thread_name(me, &mut name);
        assert!(
            len > 0 && !name[..len].contains(&b'\n'),
            "{:?}",
            &name[..len]
        );
        // The calling thread is running while it reads its own status.
        assert_eq!(thread_status(me).map(|s| s.state), Some(b'R'));
    }

    #[test]
    fn own_thread_is_listed_and_its_mask_read() {
        let me = sys::gettid();
        let mut found = false;
        assert!(for_each_thread_id(|tid| found |= tid == me));
        assert!(found, "own tid {me} not listed in /proc/self/task");
        // SAFETY: all-zero sigset_t is valid storage; we block and restore SIGUSR2.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            let mut old: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            let mask = thread_signal_mask(me).unwrap();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
            assert_ne!(mask & (1 << (libc::SIGUSR2 - 1)), 0, "mask {mask:#x}");
        }
        let start = thread_start_time(me).expect("own start time");
        assert_eq!(thread_start_time(me), Some(start));
    }
}
