//! C library functions that oohgc *interposes*: the program's calls to
//! them reach these definitions first (an executable's own symbols come
//! before `libc.so.6` in the dynamic linker's lookup order, and Rust links
//! `#[no_mangle]` items of every crate it links), and each forwards to the
//! real function found with `dlsym(RTLD_NEXT, ...)`.
//!
//! Each submodule owns one concern; none of them allocates through the
//! global allocator (they run inside `read(2)` or `pthread_sigmask` of any
//! thread, possibly before `main`), and each fast path, when its concern is
//! inactive, is one relaxed load and a tail call to the real function.
//!
//! What interposition cannot reach is said where it matters: a raw
//! `syscall` instruction (rustix's `linux_raw` backend, io_uring, inline
//! assembly) and glibc's internal calls (which use hidden aliases) do not
//! come here.

mod dl;
mod kernel_writes;
mod signal_masks;

use std::sync::atomic::{AtomicPtr, Ordering};

/// A lazily resolved pointer to the real (next) definition of a C symbol.
pub(crate) struct RealFn {
    name: &'static std::ffi::CStr,
    ptr: AtomicPtr<libc::c_void>,
}

impl RealFn {
    /// The next definition of `name` (NUL-terminated) after ours.
    pub(crate) const fn new(name: &'static std::ffi::CStr) -> RealFn {
        RealFn {
            name,
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The real function's address; dies with a message if the C library
    /// has none (it then could not have been called either).
    #[inline]
    pub(crate) fn get(&self) -> *mut libc::c_void {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            return p;
        }
        self.resolve()
    }

    #[cold]
    fn resolve(&self) -> *mut libc::c_void {
        // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT searches the
        // objects loaded after this executable (the C library among them).
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        if p.is_null() {
            crate::util::fatal(format_args!(
                "interpose: the C library has no `{}`",
                self.name.to_string_lossy()
            ));
        }
        self.ptr.store(p, Ordering::Release);
        p
    }

    /// Resolve now if the C library has the symbol, silently otherwise (a
    /// later call then reports it): for resolution at load time of
    /// functions a newer C library may be the only one to have.
    pub(crate) fn preload(&self) {
        if self.ptr.load(Ordering::Acquire).is_null() {
            // SAFETY: as in `resolve`.
            let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
            if !p.is_null() {
                self.ptr.store(p, Ordering::Release);
            }
        }
    }
}

/// `mask` with the collector's suspend and restart signals taken out, for
/// a call that is about to block signals in `mask` (`pthread_sigmask`,
/// `sigprocmask`, `sigsuspend`, `ppoll`, `pselect`, `epoll_pwait`): a thread
/// that blocks them could be neither stopped nor scanned. Returns `mask`
/// itself when nothing needs taking out (null, or the signals are not
/// installed yet), else `scratch` holding the filtered copy.
///
/// # Safety
/// `mask` is null or points at a valid `sigset_t`.
pub(crate) unsafe fn open_collector_signals(
    mask: *const libc::sigset_t,
    scratch: &mut libc::sigset_t,
) -> *const libc::sigset_t {
    let Some(signals) = oohgc_barriers::current_config() else {
        return mask;
    };
    if mask.is_null() {
        return mask;
    }
    // SAFETY: per the contract, `mask` is a valid set; `scratch` is ours.
    unsafe {
        if libc::sigismember(mask, signals.suspend) != 1
            && libc::sigismember(mask, signals.restart) != 1
        {
            return mask;
        }
        *scratch = *mask;
        libc::sigdelset(scratch, signals.suspend);
        libc::sigdelset(scratch, signals.restart);
    }
    scratch
}
