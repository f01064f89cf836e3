//! A `Gc` held only in a `thread_local!` of the *main* thread survives
//! collections: glibc keeps the main thread's static TLS block in a mapping
//! of its own, outside the stack, so it must be found from the thread
//! pointer. (Its own binary with `harness = false`: libtest would run the
//! test on another thread.)

use oohgc::Gc;
use std::cell::Cell;
use std::hint::black_box;

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

thread_local! {
    static MAIN_TLS: Cell<usize> = const { Cell::new(0) };
}

#[inline(never)]
fn stash(seed: u64) {
    let g = Gc::new([seed; 8]);
    MAIN_TLS.with(|t| t.set(Gc::as_ptr(&g) as usize));
}

#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 8192];
    black_box(&mut buf);
}

fn main() {
    // Speak just enough of libtest's protocol for cargo-nextest, which
    // lists the tests of a binary before running them one at a time.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("main_thread_survives: test");
        }
        return;
    }
    // SAFETY: gettid/getpid have no preconditions.
    assert_eq!(
        unsafe { libc::syscall(libc::SYS_gettid) as i32 },
        unsafe { libc::getpid() },
        "not the main thread"
    );
    stash(0xC0FFEE);
    clobber_stack();
    for _ in 0..6 {
        for i in 0..40_000u64 {
            black_box(Gc::new([i; 8]));
        }
        oohgc::collect();
    }
    let addr = MAIN_TLS.with(|t| t.get());
    // SAFETY: the address came from a Gc<[u64; 8]>; the test checks it survived.
    let g: Gc<[u64; 8]> = unsafe { Gc::from_raw(addr as *const [u64; 8]) };
    assert_eq!(
        *g, [0xC0FFEE; 8],
        "a Gc held only in the main thread's thread_local was freed"
    );
    println!("1 passed, 0 failed");
}
