//! The mostly-concurrent collector under mutation: threads rewire a large
//! long-lived graph while cycles run back to back with the verifier on; a
//! pointer stored only by a system call; threads created and exiting during
//! cycles; a thread blocked in a system call across final pauses.
//!
//! Runs under whatever `OOHGC_DIRTY` selects (the suite runs it once per
//! available source); with `none` the cycles are stop-the-world.

mod common;

use common::{churn, Rng};
use oohgc::Gc;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

fn setup() {
    // The verifier re-marks after every concurrent cycle and aborts the
    // process on a lost object.
    let cfg = oohgc::Config::from_env()
        .unwrap()
        .verify(true)
        .initial_heap(2 << 20);
    cfg.apply().unwrap();
    oohgc::init().unwrap();
}

/// Run cycles back to back on a background thread until `stop`.
fn cycle_driver(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Acquire) {
            if oohgc::start_cycle() {
                oohgc::wait_for_cycles(1);
            } else {
                oohgc::collect();
            }
            n += 1;
        }
        n
    })
}

/// Overwrite dead stack so stale copies do not keep objects alive.
#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 2048];
    black_box(&mut buf);
}

struct Vertex {
    id: u64,
    edges: [AtomicUsize; 4],
}

fn edge(v: &Vertex, i: usize) -> Gc<Vertex> {
    // SAFETY: edges always hold addresses of live Vertex objects (the
    // graph is reachable from `all`, and new vertices are stored before
    // any reference to them is dropped).
    unsafe { Gc::from_raw(v.edges[i].load(Ordering::Acquire) as *const Vertex) }
}

fn new_vertex(id: u64, to: Gc<Vertex>) -> Gc<Vertex> {
    let t = Gc::as_ptr(&to) as usize;
    Gc::new(Vertex {
        id,
        edges: [
            AtomicUsize::new(t),
            AtomicUsize::new(t),
            AtomicUsize::new(t),
            AtomicUsize::new(t),
        ],
    })
}

#[test]
fn mutation_torture_with_the_verifier() {
    setup();
    const N: usize = 20_000;
    let root = new_vertex(
        0,
        Gc::new(Vertex {
            id: u64::MAX,
            edges: Default::default(),
        }),
    );
    // The long-lived graph: a Vec keeps every vertex; edges are rewired.
    let all: Arc<Vec<Gc<Vertex>>> = Arc::new((0..N as u64).map(|i| new_vertex(i, root)).collect());
    for (i, v) in all.iter().enumerate() {
        for e in 0..4 {
            v.edges[e].store(
                Gc::as_ptr(&all[(i * 7 + e * 13) % N]) as usize,
                Ordering::Release,
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let driver = cycle_driver(stop.clone());
    let stores = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (all, stores) = (all.clone(), stores.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(t + 1);
                let mut stack_held: Vec<Gc<Vertex>> = Vec::new();
                while Instant::now() < deadline {
                    for _ in 0..1000 {
                        let a = &all[rng.below(N as u64) as usize];
                        let slot = rng.below(4) as usize;
                        match rng.below(4) {
                            // An old object now points at another old object.
                            0 => {
                                let b = all[rng.below(N as u64) as usize];
                                a.edges[slot].store(Gc::as_ptr(&b) as usize, Ordering::Release);
                            }
                            // An old object now points at a brand-new one
                            // (reachable only through that store).
                            1 => {
                                let fresh = new_vertex(1_000_000 + rng.below(1000), edge(a, 0));
                                a.edges[slot].store(Gc::as_ptr(&fresh) as usize, Ordering::Release);
                            }
                            // Move a pointer from the heap to the stack and
                            // back into another object.
                            2 => {
                                let moved = edge(a, slot);
                                stack_held.push(moved);
                                if stack_held.len() > 64 {
                                    let m = stack_held.swap_remove(0);
                                    let b = &all[rng.below(N as u64) as usize];
                                    b.edges[slot].store(Gc::as_ptr(&m) as usize, Ordering::Release);
                                }
                            }
                            // Follow edges and check what is found.
                            _ => {
                                let mut v = edge(a, slot);
                                for _ in 0..4 {
                                    assert!(
                                        v.id < N as u64
                                            || (1_000_000..1_001_000).contains(&v.id)
                                            || v.id == u64::MAX
                                    );
                                    if v.id == u64::MAX {
                                        break;
                                    }
                                    v = edge(&v, rng.below(4) as usize);
                                }
                            }
                        }
                        stores.fetch_add(1, Ordering::Relaxed);
                    }
                    churn(1);
                }
                black_box(stack_held.len())
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let cycles = driver.join().unwrap();
    // Final check: every vertex's edges lead to valid vertices.
    for v in all.iter() {
        for e in 0..4 {
            let t = edge(v, e);
            assert!(t.id < N as u64 || (1_000_000..1_001_000).contains(&t.id) || t.id == u64::MAX);
        }
    }
    let s = oohgc::stats();
    eprintln!(
        "source {}: {cycles} cycles driven, {} concurrent, {} stores, max pause {:.3} ms",
        oohgc::dirty_source_name(),
        s.concurrent_cycles,
        stores.load(Ordering::Relaxed),
        s.max_pause_ns as f64 / 1e6
    );
    assert!(cycles >= 3, "only {cycles} cycles ran");
}

#[test]
fn a_pointer_written_only_by_a_system_call() {
    setup();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = cycle_driver(stop.clone());
    let buf: Gc<[usize]> = Gc::from_slice(&[0usize; 512]);
    let mut fds = [0i32; 2];
    // SAFETY: pipe with a valid array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    for round in 0..200u64 {
        let slot = (round % 512) as usize;
        // The target lives on this thread's stack only until the kernel has
        // copied its address into the collected buffer; after that the only
        // reference is the one read(2) wrote, which the dirty source must
        // report.
        #[inline(never)]
        fn send_and_receive(round: u64, fds: [i32; 2], dst: *mut usize) -> (isize, usize) {
            let t = Gc::new([round; 6]);
            let addr = Gc::as_ptr(&t) as usize;
            // SAFETY: writing 8 bytes from a local.
            let n = unsafe { libc::write(fds[1], &addr as *const usize as *const libc::c_void, 8) };
            assert_eq!(n, 8);
            // SAFETY: reading 8 bytes into a slot of the 512-word buffer.
            let n = unsafe { libc::read(fds[0], dst as *mut libc::c_void, 8) };
            let n = if n < 0 {
                -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as isize)
            } else {
                n
            };
            black_box(&t);
            (n, addr ^ 0xFFFF)
        }
        let dst = Gc::as_ptr(&buf) as *mut usize;
        // SAFETY: slot < 512.
        let (n, target_addr) = send_and_receive(round, fds, unsafe { dst.add(slot) });
        clobber_stack();
        assert_eq!(
            n, 8,
            "read(2) into the collected buffer failed: errno {}",
            -n
        );
        assert_eq!(buf[slot], target_addr ^ 0xFFFF);
        churn(1);
        // SAFETY: the buffer holds the target's address; the test checks it survived.
        let t: Gc<[u64; 6]> = unsafe { Gc::from_raw(buf[slot] as *const [u64; 6]) };
        assert_eq!(
            *t, [round; 6],
            "an object referenced only through read(2) was freed"
        );
    }
    stop.store(true, Ordering::Release);
    driver.join().unwrap();
}

#[test]
fn threads_created_and_exiting_during_cycles() {
    setup();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = cycle_driver(stop.clone());
    let results = Arc::new(Mutex::new(Vec::new()));
    for wave in 0..40u64 {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let results = results.clone();
                std::thread::spawn(move || {
                    let mut keep = Vec::new();
                    for i in 0..200u64 {
                        keep.push(Gc::new([wave, t, i, wave ^ t ^ i]));
                    }
                    churn(1);
                    for (i, g) in keep.iter().enumerate() {
                        assert_eq!(**g, [wave, t, i as u64, wave ^ t ^ i as u64]);
                    }
                    results.lock().unwrap().push(keep[199]);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    stop.store(true, Ordering::Release);
    driver.join().unwrap();
    for g in results.lock().unwrap().iter() {
        assert_eq!(g[2], 199);
        assert_eq!(g[3], g[0] ^ g[1] ^ 199);
    }
}

#[test]
fn a_thread_blocked_in_a_system_call_across_final_pauses() {
    setup();
    let mut fds = [0i32; 2];
    // SAFETY: pipe with a valid array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rfd, wfd) = (fds[0], fds[1]);
    let ready = Arc::new(AtomicBool::new(false));
    let h = {
        let ready = ready.clone();
        std::thread::spawn(move || {
            let held = Gc::new([77u64; 8]);
            let held = black_box(held);
            ready.store(true, Ordering::Release);
            let mut b = [0u8; 1];
            // Plain blocking read: the suspend signal interrupts it and it
            // restarts (SA_RESTART).
            // SAFETY: reading one byte into a local.
            let n = unsafe { libc::read(rfd, b.as_mut_ptr() as *mut libc::c_void, 1) };
            assert_eq!(n, 1);
            assert_eq!(*held, [77u64; 8]);
            // Then the same inside a blocking region.
            let n = oohgc::blocking(|| {
                // SAFETY: as above.
                unsafe { libc::read(rfd, b.as_mut_ptr() as *mut libc::c_void, 1) }
            });
            assert_eq!(n, 1);
            assert_eq!(*held, [77u64; 8]);
        })
    };
    while !ready.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    for _ in 0..2 {
        for _ in 0..5 {
            churn(2);
            if oohgc::start_cycle() {
                oohgc::wait_for_cycles(1);
            } else {
                oohgc::collect();
            }
        }
        // SAFETY: writing one byte from a local.
        assert_eq!(
            unsafe { libc::write(wfd, b"x".as_ptr() as *const libc::c_void, 1) },
            1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.join().unwrap();
}
