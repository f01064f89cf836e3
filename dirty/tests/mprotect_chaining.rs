//! The `mprotect` source's SIGSEGV handler passes faults outside tracked
//! ranges on: to a previously installed handler, or (if that was the
//! default action) back to the default so the process dies of SIGSEGV.
//!
//! Each case runs in a forked child, which installs its own state first,
//! then the source, then faults on a `PROT_NONE` page. This test binary
//! never opens an `mprotect` source in the parent.

mod common;

use common::Mapping;
use oohgc_dirty::mprotect::MprotectSource;
use oohgc_dirty::DirtySource;

/// Where the child's PROT_NONE page is, for the test handler to check.
static FAULT_PAGE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn test_handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo.
    let addr = unsafe { (*info).si_addr() } as usize;
    let expected = FAULT_PAGE.load(std::sync::atomic::Ordering::SeqCst);
    let code = if addr & !4095 == expected { 42 } else { 43 };
    // SAFETY: leaving the child immediately.
    unsafe { libc::_exit(code) };
}

fn protnone_page() -> usize {
    // SAFETY: one inaccessible anonymous page.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p as usize
}

/// Run `child` in a forked process; return its wait status.
fn in_child(child: fn()) -> i32 {
    // SAFETY: fork; the child only runs `child` and then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child();
        // SAFETY: leaving the child (reached only if it did not fault).
        unsafe { libc::_exit(1) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// A tracked write works, then an untracked fault is the child's death.
fn track_write_then_fault() {
    let source = MprotectSource::open().unwrap();
    let m = Mapping::new(4);
    source.track(m.range).unwrap();
    source.arm().unwrap();
    m.write(2, 1); // handled by the source, not chained
    let mut dirty = 0;
    source.harvest(&mut |r| dirty += r.pages()).unwrap();
    if dirty != 1 || source.counters().write_traps != 1 {
        // SAFETY: leaving the child with a distinct code.
        unsafe { libc::_exit(44) };
    }
    let page = protnone_page();
    FAULT_PAGE.store(page, std::sync::atomic::Ordering::SeqCst);
    common::write_byte(page, 1);
}

#[test]
fn untracked_fault_reaches_the_previous_handler() {
    let status = in_child(|| {
        // SAFETY: installing the test's SA_SIGINFO handler before the source.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = test_handler as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        }
        track_write_then_fault();
    });
    assert!(
        libc::WIFEXITED(status),
        "child died instead of exiting: status {status:#x}"
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        42,
        "42: the previous handler saw the fault at the right address"
    );
}

#[test]
fn untracked_fault_with_default_action_kills_with_sigsegv() {
    let status = in_child(|| {
        // SAFETY: setting the default action before the source is installed.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
        track_write_then_fault();
    });
    assert!(
        libc::WIFSIGNALED(status),
        "child should die of a signal: status {status:#x}"
    );
    assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
}
