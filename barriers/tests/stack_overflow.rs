//! Rust's stack-overflow report (its SIGSEGV guard-page handler) still works
//! after `init` and while threads are being stopped: this crate installs
//! nothing for SIGSEGV/SIGBUS. The overflow runs in a child process (this
//! test binary re-executed), which must die by SIGABRT after printing Rust's
//! message, not by a bare SIGSEGV.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD_ENV: &str = "OOHGC_BARRIERS_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + pad[3]
}

#[test]
fn stack_overflow_is_still_reported_by_rust() {
    if std::env::var_os(CHILD_ENV).is_some() {
        oohgc_barriers::init(Default::default()).unwrap();
        oohgc_barriers::register_current_thread();
        let stopper = std::thread::spawn(|| loop {
            drop(oohgc_barriers::stop_world());
            std::thread::sleep(std::time::Duration::from_millis(1));
        });
        let overflow = std::thread::spawn(|| {
            oohgc_barriers::register_current_thread();
            recurse(0)
        });
        let _ = overflow.join();
        drop(stopper);
        unreachable!("the stack overflow did not end the process");
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stack_overflow_is_still_reported_by_rust",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "child status {:?}, stderr: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("has overflowed its stack"),
        "stderr: {stderr}"
    );
}
