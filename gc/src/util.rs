//! Leaf utilities of the collector: locking its static mutexes, one-line
//! diagnostics on stderr that never allocate, and the two ways of dying
//! (a configuration error, an internal invariant broken). It imports
//! nothing of the collector, so every module may use it without reaching
//! into the runtime state.

use std::fmt::{self, Write as _};

/// Lock one of the collector's static mutexes. A panic while it was held
/// (a user callback) does not make the collector give up the state.
pub(crate) fn lock<T>(m: &'static std::sync::Mutex<T>) -> std::sync::MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write one line to stderr without allocating (a fixed buffer; longer
/// lines are cut).
pub(crate) fn eprint_line(args: fmt::Arguments<'_>) {
    struct Buf {
        data: [u8; 1024],
        len: usize,
    }
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let n = s.len().min(self.data.len() - 1 - self.len);
            self.data[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut b = Buf {
        data: [0; 1024],
        len: 0,
    };
    let _ = b.write_fmt(args);
    b.data[b.len] = b'\n';
    b.len += 1;
    // SAFETY: writing our own buffer to fd 2.
    unsafe { libc::write(2, b.data.as_ptr().cast(), b.len) };
}

/// A configuration error found where no `Result` can be returned (inside
/// the first allocation, or at an implicit start): say what is wrong and
/// exit with status 2 (no unwinding or atexit work through a heap that is
/// not ready).
pub(crate) fn fatal_config(args: fmt::Arguments<'_>) -> ! {
    eprint_line(format_args!("oohgc: configuration error: {args}"));
    // SAFETY: _exit ends the process without running handlers.
    unsafe { libc::_exit(2) }
}

/// An internal invariant broke (e.g. the kernel refused memory for the mark
/// stack): say so and abort.
pub(crate) fn fatal(args: fmt::Arguments<'_>) -> ! {
    eprint_line(format_args!("oohgc: fatal: {args}"));
    std::process::abort()
}
