//! Helpers shared by the barriers tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Start a watchdog thread, excluded from stops, that ends the process with
/// `message` on stderr and status 1 unless `finished` is set within
/// `limit`: a hang fails the test instead of blocking the suite.
pub fn watchdog(finished: Arc<AtomicBool>, limit: Duration, message: &'static str) {
    std::thread::spawn(move || {
        oohgc_barriers::exclude_current_thread();
        let deadline = Instant::now() + limit;
        while !finished.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                eprintln!("{message}");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}
