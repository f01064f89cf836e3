//! A miniature conservative collector over this heap: worker threads
//! allocate, free, remote-free and drop objects while the test thread
//! repeatedly takes `lock()`, stops them with a signal at arbitrary
//! instructions (mid-alloc and mid-free included), marks from their
//! registries and stacks (saved registers included) with `find_object` /
//! `try_mark`, sweeps, checks every reachable object, and resumes them.

use oohgc_allocator::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const WORKERS: usize = 3;
const SLOTS: usize = 256;

struct Worker {
    slots: Vec<AtomicUsize>,
    thread: AtomicUsize,
    stack_hi: AtomicUsize,
    sp: AtomicUsize,
    /// The last stop epoch this worker acknowledged (from inside the handler).
    acked: AtomicUsize,
}

/// Incremented for every stop request.
static STOP_EPOCH: AtomicUsize = AtomicUsize::new(0);
/// Workers stopped for epoch `e` resume once this reaches `e`.
static RELEASED_EPOCH: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ME: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

extern "C" fn on_stop(_sig: libc::c_int) {
    let w = ME.with(|m| m.get());
    if w.is_null() {
        return;
    }
    let here = 0usize;
    // SAFETY: w points to a Worker that outlives the worker thread.
    let w = unsafe { &*w };
    let epoch = STOP_EPOCH.load(Ordering::SeqCst);
    w.sp.store(std::ptr::addr_of!(here) as usize, Ordering::SeqCst);
    w.acked.store(epoch, Ordering::SeqCst);
    while RELEASED_EPOCH.load(Ordering::SeqCst) < epoch {
        // SAFETY: sched_yield is async-signal-safe.
        unsafe { libc::sched_yield() };
    }
}

fn stack_top() -> usize {
    // SAFETY: querying our own thread's attributes into zeroed structs.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
        libc::pthread_attr_destroy(&mut attr);
        addr as usize + size
    }
}

fn write_obj(p: *mut u8, len: usize, tag: u64) {
    // SAFETY: p has len >= 16 bytes.
    unsafe {
        *(p as *mut u64) = tag;
        *(p as *mut u64).add(1) = len as u64;
        for i in 16..len {
            *p.add(i) = (tag as u8) ^ (i as u8);
        }
    }
}

fn verify(p: usize) {
    let ptr = p as *const u8;
    // SAFETY: p is a live object written by write_obj.
    unsafe {
        let tag = *(ptr as *const u64);
        let len = *(ptr as *const u64).add(1) as usize;
        assert!(
            len >= 16 && len <= usable_size(ptr),
            "length word damaged at {p:#x}"
        );
        for i in 16..len {
            assert_eq!(
                *ptr.add(i),
                (tag as u8) ^ (i as u8),
                "byte {i} of {p:#x} damaged"
            );
        }
    }
}

fn worker(me: usize, all: &[Worker], stop: &AtomicBool) {
    let w = &all[me];
    ME.with(|m| m.set(w as *const Worker));
    w.stack_hi.store(stack_top(), Ordering::SeqCst);
    // SAFETY: pthread_self is always safe.
    w.thread
        .store(unsafe { libc::pthread_self() } as usize, Ordering::SeqCst);
    let mut x = 0x51ed_270b_2734_f5c9u64 ^ me as u64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let slot = (x >> 20) as usize % SLOTS;
        match x % 10 {
            0..=4 => {
                let len = if x.is_multiple_of(61) {
                    40_000 + (x >> 40) as usize % 50_000
                } else {
                    16 + (x >> 32) as usize % 700
                };
                let kind = if x.is_multiple_of(7) {
                    ObjectKind::Manual
                } else {
                    ObjectKind::Managed
                };
                let p = alloc(len, 16, kind);
                assert!(!p.is_null());
                n += 1;
                write_obj(p, len, n << 8 | me as u64);
                let old = w.slots[slot].swap(p as usize, Ordering::AcqRel);
                if old != 0 {
                    verify(old);
                    // SAFETY: we took old out of the registry: nobody else frees it.
                    unsafe { free(old as *mut u8) };
                }
            }
            5..=7 => {
                // free one of ours, or (remote free) one of another worker's
                let owner = if x.is_multiple_of(3) {
                    (me + 1) % WORKERS
                } else {
                    me
                };
                let old = all[owner].slots[slot].swap(0, Ordering::AcqRel);
                if old != 0 {
                    verify(old);
                    // SAFETY: taken out of the registry.
                    unsafe { free(old as *mut u8) };
                }
            }
            _ => {
                // drop: the object becomes garbage (Manual ones leak; Managed are swept)
                w.slots[slot].swap(0, Ordering::AcqRel);
            }
        }
    }
}

#[test]
fn sweeping_with_the_world_stopped_mid_operation() {
    // SAFETY: installing a plain handler for SIGUSR1 (the test owns this signal).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_stop as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let all: Vec<Worker> = (0..WORKERS)
        .map(|_| Worker {
            slots: (0..SLOTS).map(|_| AtomicUsize::new(0)).collect(),
            thread: AtomicUsize::new(0),
            stack_hi: AtomicUsize::new(0),
            sp: AtomicUsize::new(0),
            acked: AtomicUsize::new(0),
        })
        .collect();
    let stop = AtomicBool::new(false);
    let rounds: usize = std::env::var("OOHGC_ALLOC_STW_ROUNDS").map_or(150, |v| v.parse().unwrap());
    let mut freed_total = 0;
    let mut roots_total = 0;
    std::thread::scope(|s| {
        for me in 0..WORKERS {
            let (all, stop) = (&all, &stop);
            s.spawn(move || worker(me, all, stop));
        }
        // If an assertion fails while the world is stopped, resume the workers
        // and end them so the failure is reported instead of hanging.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
                RELEASED_EPOCH.store(usize::MAX, Ordering::SeqCst);
            }
        }
        let _release = Release(&stop);
        while all.iter().any(|w| w.thread.load(Ordering::SeqCst) == 0) {
            std::thread::yield_now();
        }
        for _ in 0..rounds {
            std::thread::sleep(std::time::Duration::from_micros(300));
            let guard = lock();
            let epoch = STOP_EPOCH.fetch_add(1, Ordering::SeqCst) + 1;
            for w in &all {
                // SAFETY: the thread is alive (workers run until `stop`).
                unsafe {
                    libc::pthread_kill(
                        w.thread.load(Ordering::SeqCst) as libc::pthread_t,
                        libc::SIGUSR1,
                    )
                };
            }
            while !all.iter().all(|w| w.acked.load(Ordering::SeqCst) == epoch) {
                std::thread::yield_now();
            }
            // The world is stopped: mark from registries and stacks.
            clear_marks();
            let mut roots = 0;
            for w in &all {
                for s in &w.slots {
                    let p = s.load(Ordering::SeqCst);
                    if p != 0 {
                        assert_eq!(
                            find_object(p).map(|o| o.base),
                            Some(p),
                            "registered object not allocated"
                        );
                        try_mark(p);
                        roots += 1;
                    }
                }
                let (lo, hi) = (
                    w.sp.load(Ordering::SeqCst),
                    w.stack_hi.load(Ordering::SeqCst),
                );
                let mut a = lo & !7;
                while a + 8 <= hi {
                    // SAFETY: [sp, stack top) of a stopped thread is mapped; volatile word read.
                    let word = unsafe { std::ptr::read_volatile(a as *const usize) };
                    if let Some(o) = find_object(word) {
                        try_mark(o.base);
                    }
                    a += 8;
                }
            }
            let mut manual = 0;
            for_each_object(Some(ObjectKind::Manual), &mut |o| {
                try_mark(o.base);
                manual += 1;
            });
            let st = sweep();
            freed_total += st.objects_freed;
            for w in &all {
                for s in &w.slots {
                    let p = s.load(Ordering::SeqCst);
                    if p != 0 {
                        assert_eq!(
                            find_object(p).map(|o| o.base),
                            Some(p),
                            "sweep freed a reachable object"
                        );
                        verify(p);
                    }
                }
            }
            roots_total += roots + manual;
            RELEASED_EPOCH.store(epoch, Ordering::SeqCst);
            drop(guard);
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert!(freed_total > 0, "the sweeps never freed garbage");
    assert!(roots_total > 0, "the marker never found a root");
    for w in &all {
        for s in &w.slots {
            let p = s.swap(0, Ordering::SeqCst);
            if p != 0 {
                verify(p);
                // SAFETY: live and unregistered now.
                unsafe { free(p as *mut u8) };
            }
        }
    }
}
