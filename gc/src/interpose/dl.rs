//! `dlopen`, `dlmopen` and `dlclose`, run under the collector's libraries
//! lock (see `roots`): a library is never unmapped while the collector
//! scans its segments, and one loaded during a cycle has its writable
//! segments scanned in that cycle's final pause. The lock is held across
//! the real call (constructors and destructors included), so the collector
//! never stops a thread half-way through loading a library whose statics
//! already hold pointers.
//!
//! Not covered: the C library's own internal loads (`__libc_dlopen_mode`,
//! used for NSS and iconv modules), which do not go through these symbols;
//! such modules hold no `Gc` pointers and are never unloaded by glibc.

use super::RealFn;
use libc::{c_char, c_int, c_void};

static REAL_DLOPEN: RealFn = RealFn::new(c"dlopen");
static REAL_DLMOPEN: RealFn = RealFn::new(c"dlmopen");
static REAL_DLCLOSE: RealFn = RealFn::new(c"dlclose");

type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
type DlmopenFn = unsafe extern "C" fn(libc::Lmid_t, *const c_char, c_int) -> *mut c_void;
type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// Interposed `dlopen(3)`.
///
/// # Safety
/// As `dlopen(3)`.
#[no_mangle]
pub unsafe extern "C" fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void {
    let _libraries = crate::roots::lock_libraries();
    // SAFETY: the real dlopen has this signature; arguments pass through.
    let handle =
        unsafe { std::mem::transmute::<*mut c_void, DlopenFn>(REAL_DLOPEN.get())(filename, flags) };
    crate::roots::libraries_changed();
    handle
}

/// Interposed `dlmopen(3)`.
///
/// # Safety
/// As `dlmopen(3)`.
#[no_mangle]
pub unsafe extern "C" fn dlmopen(
    namespace: libc::Lmid_t,
    filename: *const c_char,
    flags: c_int,
) -> *mut c_void {
    let _libraries = crate::roots::lock_libraries();
    // SAFETY: the real dlmopen has this signature; arguments pass through.
    let handle = unsafe {
        std::mem::transmute::<*mut c_void, DlmopenFn>(REAL_DLMOPEN.get())(
            namespace, filename, flags,
        )
    };
    crate::roots::libraries_changed();
    handle
}

/// Interposed `dlclose(3)`.
///
/// # Safety
/// As `dlclose(3)`.
#[no_mangle]
pub unsafe extern "C" fn dlclose(handle: *mut c_void) -> c_int {
    let _libraries = crate::roots::lock_libraries();
    // SAFETY: the real dlclose has this signature; the handle passes through.
    let r = unsafe { std::mem::transmute::<*mut c_void, DlcloseFn>(REAL_DLCLOSE.get())(handle) };
    crate::roots::libraries_changed();
    r
}
