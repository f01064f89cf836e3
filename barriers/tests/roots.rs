//! The reported stack and TLS ranges really contain what a thread holds: a
//! value in a local, a value only in a register at suspension, the address of
//! a `thread_local!` — for registered threads and for threads that never
//! registered.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use oohgc_barriers::{stop_world, ThreadRoots};

fn range_holds(lo: usize, hi: usize, value: usize) -> bool {
    let mut addr = (lo + 7) & !7;
    while addr + 8 <= hi {
        // SAFETY: the range was reported as a mapped stack/TLS range of a
        // thread that is stopped; reading it word by word is what a collector does.
        if unsafe { std::ptr::read_volatile(addr as *const usize) } == value {
            return true;
        }
        addr += 8;
    }
    false
}

/// Stops the world and returns (found in stack, found in any range,
/// in_blocking) for thread `tid` and `value`.
fn scan_thread(tid: i32, value: usize) -> Option<(bool, bool)> {
    let world = stop_world();
    let mut result = None;
    world.for_each_thread(&mut |roots: &ThreadRoots| {
        if roots.tid == tid {
            let in_stack = range_holds(roots.stack.0, roots.stack.1, value);
            let in_tls = roots.tls.iter().any(|&(lo, hi)| range_holds(lo, hi, value));
            result = Some((in_stack, in_stack || in_tls));
        }
    });
    result
}

/// Reported ranges of `tid` during one stop.
fn ranges_of(tid: i32) -> Vec<(usize, usize)> {
    let world = stop_world();
    let mut ranges = Vec::new();
    world.for_each_thread(&mut |roots: &ThreadRoots| {
        if roots.tid == tid {
            ranges.push(roots.stack);
            ranges.extend_from_slice(roots.tls);
        }
    });
    ranges
}

fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn stack_sentinel_case(register: bool, salt: usize) {
    let sentinel = 0x5EED_0000_0000_0000usize | (salt << 20) | 0x0ACE;
    let ready = Arc::new(AtomicI32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let (ready, done) = (ready.clone(), done.clone());
        std::thread::spawn(move || {
            if register {
                oohgc_barriers::register_current_thread();
            }
            let local = std::hint::black_box([sentinel ^ 0xFFFF, 0]);
            let local = std::hint::black_box([local[0] ^ 0xFFFF, local[1]]);
            ready.store(tid(), Ordering::Release);
            while !done.load(Ordering::Relaxed) {
                std::hint::black_box(&local);
                std::hint::spin_loop();
            }
        })
    };
    let target = loop {
        let t = ready.load(Ordering::Acquire);
        if t != 0 {
            break t;
        }
        std::thread::yield_now();
    };
    for round in 0..20 {
        let found = scan_thread(target, sentinel);
        assert_eq!(
            found.map(|f| f.0),
            Some(true),
            "round {round}: sentinel local not in the reported stack of thread {target} (registered: {register})"
        );
    }
    done.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn registered_thread_stack_holds_its_local() {
    oohgc_barriers::init(Default::default()).unwrap();
    stack_sentinel_case(true, 1);
}

#[test]
fn never_registered_thread_is_stopped_and_its_stack_reported() {
    oohgc_barriers::init(Default::default()).unwrap();
    stack_sentinel_case(false, 2);
}

/// Spins with the sentinel only in r12 (built in the register from an
/// immediate, never stored by this code): it can only be found in the
/// register context the kernel saved on the stack at suspension.
fn register_sentinel_case(register: bool) {
    const SENTINEL: usize = 0x5EED_C0DE_1234_5678;
    let ready = Arc::new(AtomicI32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let (ready, done) = (ready.clone(), done.clone());
        std::thread::spawn(move || {
            if register {
                oohgc_barriers::register_current_thread();
            }
            ready.store(tid(), Ordering::Release);
            let flag = done.as_ptr();
            // SAFETY: `flag` points to a live AtomicBool; the loop only reads
            // it; r12 is declared clobbered.
            unsafe {
                std::arch::asm!(
                    "movabs r12, 0x5EEDC0DE12345678",
                    "2:",
                    "pause",
                    "cmp byte ptr [{flag}], 0",
                    "je 2b",
                    "xor r12, r12",
                    flag = in(reg) flag,
                    out("r12") _,
                )
            };
        })
    };
    let target = loop {
        let t = ready.load(Ordering::Acquire);
        if t != 0 {
            break t;
        }
        std::thread::yield_now();
    };
    // Let it reach the asm loop.
    std::thread::sleep(std::time::Duration::from_millis(20));
    for round in 0..20 {
        let found = scan_thread(target, SENTINEL);
        assert_eq!(
            found.map(|f| f.0),
            Some(true),
            "round {round}: register-only sentinel not in the reported stack (registered: {register})"
        );
    }
    done.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn register_only_value_is_covered_registered() {
    oohgc_barriers::init(Default::default()).unwrap();
    register_sentinel_case(true);
}

#[test]
fn register_only_value_is_covered_unregistered() {
    oohgc_barriers::init(Default::default()).unwrap();
    register_sentinel_case(false);
}

thread_local! {
    static MARK: Cell<usize> = const { Cell::new(0) };
}

fn spawned_thread_tls_case(register: bool) {
    oohgc_barriers::init(Default::default()).unwrap();
    let ready = Arc::new(AtomicI32::new(0));
    let address = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let handle = {
        let (ready, address, done) = (ready.clone(), address.clone(), done.clone());
        std::thread::spawn(move || {
            if register {
                oohgc_barriers::register_current_thread();
            }
            MARK.with(|m| {
                m.set(7);
                address.store(m as *const Cell<usize> as usize, Ordering::Relaxed);
            });
            ready.store(tid(), Ordering::Release);
            while !done.load(Ordering::Relaxed) {
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
        })
    };
    let target = loop {
        let t = ready.load(Ordering::Acquire);
        if t != 0 {
            break t;
        }
        std::thread::yield_now();
    };
    let mark = address.load(Ordering::Relaxed);
    let ranges = ranges_of(target);
    assert!(!ranges.is_empty(), "thread {target} not reported");
    assert!(
        ranges.iter().any(|&(lo, hi)| lo <= mark && mark < hi),
        "thread_local at {mark:#x} not in any reported range {ranges:x?} (registered: {register})"
    );
    done.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[test]
fn spawned_thread_tls_is_covered_registered() {
    spawned_thread_tls_case(true);
}

#[test]
fn spawned_thread_tls_is_covered_unregistered() {
    spawned_thread_tls_case(false);
}

#[test]
fn current_thread_roots_cover_own_local_and_tls() {
    for register in [false, true] {
        if register {
            oohgc_barriers::register_current_thread();
        }
        let local = std::hint::black_box(0x5EED_1111_2222_3333usize);
        let local_address = &local as *const usize as usize;
        let tls_address = MARK.with(|m| m as *const Cell<usize> as usize);
        let mut ranges = Vec::new();
        oohgc_barriers::current_thread_roots(&mut |lo, hi| ranges.push((lo, hi)));
        assert!(
            ranges
                .iter()
                .any(|&(lo, hi)| lo <= local_address && local_address < hi),
            "local at {local_address:#x} not in {ranges:x?}"
        );
        assert!(
            ranges
                .iter()
                .any(|&(lo, hi)| lo <= tls_address && tls_address < hi),
            "thread_local at {tls_address:#x} not in {ranges:x?}"
        );
        std::hint::black_box(&local);
    }
    oohgc_barriers::unregister_current_thread();
}
