//! After `fork()` the child has one thread: the registry must shrink to it
//! (the `pthread_atfork` child handler), and `stop_world` must work there —
//! with no other thread, and with a thread the child spawns. The child
//! reports through its exit status. (No test harness: fork in a controlled
//! process.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs in the child; returns an exit code (0 = pass) and never unwinds.
fn child_checks() -> i32 {
    if oohgc_barriers::registered_thread_count() != 1 {
        eprintln!(
            "child: registered_thread_count = {}, expected 1 (the forking thread)",
            oohgc_barriers::registered_thread_count()
        );
        return 10;
    }
    for _ in 0..10 {
        let world = oohgc_barriers::stop_world();
        if world.thread_count() != 0 {
            eprintln!(
                "child: stopped {} threads, expected 0",
                world.thread_count()
            );
            return 11;
        }
    }
    let counter = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let worker = {
        let (counter, done) = (counter.clone(), done.clone());
        std::thread::spawn(move || {
            oohgc_barriers::register_current_thread();
            while !done.load(Ordering::Relaxed) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::Relaxed) == 0 {
        if Instant::now() > deadline {
            return 12;
        }
        std::thread::yield_now();
    }
    for _ in 0..20 {
        let world = oohgc_barriers::stop_world();
        if world.thread_count() != 1 {
            eprintln!(
                "child: stopped {} threads, expected 1",
                world.thread_count()
            );
            return 13;
        }
        let frozen = counter.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
        if counter.load(Ordering::Relaxed) != frozen {
            eprintln!("child: worker moved while stopped");
            return 14;
        }
    }
    done.store(true, Ordering::Relaxed);
    if worker.join().is_err() {
        return 15;
    }
    0
}

fn main() {
    // Speak just enough of libtest's protocol for cargo-nextest, which lists
    // a binary's tests before running them.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("fork_child_stops_the_world: test");
        }
        return;
    }
    oohgc_barriers::init(Default::default()).unwrap();
    oohgc_barriers::register_current_thread();
    // Parent threads that will not exist in the child.
    let done = Arc::new(AtomicBool::new(false));
    let parents: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                oohgc_barriers::register_current_thread();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    while oohgc_barriers::registered_thread_count() < 4 {
        std::thread::yield_now();
    }
    drop(oohgc_barriers::stop_world());

    // SAFETY: fork in a test process; the child only runs code that is
    // fork-safe with glibc (malloc, pthread_create) and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(child_checks).unwrap_or(20);
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: exited {} with code {} (signal {})",
        libc::WIFEXITED(status),
        libc::WEXITSTATUS(status),
        if libc::WIFSIGNALED(status) {
            libc::WTERMSIG(status)
        } else {
            0
        }
    );
    // The parent still stops its own threads.
    let world = oohgc_barriers::stop_world();
    assert!(world.thread_count() >= 3);
    drop(world);
    done.store(true, Ordering::Relaxed);
    for p in parents {
        p.join().unwrap();
    }
    println!("test result: ok. 1 passed (fork child stop_world)");
}
