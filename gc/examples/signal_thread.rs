//! A program with a signal-handling thread, for the README's figures on
//! threads that block the suspend signal: the thread blocks every signal
//! and waits, holding the only pointer to a collected block, while the main
//! thread collects ten times with churn; each collection's wall time is
//! printed, then whether the block survived. Run with `OOHGC_STATS=1` to see
//! each cycle's stop time (and `given_up=N` for threads not scanned).
//!
//! ```text
//! cargo run --release -p oohgc --example signal_thread -- sigwait
//! cargo run --release -p oohgc --example signal_thread -- raw
//! ```
//!
//! `sigwait`: `pthread_sigmask(SIG_BLOCK, full)`, then `sigwait(full)` (the
//! usual signal-handling thread). `raw`: the same mask set with a raw
//! `rt_sigprocmask` system call, which no interposition sees, then a pipe
//! read. The thread is created with `pthread_create` and never allocates,
//! so it never registers.

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const WORDS: usize = 64;
const HIDE: usize = 0x5a5a_5a5a_5a5a_5a5a;

static RAW: AtomicBool = AtomicBool::new(false);
static SLOT: AtomicUsize = AtomicUsize::new(0);
static HOLD: AtomicUsize = AtomicUsize::new(0);
static READY: AtomicBool = AtomicBool::new(false);
static DAMAGED: AtomicUsize = AtomicUsize::new(usize::MAX);
static PIPE_READ: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn word(i: usize) -> u64 {
    0x0123_4567_89ab_cdef ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline(never)]
fn publish_block() {
    let mut b = [0u64; WORDS];
    for (i, w) in b.iter_mut().enumerate() {
        *w = word(i);
    }
    let g = oohgc::Gc::new(b);
    HOLD.store(oohgc::Gc::as_ptr(&g) as usize, Ordering::Release);
    SLOT.store(oohgc::Gc::as_ptr(&g) as usize ^ HIDE, Ordering::Release);
}

#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 4096];
    black_box(&mut buf);
}

extern "C" fn signal_thread(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: all-zero is storage for sigfillset; the calls change only
    // this thread's mask and wait on valid sets and descriptors.
    unsafe {
        let mut full: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut full);
        if RAW.load(Ordering::Relaxed) {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_BLOCK,
                &full as *const libc::sigset_t,
                core::ptr::null_mut::<libc::sigset_t>(),
                8usize,
            );
        } else {
            libc::pthread_sigmask(libc::SIG_BLOCK, &full, core::ptr::null_mut());
        }
        let p = black_box((SLOT.swap(0, Ordering::AcqRel) ^ HIDE) as *const [u64; WORDS]);
        READY.store(true, Ordering::Release);
        if RAW.load(Ordering::Relaxed) {
            let mut byte = 0u8;
            while libc::read(
                PIPE_READ.load(Ordering::Relaxed),
                (&mut byte as *mut u8).cast(),
                1,
            ) < 0
            {}
        } else {
            let mut signal = 0;
            // Loops like a real signal thread: whatever arrives is handled
            // and it waits again, until SIGTERM.
            while signal != libc::SIGTERM {
                libc::sigwait(&full, &mut signal);
            }
        }
        let damaged = (0..WORDS)
            .filter(|&i| core::ptr::read_volatile(&(*black_box(p))[i]) != word(i))
            .count();
        DAMAGED.store(damaged, Ordering::Release);
    }
    core::ptr::null_mut()
}

fn main() {
    let raw = std::env::args().nth(1).as_deref() == Some("raw");
    RAW.store(raw, Ordering::Relaxed);
    oohgc::collect();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    PIPE_READ.store(fds[0], Ordering::Relaxed);
    publish_block();
    let mut thread: libc::pthread_t = 0;
    // SAFETY: a thread with default attributes running `signal_thread`.
    let rc = unsafe {
        libc::pthread_create(
            &mut thread,
            core::ptr::null(),
            signal_thread,
            core::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0);
    while !READY.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    HOLD.store(0, Ordering::Release);
    clobber_stack();
    for i in 0..10 {
        for j in 0..20_000u64 {
            black_box(oohgc::Gc::new([j; 6]));
        }
        let t = Instant::now();
        oohgc::collect();
        println!("collect {i}: {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    // SAFETY: waking the thread (pipe byte or SIGTERM) and joining it.
    unsafe {
        if raw {
            libc::write(fds[1], [1u8].as_ptr().cast(), 1);
        } else {
            libc::pthread_kill(thread, libc::SIGTERM);
        }
        libc::pthread_join(thread, core::ptr::null_mut());
    }
    let s = oohgc::stats();
    println!(
        "{} mode: longest pause {:.3} ms; block {}",
        if raw { "raw" } else { "sigwait" },
        s.max_pause_ns as f64 / 1e6,
        match DAMAGED.load(Ordering::Acquire) {
            0 => "intact".to_string(),
            n => format!("DAMAGED ({n} of {WORDS} words): freed while in use"),
        }
    );
}
