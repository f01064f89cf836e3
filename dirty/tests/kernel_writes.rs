//! Writes made by the kernel on the process's behalf (`read(2)`,
//! `pread(2)`) into tracked pages, and `MADV_DONTNEED`: what each source
//! does with them.
//!
//! * `pagemap-scan`: the read succeeds and the page is reported.
//! * `uffd` (synchronous): with kernel-fault handling allowed (root here)
//!   the read blocks until the handler thread resolves the fault, then
//!   succeeds and the page is reported; with `UFFD_USER_MODE_ONLY` it
//!   fails with EFAULT.
//! * `mprotect`: the read fails with EFAULT and writes nothing, unless the
//!   buffer is pinned (`mprotect::KernelWrite`, tests/mprotect_pins.rs).
//! * `card`: the read succeeds and is NOT reported (no barrier ran): the
//!   documented false negative of software barriers.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::DirtySource;

/// A pipe holding `data`, returns the read end.
fn pipe_with(data: &[u8]) -> i32 {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: writing our buffer into the pipe's write end.
    let n = unsafe { libc::write(fds[1], data.as_ptr().cast(), data.len()) };
    assert_eq!(n, data.len() as isize);
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fds[1]) };
    fds[0]
}

/// `read(2)` 64 bytes from a pipe into `addr`; Ok(bytes) or Err(errno).
fn read_into(addr: usize) -> Result<usize, i32> {
    let fd = pipe_with(&[0xAB; 64]);
    // SAFETY: reading into tracked memory we own (64 bytes inside one page).
    let n = unsafe { libc::read(fd, addr as *mut libc::c_void, 64) };
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    if n < 0 {
        Err(errno)
    } else {
        Ok(n as usize)
    }
}

/// `pread(2)` 64 bytes of a temporary file into `addr`.
fn pread_into(addr: usize) -> Result<usize, i32> {
    let path = std::env::temp_dir().join(format!("oohgc-dirty-pread-{}", std::process::id()));
    std::fs::write(&path, [0xCDu8; 128]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // SAFETY: reading into tracked memory we own.
    let n = unsafe {
        libc::pread(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            addr as *mut libc::c_void,
            64,
            32,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(n as usize)
    }
}

fn armed(name: &str) -> (Box<dyn DirtySource>, Mapping) {
    let s = oohgc_dirty::open(name).unwrap();
    let m = Mapping::new(8);
    m.write(1, 1); // populated page
    s.track(m.range).unwrap();
    s.arm().unwrap();
    (s, m)
}

fn byte_at(addr: usize) -> u8 {
    // SAFETY: reading our own mapping.
    unsafe { std::ptr::read_volatile(addr as *const u8) }
}

#[test]
fn pagemap_scan_sees_kernel_writes() {
    let (s, m) = armed("pagemap-scan");
    assert_eq!(
        read_into(m.page(1)),
        Ok(64),
        "read(2) into a populated tracked page"
    );
    assert_eq!(
        pread_into(m.page(3)),
        Ok(64),
        "pread(2) into an unpopulated tracked page"
    );
    assert_eq!(byte_at(m.page(1)), 0xAB);
    assert_eq!(byte_at(m.page(3)), 0xCD);
    assert_eq!(harvest_pages(&*s), common::addrs(&m, &[1, 3]));
}

#[test]
fn pagemap_scan_reports_dropped_pages() {
    let (s, m) = armed("pagemap-scan");
    m.write(2, 5);
    assert_eq!(harvest_pages(&*s), common::addrs(&m, &[2]));
    // SAFETY: dropping the contents of a page of our own mapping.
    assert_eq!(
        unsafe { libc::madvise(m.page(2) as *mut _, 4096, libc::MADV_DONTNEED) },
        0
    );
    assert_eq!(
        harvest_pages(&*s),
        common::addrs(&m, &[2]),
        "MADV_DONTNEED counts as a write"
    );
}

#[test]
fn mprotect_kernel_writes_fail_with_efault() {
    let (s, m) = armed("mprotect");
    assert_eq!(read_into(m.page(1)), Err(libc::EFAULT));
    assert_eq!(pread_into(m.page(3)), Err(libc::EFAULT));
    assert_ne!(byte_at(m.page(1)), 0xAB, "nothing was written");
    assert!(harvest_pages(&*s).is_empty());
    s.disarm().unwrap();
    assert_eq!(
        read_into(m.page(1)),
        Ok(64),
        "disarmed: the kernel can write again"
    );
}

#[test]
fn uffd_kernel_writes_depend_on_privilege() {
    let s = oohgc_dirty::uffd::UffdSource::open().unwrap();
    let m = Mapping::new(8);
    m.write(1, 1);
    s.track(m.range).unwrap();
    s.arm().unwrap();
    if s.user_mode_only() {
        assert_eq!(read_into(m.page(1)), Err(libc::EFAULT));
        assert!(harvest_pages(&s).is_empty());
    } else {
        assert_eq!(read_into(m.page(1)), Ok(64));
        assert_eq!(pread_into(m.page(3)), Ok(64));
        assert_eq!(byte_at(m.page(3)), 0xCD);
        assert_eq!(harvest_pages(&s), common::addrs(&m, &[1, 3]));
        assert_eq!(s.counters().write_traps, 2);
    }
}

#[test]
fn card_does_not_see_kernel_writes() {
    let (s, m) = armed("card");
    assert_eq!(read_into(m.page(1)), Ok(64));
    assert!(
        harvest_pages(&*s).is_empty(),
        "a write without the barrier is invisible to the card table (documented unsoundness)"
    );
}
