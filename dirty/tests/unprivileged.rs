//! Without privilege (and with `vm.unprivileged_userfaultfd=0`), the
//! userfaultfd sources fall back to `UFFD_USER_MODE_ONLY`: async
//! write-protect still sees kernel writes; the synchronous source turns
//! them into EFAULT. Runs in a forked child that drops root.

mod common;

use common::{harvest_pages, Mapping};
use oohgc_dirty::DirtySource;

/// `read(2)` 16 bytes from a pipe into `addr`: Ok(bytes) or Err(errno).
fn read_into(addr: usize) -> Result<usize, i32> {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) into a two-element array; write/read/close our fds.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::write(fds[1], [7u8; 16].as_ptr().cast(), 16);
        libc::close(fds[1]);
        let n = libc::read(fds[0], addr as *mut libc::c_void, 16);
        let errno = *libc::__errno_location();
        libc::close(fds[0]);
        if n < 0 {
            Err(errno)
        } else {
            Ok(n as usize)
        }
    }
}

/// The checks; returns 0 on success or the number of the failed check.
fn checks(expect_user_mode_only: bool) -> i32 {
    let pm = match oohgc_dirty::pagemap_scan::PagemapScanSource::open() {
        Ok(pm) => pm,
        Err(e) => {
            eprintln!("unprivileged pagemap-scan: {e}");
            return 10;
        }
    };
    if pm.tracker().user_mode_only() != expect_user_mode_only {
        return 11;
    }
    let m = Mapping::new(4);
    m.write(0, 1);
    if pm.track(m.range).is_err() || pm.arm().is_err() {
        return 12;
    }
    if read_into(m.page(0)) != Ok(16) {
        return 13;
    }
    if harvest_pages(&pm) != common::addrs(&m, &[0]) {
        return 14;
    }
    let Ok(sync) = oohgc_dirty::uffd::UffdSource::open() else {
        return 20;
    };
    if sync.user_mode_only() != expect_user_mode_only {
        return 21;
    }
    let m2 = Mapping::new(4);
    m2.write(0, 1);
    if sync.track(m2.range).is_err() || sync.arm().is_err() {
        return 22;
    }
    let expected = if expect_user_mode_only {
        Err(libc::EFAULT)
    } else {
        Ok(16)
    };
    if read_into(m2.page(0)) != expected {
        return 23;
    }
    0
}

#[test]
fn user_mode_only_fallback() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: which mode we get depends on the sysctl.
        let sysctl = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd").unwrap();
        assert_eq!(checks(sysctl.trim() == "0"), 0);
        return;
    }
    // SAFETY: fork; the child drops root, runs the checks and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: dropping to nobody in the child only; then marking the
        // process dumpable again, as a process started unprivileged is
        // (a set-uid change makes /proc/self root-owned otherwise).
        let dropped = unsafe {
            libc::setgid(65534) == 0
                && libc::setuid(65534) == 0
                && libc::prctl(libc::PR_SET_DUMPABLE, 1) == 0
        };
        let code = if !dropped {
            2
        } else {
            let sysctl = std::fs::read_to_string("/proc/sys/vm/unprivileged_userfaultfd")
                .unwrap_or_default();
            checks(sysctl.trim() == "0")
        };
        // SAFETY: leaving the child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child crashed: {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "failed check number");
}
