//! Being stopped is invisible to the interrupted code: a blocking `read(2)`
//! is restarted rather than failing with EINTR (SA_RESTART), and `errno` is
//! the same after the handler ran.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn blocking_read_is_restarted_after_stops() {
    oohgc_barriers::init(Default::default()).unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [read_fd, write_fd] = fds;
    let reader = std::thread::spawn(move || {
        oohgc_barriers::register_current_thread();
        let mut byte = 0u8;
        // SAFETY: reading one byte into a valid buffer from our pipe.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        (n, byte, errno, oohgc_barriers::current_thread_suspensions())
    });
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..50 {
        drop(oohgc_barriers::stop_world());
    }
    // SAFETY: writing one byte from a valid buffer to our pipe.
    assert_eq!(unsafe { libc::write(write_fd, b"x".as_ptr().cast(), 1) }, 1);
    let (n, byte, errno, suspensions) = reader.join().unwrap();
    assert_eq!(
        (n, byte),
        (1, b'x'),
        "read failed after stops (errno {errno:?})"
    );
    assert!(
        suspensions >= 50,
        "the reader was not stopped ({suspensions} suspensions)"
    );
    // SAFETY: closing our own descriptors.
    unsafe {
        libc::close(read_fd);
        libc::close(write_fd);
    }
}

#[test]
fn errno_survives_the_suspend_handler() {
    oohgc_barriers::init(Default::default()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let worker = {
        let (done, checks) = (done.clone(), checks.clone());
        std::thread::spawn(move || {
            // SAFETY: __errno_location returns this thread's errno slot.
            let errno = unsafe { libc::__errno_location() };
            let mut clobbered = 0u64;
            while !done.load(Ordering::Relaxed) {
                // SAFETY: as above.
                unsafe { errno.write_volatile(4242) };
                for _ in 0..1000 {
                    std::hint::spin_loop();
                }
                // SAFETY: as above.
                if unsafe { errno.read_volatile() } != 4242 {
                    clobbered += 1;
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
            (clobbered, oohgc_barriers::current_thread_suspensions())
        })
    };
    while checks.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    for _ in 0..100 {
        drop(oohgc_barriers::stop_world());
        std::thread::sleep(Duration::from_micros(200));
    }
    done.store(true, Ordering::Relaxed);
    let (clobbered, suspensions) = worker.join().unwrap();
    assert!(suspensions > 0, "the worker was never stopped");
    assert_eq!(
        clobbered, 0,
        "errno changed across {suspensions} suspensions"
    );
}
