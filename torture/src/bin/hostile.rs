//! Faults and hostile conditions, one scenario per subcommand:
//! `hostile <scenario>`. Each scenario is run in its own process by
//! `tests/faults.rs`, which asserts on the exit status and the output; the
//! expected behaviour of each is written on its function here and on the
//! test.
//!
//! Scenarios print what they observed on stdout, one `key=value` line, and
//! exit 0 when everything they check held; a check that fails exits 1 with
//! a message on stderr.

use oohgc::Gc;
use std::alloc::Layout;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

const PAGE: usize = 4096;

/// Every scenario, with a one-line description (shown on a bad name).
const SCENARIOS: &[(&str, &str)] = &[
    (
        "max-heap-gc",
        "Gc::new past OOHGC_MAX_HEAP during cycles: must abort via handle_alloc_error",
    ),
    (
        "max-heap-raw",
        "std::alloc::alloc past OOHGC_MAX_HEAP during a cycle: null, then recovery",
    ),
    (
        "segv-handler-before",
        "own SIGSEGV handler installed before oohgc starts",
    ),
    (
        "segv-handler-after",
        "own SIGSEGV handler installed after oohgc starts, chaining to it",
    ),
    (
        "segv-default",
        "a real segfault with the default action kills with SIGSEGV",
    ),
    (
        "sigpwr-handler",
        "the program owns SIGPWR before the collector starts",
    ),
    (
        "fork-mid-cycle",
        "fork() from a multi-threaded program during concurrent cycles",
    ),
    (
        "stack-overflow",
        "a mutator thread overflows its stack during cycles",
    ),
    (
        "exiting-threads",
        "many short-lived threads exit while the world is stopped",
    ),
    (
        "blocked-threads",
        "threads parked in system calls (plain and in oohgc::blocking) across cycles",
    ),
    (
        "double-free",
        "dealloc of the same block twice through the global allocator",
    ),
    ("interior-free", "dealloc of a pointer inside a heap block"),
    (
        "outside-free",
        "dealloc of a pointer outside the heap (a static)",
    ),
    (
        "default-source",
        "start with the default dirty source and collect with the verifier",
    ),
];

fn fail(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("hostile: CHECK FAILED: {msg}");
    std::process::exit(1)
}

macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            fail(format_args!($($arg)*));
        }
    };
}

fn setup_verify() {
    let cfg = oohgc::Config::from_env()
        .unwrap_or_else(|e| fail(format_args!("bad OOHGC_* setting: {e}")))
        .verify(true)
        .initial_heap(1 << 20);
    cfg.apply()
        .unwrap_or_else(|e| fail(format_args!("apply: {e}")));
    oohgc::init().unwrap_or_else(|e| fail(format_args!("init: {e}")));
}

/// One cycle, concurrent where the source allows.
fn one_cycle() {
    if oohgc::start_cycle() {
        oohgc::wait_for_cycles(1);
    } else {
        oohgc::collect();
    }
}

/// Cycles back to back until the returned flag is set.
fn driver() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let mut n = 0;
        while !s.load(Ordering::Acquire) {
            one_cycle();
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        n
    });
    (stop, h)
}

/// Allocate and drop `mb` MiB of small collected objects.
fn churn(mb: usize) {
    for i in 0..(mb << 20) / 64 {
        black_box(Gc::new([0xDEAD_BEEF_u64 ^ i as u64; 6]));
    }
}

/// Objects kept alive and checked after the scenario.
fn keep(n: u64, tag: u64) -> Vec<Gc<[u64; 4]>> {
    (0..n).map(|i| Gc::new([tag, i, tag ^ i, !i])).collect()
}

fn check_kept(v: &[Gc<[u64; 4]>], tag: u64) {
    for (i, g) in v.iter().enumerate() {
        let i = i as u64;
        check!(
            **g == [tag, i, tag ^ i, !i],
            "kept object {i} of tag {tag} changed: {:?}",
            **g
        );
    }
}

/// Expected: the heap cannot grow past OOHGC_MAX_HEAP; `Gc::new` (or the
/// `Vec` holding the objects) gets null and the process aborts through
/// `handle_alloc_error` with "memory allocation of N bytes failed".
fn max_heap_gc() {
    setup_verify();
    let (_stop, _driver) = driver();
    oohgc::start_cycle();
    let mut held: Vec<Gc<[u8; 65536]>> = Vec::new();
    for i in 0..20_000 {
        held.push(Gc::new([i as u8; 65536]));
    }
    fail(format_args!(
        "allocated {} MiB without reaching OOHGC_MAX_HEAP",
        held.len() / 16
    ));
}

/// Expected: with a cycle running, raw `std::alloc::alloc` of 1 MiB blocks
/// returns null once OOHGC_MAX_HEAP is reached (no abort, no hang); after
/// freeing them the next allocation succeeds, and collections keep working
/// (objects kept across them are intact).
fn max_heap_raw() {
    setup_verify();
    let kept = keep(1000, 7);
    let layout = Layout::from_size_align(1 << 20, 16).expect("layout");
    let mut blocks: Vec<*mut u8> = Vec::with_capacity(4096);
    oohgc::start_cycle();
    let mut got_null = false;
    for _ in 0..4096 {
        // SAFETY: a non-zero-size layout.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            got_null = true;
            break;
        }
        // SAFETY: p is a fresh 1 MiB block: touch its first byte.
        unsafe { p.write(1) };
        blocks.push(p);
    }
    check!(got_null, "4 GiB of raw allocations did not reach the limit");
    let before_null = blocks.len();
    for p in blocks.drain(..) {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { std::alloc::dealloc(p, layout) };
    }
    // SAFETY: a non-zero-size layout.
    let p = unsafe { std::alloc::alloc(layout) };
    check!(!p.is_null(), "allocation after freeing still fails");
    // SAFETY: allocated just above.
    unsafe { std::alloc::dealloc(p, layout) };
    let cycles = oohgc::stats().cycles;
    for _ in 0..3 {
        churn(4);
        one_cycle();
    }
    check!(oohgc::stats().cycles >= cycles + 3, "collections stopped");
    check_kept(&kept, 7);
    println!("raw_mib_before_null={before_null} recovered=1");
}

static OUR_PAGE: AtomicUsize = AtomicUsize::new(0);
static OUR_FAULTS: AtomicUsize = AtomicUsize::new(0);
static mut PREVIOUS_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// The program's own SIGSEGV handler: a fault on `OUR_PAGE` is counted and
/// fixed (the page is made writable); any other fault goes to the handler
/// that was installed before this one.
extern "C" fn our_segv_handler(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = OUR_PAGE.load(Ordering::Acquire);
    if page != 0 && addr >= page && addr < page + PAGE {
        OUR_FAULTS.fetch_add(1, Ordering::AcqRel);
        // SAFETY: our own page.
        unsafe {
            libc::mprotect(
                page as *mut libc::c_void,
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        return;
    }
    // SAFETY: PREVIOUS_SEGV was filled by sigaction before this handler
    // was installed and is never written again.
    let prev = unsafe { (*std::ptr::addr_of!(PREVIOUS_SEGV)).assume_init() };
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: a SA_SIGINFO handler has this signature.
        let f: extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig, info, ctx);
    } else if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
        // Restore the default: the fault re-occurs and kills the process.
        // SAFETY: resetting a signal disposition.
        unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL) };
    } else {
        // SAFETY: a plain handler has this signature.
        let f: extern "C" fn(i32) = unsafe { std::mem::transmute(prev.sa_sigaction) };
        f(sig);
    }
}

fn install_our_segv_handler() {
    // SAFETY: installing a handler with a zeroed, then filled, sigaction;
    // PREVIOUS_SEGV is written before the handler can run.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = our_segv_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // Every signal blocked while it runs, as the collector's handler
        // (which it may chain to) expects: a stop-the-world signal must not
        // interrupt a write-fault handler half-way.
        libc::sigfillset(&mut sa.sa_mask);
        let prev = (*std::ptr::addr_of_mut!(PREVIOUS_SEGV)).as_mut_ptr();
        check!(
            libc::sigaction(libc::SIGSEGV, &sa, prev) == 0,
            "sigaction(SIGSEGV) failed"
        );
    }
}

/// A fresh PROT_NONE page outside the heap.
fn protected_page() -> usize {
    // SAFETY: an anonymous private mapping with no hint.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    check!(p != libc::MAP_FAILED, "mmap failed");
    p as usize
}

/// Writes into heap objects while cycles run (under `mprotect` these fault
/// into the collector's handler), then five faults on our own page.
fn segv_exercise() {
    let graph: Vec<Gc<[AtomicUsize; 4]>> = (0..2000).map(|_| Gc::new(Default::default())).collect();
    let page = protected_page();
    OUR_PAGE.store(page, Ordering::Release);
    for round in 0..5usize {
        oohgc::start_cycle();
        for (i, g) in graph.iter().enumerate() {
            g[i % 4].store(round + i, Ordering::Relaxed);
        }
        churn(2);
        // SAFETY: re-protect our page, then write it: the fault must reach
        // our handler, which makes it writable so the write completes.
        unsafe {
            libc::mprotect(page as *mut libc::c_void, PAGE, libc::PROT_NONE);
            std::ptr::write_volatile((page + 8 * round) as *mut u64, 0xABCD + round as u64);
            check!(
                std::ptr::read_volatile((page + 8 * round) as *const u64) == 0xABCD + round as u64,
                "our page does not hold what we wrote"
            );
        }
        oohgc::wait_for_cycles(1);
    }
    for (i, g) in graph.iter().enumerate() {
        check!(
            g[i % 4].load(Ordering::Relaxed) == 4 + i,
            "a heap write was lost"
        );
    }
    check!(
        OUR_FAULTS.load(Ordering::Acquire) == 5,
        "our handler saw {} faults, expected 5",
        OUR_FAULTS.load(Ordering::Acquire)
    );
    println!(
        "own_handler_faults=5 source={} cycles={}",
        oohgc::dirty_source_name(),
        oohgc::stats().cycles
    );
}

/// Expected (OOHGC_DIRTY=mprotect): the collector's handler chains faults
/// outside the heap to the program's handler installed before it; heap
/// writes during cycles keep working.
fn segv_handler_before() {
    install_our_segv_handler();
    setup_verify();
    segv_exercise();
}

/// Expected (OOHGC_DIRTY=mprotect): a program handler installed after the
/// collector's, chaining to it, sees its own faults, and the collector
/// still tracks heap writes through the chain.
fn segv_handler_after() {
    setup_verify();
    install_our_segv_handler();
    segv_exercise();
}

/// Expected (OOHGC_DIRTY=mprotect): a write to an unmapped-permission page
/// outside the heap, with no program handler, kills the process with
/// SIGSEGV (the collector's handler restores the default action).
fn segv_default() {
    setup_verify();
    oohgc::start_cycle();
    churn(2);
    let page = protected_page();
    println!("about_to_fault=1");
    // SAFETY: deliberately faulting on a PROT_NONE page.
    unsafe { std::ptr::write_volatile(page as *mut u64, 1) };
    fail(format_args!("the write to a PROT_NONE page did not fault"));
}

static OUR_SIGPWR: AtomicUsize = AtomicUsize::new(0);

extern "C" fn our_sigpwr_handler(_sig: i32) {
    OUR_SIGPWR.fetch_add(1, Ordering::AcqRel);
}

/// Expected: with the default signals the first collection ends the
/// process (exit 2) with a message naming SIGPWR and OOHGC_SUSPEND_SIGNAL;
/// with OOHGC_SUSPEND_SIGNAL / OOHGC_RESTART_SIGNAL moved elsewhere the
/// program runs, collects, and its own SIGPWR handler still works.
fn sigpwr_handler() {
    // SAFETY: installing a plain handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = our_sigpwr_handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        check!(
            libc::sigaction(libc::SIGPWR, &sa, std::ptr::null_mut()) == 0,
            "sigaction(SIGPWR) failed"
        );
    }
    let kept = keep(500, 3);
    churn(2);
    oohgc::collect();
    for _ in 0..3 {
        churn(2);
        one_cycle();
    }
    check_kept(&kept, 3);
    // SAFETY: raising a signal we handle.
    unsafe { libc::raise(libc::SIGPWR) };
    check!(
        OUR_SIGPWR.load(Ordering::Acquire) == 1,
        "our SIGPWR handler did not run"
    );
    println!("own_sigpwr=1 cycles={}", oohgc::stats().cycles);
}

/// Expected: fork() while worker threads mutate and cycles run: the child
/// (only the forking thread) allocates, runs stop-the-world and concurrent
/// collections with the verifier, checks its objects and exits 0; the
/// parent carries on, and its objects are intact.
fn fork_mid_cycle() {
    setup_verify();
    let (stop, drv) = driver();
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let done = done.clone();
            std::thread::spawn(move || {
                let kept = keep(2000, 100 + t);
                while !done.load(Ordering::Acquire) {
                    churn(1);
                }
                check_kept(&kept, 100 + t);
            })
        })
        .collect();
    let parent_kept = keep(3000, 9);
    let mut children_ok = 0;
    for round in 0..5u64 {
        oohgc::start_cycle();
        churn(1);
        // SAFETY: fork; the child only uses async-signal-safe paths plus the
        // collector, which resets itself in its atfork child handler.
        let pid = unsafe { libc::fork() };
        check!(pid >= 0, "fork failed");
        if pid == 0 {
            // Die with the parent: a child stuck in a collector deadlock
            // must not outlive a test that gave up on the parent.
            // SAFETY: prctl with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let kept = keep(5000, 1000 + round);
            for _ in 0..3 {
                churn(2);
                oohgc::collect();
            }
            for _ in 0..3 {
                churn(2);
                one_cycle();
            }
            check_kept(&kept, 1000 + round);
            check_kept(&parent_kept, 9);
            // SAFETY: leave without running the parent's atexit work.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        check!(r == pid, "waitpid failed");
        check!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork child {round} failed: raw status {status:#x}"
        );
        children_ok += 1;
    }
    done.store(true, Ordering::Release);
    for w in workers {
        w.join()
            .unwrap_or_else(|_| fail(format_args!("a worker panicked")));
    }
    stop.store(true, Ordering::Release);
    drv.join()
        .unwrap_or_else(|_| fail(format_args!("driver panicked")));
    check_kept(&parent_kept, 9);
    println!(
        "children_ok={children_ok} parent_cycles={}",
        oohgc::stats().cycles
    );
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let buf = [n; 64];
    black_box(&buf);
    // Always true at run time, opaque to the compiler.
    if black_box(n) != u64::MAX {
        return recurse(n + 1).wrapping_add(buf[3]);
    }
    buf[3]
}

/// Expected: a registered mutator thread that overflows its stack while
/// cycles run gets Rust's "thread '...' has overflowed its stack" message
/// and the process dies of SIGABRT, promptly (no hang in a stop-the-world).
fn stack_overflow() {
    setup_verify();
    let (_stop, _drv) = driver();
    let h = std::thread::Builder::new()
        .name("overflower".into())
        .stack_size(256 << 10)
        .spawn(|| {
            let held = Gc::new([5u64; 8]);
            black_box(&held);
            churn(1);
            recurse(0)
        })
        .expect("spawn");
    let _ = h.join();
    fail(format_args!("the overflowing thread returned"));
}

/// Expected: 3000 threads, each allocating, checking and exiting, while
/// collections run back to back (threads exit while the world is being
/// stopped): no hang, no lost object, exit 0.
fn exiting_threads() {
    setup_verify();
    let (stop, drv) = driver();
    let created = AtomicUsize::new(0);
    for wave in 0..100u64 {
        let hs: Vec<_> = (0..30u64)
            .map(|t| {
                created.fetch_add(1, Ordering::Relaxed);
                std::thread::Builder::new()
                    .stack_size(128 << 10)
                    .spawn(move || {
                        let tag = wave << 8 | t;
                        let kept = keep(50, tag);
                        churn(0);
                        check_kept(&kept, tag);
                    })
                    .expect("spawn")
            })
            .collect();
        // Detach a third of them: they exit on their own.
        for (i, h) in hs.into_iter().enumerate() {
            if i % 3 != 0 {
                h.join()
                    .unwrap_or_else(|_| fail(format_args!("a thread panicked")));
            }
        }
    }
    stop.store(true, Ordering::Release);
    let cycles = drv
        .join()
        .unwrap_or_else(|_| fail(format_args!("driver panicked")));
    check!(cycles > 0, "no cycle completed");
    println!(
        "threads={} driven_cycles={cycles}",
        created.load(Ordering::Relaxed)
    );
}

/// Expected: threads parked in `read(2)` (plain, restarted after each
/// suspend signal), in `oohgc::blocking(read)`, and in
/// `oohgc::blocking(nanosleep)` for the whole run do not stop 40 cycles from
/// completing, and the objects they hold survive.
fn blocked_threads() {
    setup_verify();
    let mut fds = [0i32; 2];
    // SAFETY: pipe into a two-element array.
    check!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe failed");
    let (rfd, wfd) = (fds[0], fds[1]);
    let ready = Arc::new(AtomicUsize::new(0));
    let reader = |in_blocking: bool, ready: Arc<AtomicUsize>| {
        std::thread::spawn(move || {
            let held = Gc::new([in_blocking as u64 + 40; 8]);
            let held = black_box(held);
            ready.fetch_add(1, Ordering::AcqRel);
            let mut b = [0u8; 1];
            // SAFETY: reading one byte into a local.
            let mut read = || unsafe { libc::read(rfd, b.as_mut_ptr().cast(), 1) };
            let n = if in_blocking {
                oohgc::blocking(read)
            } else {
                read()
            };
            check!(n == 1, "read returned {n}");
            check!(
                *held == [in_blocking as u64 + 40; 8],
                "a parked thread's object changed"
            );
        })
    };
    let plain = reader(false, ready.clone());
    let blocking = reader(true, ready.clone());
    let sleeper = {
        let ready = ready.clone();
        std::thread::spawn(move || {
            let held = Gc::new([99u64; 8]);
            ready.fetch_add(1, Ordering::AcqRel);
            oohgc::blocking(|| std::thread::sleep(Duration::from_secs(2)));
            check!(*held == [99u64; 8], "the sleeper's object changed");
        })
    };
    while ready.load(Ordering::Acquire) < 3 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let before = oohgc::stats().cycles;
    for _ in 0..40 {
        churn(1);
        one_cycle();
    }
    let cycles = oohgc::stats().cycles - before;
    let seconds = start.elapsed().as_secs_f64();
    // SAFETY: writing two bytes from a static buffer.
    check!(
        unsafe { libc::write(wfd, b"xy".as_ptr().cast(), 2) } == 2,
        "write failed"
    );
    for h in [plain, blocking, sleeper] {
        h.join()
            .unwrap_or_else(|_| fail(format_args!("a parked thread panicked")));
    }
    check!(cycles >= 40, "only {cycles} cycles");
    println!("cycles_while_parked={cycles} seconds={seconds:.2}");
}

/// Expected: the second dealloc of the same block aborts with
/// "oohgc-allocator: double free (or free of a slot that is not allocated): 0x...".
fn double_free() {
    let layout = Layout::new::<[u64; 4]>();
    let p = Box::into_raw(Box::new([1u64; 4])).cast::<u8>();
    println!("block={p:p}");
    // SAFETY: freeing our own block; the second free is the deliberate bug.
    unsafe {
        std::alloc::dealloc(p, layout);
        std::alloc::dealloc(p, layout);
    }
    fail(format_args!("a double free went unnoticed"));
}

/// Expected: dealloc of a pointer 8 bytes into a heap block aborts with
/// "oohgc-allocator: a pointer that is not the base of an object: 0x...".
fn interior_free() {
    let b = Box::new([1u64; 8]);
    let p = Box::into_raw(b).cast::<u8>();
    // SAFETY: the deliberate bug: freeing an interior pointer.
    unsafe { std::alloc::dealloc(p.add(8), Layout::new::<u64>()) };
    fail(format_args!("an interior free went unnoticed"));
}

static NOT_HEAP: [u64; 4] = [0; 4];

/// Expected: a pointer outside the heap that is not one of the collector's
/// own `malloc` blocks is reported ("oohgc: fatal: dealloc of 0x..., which
/// is not a block of this allocator") and the process aborts.
fn outside_free() {
    let p = NOT_HEAP.as_ptr() as *mut u8;
    // SAFETY: the deliberate bug: freeing a static.
    unsafe { std::alloc::dealloc(p, Layout::new::<[u64; 4]>()) };
    fail(format_args!("a free of a static went unnoticed"));
}

/// Expected: whatever the default source resolves to for this process
/// (e.g. when run unprivileged), the collector starts, says which source it
/// uses, and collects correctly with the verifier.
fn default_source() {
    setup_verify();
    let kept = keep(2000, 77);
    for _ in 0..5 {
        churn(2);
        one_cycle();
    }
    check_kept(&kept, 77);
    let s = oohgc::stats();
    println!(
        "source={} cycles={} concurrent={}",
        oohgc::dirty_source_name(),
        s.cycles,
        s.concurrent_cycles
    );
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    match name.as_str() {
        "max-heap-gc" => max_heap_gc(),
        "max-heap-raw" => max_heap_raw(),
        "segv-handler-before" => segv_handler_before(),
        "segv-handler-after" => segv_handler_after(),
        "segv-default" => segv_default(),
        "sigpwr-handler" => sigpwr_handler(),
        "fork-mid-cycle" => fork_mid_cycle(),
        "stack-overflow" => stack_overflow(),
        "exiting-threads" => exiting_threads(),
        "blocked-threads" => blocked_threads(),
        "double-free" => double_free(),
        "interior-free" => interior_free(),
        "outside-free" => outside_free(),
        "default-source" => default_source(),
        _ => {
            eprintln!("hostile: unknown scenario {name:?}; the scenarios are:");
            for (n, what) in SCENARIOS {
                eprintln!("  {n:20} {what}");
            }
            std::process::exit(2);
        }
    }
}
