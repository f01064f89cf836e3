//! Thin, allocation-free wrappers over the raw system interfaces this crate
//! needs: thread ids, `tgkill`, futexes, the monotonic clock, the thread
//! pointer, the stack pointer, callee-saved register spills, waiting for a
//! signal and writing a message to stderr.
//!
//! Everything here is async-signal-safe (plain syscalls and register reads),
//! so the suspend handler may use all of it.

use core::sync::atomic::AtomicU32;

/// The calling thread's kernel thread id.
#[inline]
pub fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The process id (thread group id).
#[inline]
pub fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// Sends `signal` to thread `tid` of this process. Returns the errno on
/// failure (`ESRCH`: the thread is gone). `signal == 0` only probes.
pub fn tgkill(tid: i32, signal: i32) -> Result<(), i32> {
    // SAFETY: tgkill only reads its integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, getpid(), tid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The calling thread's errno value.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns the thread's valid errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno value.
#[inline]
pub fn set_errno(value: i32) {
    // SAFETY: __errno_location always returns the thread's valid errno slot.
    unsafe { *libc::__errno_location() = value }
}

/// Waits while `*word == expected`, at most `timeout_ns` nanoseconds
/// (`None`: no limit). Spurious returns are possible; callers re-check.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: Option<u64>) {
    let timeout = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let timeout_ptr = timeout
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned u32; the timeout (if any) lives on this
    // stack frame for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            timeout_ptr,
        );
    }
}

/// Wakes up to `count` waiters on `word`.
pub fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE only uses its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        );
    }
}

/// Monotonic clock in nanoseconds (vDSO; async-signal-safe).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The thread pointer (`%fs` base on x86-64). glibc and musl store the TCB's
/// self pointer at `%fs:0`, so a plain load returns it.
#[inline(always)]
pub fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: `%fs:0` holds the TCB self pointer on every x86-64 Linux libc;
    // the load has no side effects.
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    tp
}

/// The current stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reading %rsp has no side effects.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// The x86-64 System V callee-saved registers: rbx, rbp, r12, r13, r14, r15.
pub type SpilledRegisters = [usize; 6];

/// Copies the callee-saved registers into `out`, so that pointers the caller's
/// callers keep in registers become visible in memory. Caller-saved registers
/// never hold values live across a call, so these six are all that matter.
#[inline(always)]
pub fn spill_callee_saved(out: &mut SpilledRegisters) {
    let base = out.as_mut_ptr();
    // SAFETY: `base` points to six writable, aligned words.
    unsafe {
        core::arch::asm!(
            "mov [{b}], rbx",
            "mov [{b} + 8], rbp",
            "mov [{b} + 16], r12",
            "mov [{b} + 24], r13",
            "mov [{b} + 32], r14",
            "mov [{b} + 40], r15",
            b = in(reg) base,
            options(nostack, preserves_flags)
        )
    };
}

/// Waits for a signal with `mask` as the thread's signal mask, through the
/// raw `rt_sigsuspend` system call: a program (oohgc itself) may interpose
/// the C library's `sigsuspend` and change the mask it is given, and the
/// suspend handler's wait must block exactly what it asks for.
pub fn sigsuspend_raw(mask: &libc::sigset_t) {
    // SAFETY: `mask` is a valid sigset_t whose first 8 bytes are the
    // kernel's 64-bit signal set (the size passed); the call only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigsuspend,
            mask as *const libc::sigset_t,
            KERNEL_SIGSET_BYTES,
        )
    };
}

/// Size of the kernel's signal set (64 signals) on Linux x86-64 and
/// aarch64, as the `rt_sig*` system calls expect it.
pub const KERNEL_SIGSET_BYTES: usize = 8;

/// Writes `bytes` to stderr with raw `write(2)` calls (no locking, no
/// allocation). Errors are ignored: this is only used for diagnostics.
pub fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid readable buffer of the given length.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// A fixed-capacity byte buffer for composing messages without allocating.
pub struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `text`, truncating if the buffer is full.
    pub fn push(&mut self, text: &[u8]) -> &mut Self {
        let room = N - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
        self
    }

    /// Appends the decimal form of `value`.
    pub fn push_int(&mut self, value: i64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let negative = value < 0;
        let mut v = value.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if negative {
            self.push(b"-");
        }
        self.push(&digits[i..])
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Default for StackText<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses a decimal, non-negative integer from ASCII digits.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    let mut value = 0u64;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(c - b'0');
    }
    Some(value)
}

/// Parses a hexadecimal integer from ASCII digits (as in `/proc/self/maps`).
pub fn parse_hex(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    let mut value = 0usize;
    for &c in text {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        value = (value << 4) | usize::from(digit);
    }
    Some(value)
}

/// Opens a NUL-terminated path read-only with raw `open(2)`; returns the fd.
pub fn open_readonly(path: &core::ffi::CStr, directory: bool) -> Option<i32> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | if directory { libc::O_DIRECTORY } else { 0 };
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    (fd >= 0).then_some(fd)
}

/// Closes a file descriptor opened by this module.
pub fn close(fd: i32) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Reads into `buf` with raw `read(2)`, retrying on EINTR. `None` on error.
pub fn read(fd: i32, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: `buf` is a valid writable buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        if errno() != libc::EINTR {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_and_print() {
        assert_eq!(parse_decimal(b"1234"), Some(1234));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"12a"), None);
        assert_eq!(parse_hex(b"7fffAb00"), Some(0x7fff_ab00));
        assert_eq!(parse_hex(b"xyz"), None);
        let mut text = StackText::<32>::new();
        text.push(b"tid ").push_int(-42).push(b" ").push_int(0);
        assert_eq!(text.as_bytes(), b"tid -42 0");
        let mut small = StackText::<4>::new();
        small.push(b"abcdef");
        assert_eq!(small.as_bytes(), b"abcd");
    }

    #[test]
    fn stack_and_thread_pointers_are_the_real_ones() {
        let local = 1u64;
        let address = &local as *const u64 as usize;
        let sp = stack_pointer();
        assert!(
            sp <= address && address - sp < 64 * 1024,
            "sp {sp:#x}, local {address:#x}"
        );
        let mut fs_base: libc::c_ulong = 0;
        // SAFETY: ARCH_GET_FS writes the fs base into the given location.
        let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x1003, &mut fs_base) };
        assert_eq!(rc, 0);
        assert_eq!(thread_pointer(), fs_base as usize);
        std::hint::black_box(&local);
    }
}
