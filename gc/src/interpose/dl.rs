//! `dlopen`, `dlmopen` and `dlclose`, run under the collector's libraries
//! lock (see `roots`): a library is never unmapped while the collector
//! scans its segments, and one loaded during a cycle has its writable
//! segments scanned in that cycle's final pause. The lock is held across
//! the real call (constructors and destructors included), so the collector
//! never stops a thread half-way through loading a library whose statics
//! already hold pointers.
//!
//!
//! `dl_iterate_phdr` runs under the same lock: it holds the loader's lock
//! while its callback runs, and a callback that allocates (Rust's backtrace
//! symbolizer pushes to a `Vec` there) could otherwise be paced — made to
//! wait for the running cycle — while that cycle waits for the loader's
//! lock to list the library segments (found as a hang in tokio's `fs_file`
//! suite under `pagemap-scan`). Under the libraries lock the caller is never
//! paced, and the collector never lists segments while a caller is inside.
//!
//! Not covered: the C library's own internal loads (`__libc_dlopen_mode`,
//! used for NSS and iconv modules), which do not go through these symbols;
//! such modules hold no `Gc` pointers and are never unloaded by glibc.

use super::RealFn;
use libc::{c_char, c_int, c_void};

static REAL_DLOPEN: RealFn = RealFn::new(c"dlopen");
static REAL_DLMOPEN: RealFn = RealFn::new(c"dlmopen");
static REAL_DLCLOSE: RealFn = RealFn::new(c"dlclose");
static REAL_DL_ITERATE_PHDR: RealFn = RealFn::new(c"dl_iterate_phdr");

type DlopenFn = unsafe extern "C" fn(*const c_char, c_int) -> *mut c_void;
type DlmopenFn = unsafe extern "C" fn(libc::Lmid_t, *const c_char, c_int) -> *mut c_void;
type DlcloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type PhdrCallback =
    Option<unsafe extern "C" fn(*mut libc::dl_phdr_info, libc::size_t, *mut c_void) -> c_int>;
type DlIteratePhdrFn = unsafe extern "C" fn(PhdrCallback, *mut c_void) -> c_int;

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

/// Interposed `dl_iterate_phdr(3)` (see the module doc).
///
/// # Safety
/// As `dl_iterate_phdr(3)`.
#[no_mangle]
pub unsafe extern "C" fn dl_iterate_phdr(callback: PhdrCallback, data: *mut c_void) -> c_int {
    let _libraries = crate::roots::lock_libraries();
    // SAFETY: the real dl_iterate_phdr has this signature; arguments pass through.
    unsafe {
        std::mem::transmute::<*mut c_void, DlIteratePhdrFn>(REAL_DL_ITERATE_PHDR.get())(
            callback, data,
        )
    }
}
