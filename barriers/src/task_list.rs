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
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.0.as_mut_ptr(),
                buf.0.len(),
            )
        };
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
            let reclen = usize::from(u16::from_ne_bytes([filled[offset + 16], filled[offset + 17]]));
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

/// Whether thread `tid` currently blocks `signal`, from the `SigBlk:` line of
/// `/proc/self/task/<tid>/status`. `None` if it cannot be read.
pub fn thread_blocks_signal(tid: i32, signal: i32) -> Option<bool> {
    let mut path = sys::StackText::<64>::new();
    path.push(b"/proc/self/task/")
        .push_int(i64::from(tid))
        .push(b"/status\0");
    let path = core::ffi::CStr::from_bytes_with_nul(path.as_bytes()).ok()?;
    let fd = sys::open_readonly(path, false)?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match sys::read(fd, &mut buf[len..]) {
            Some(0) | None => break,
            Some(n) => len += n,
        }
    }
    sys::close(fd);
    let text = &buf[..len];
    let key = b"SigBlk:";
    let at = text.windows(key.len()).position(|w| w == key)?;
    let rest = &text[at + key.len()..];
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_whitespace())?..];
    let end = rest.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(rest.len());
    let digits = &rest[..end];
    // The mask is printed as 16 hex digits, most significant first; bit
    // (signal - 1) is the signal.
    let bit = (signal - 1) as usize;
    let digit_index = digits.len().checked_sub(1 + bit / 4)?;
    let nibble = sys::parse_hex(&digits[digit_index..digit_index + 1])?;
    Some(nibble & (1 << (bit % 4)) != 0)
}
