//! Threads allocating, freeing and remote-freeing while another thread
//! repeatedly marks the live set and sweeps under `lock()` with
//! allocate-black on. Every object carries a checksum; the live set proves
//! that no address is handed out twice.

use oohgc_allocator::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

const THREADS: usize = 6;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Copy)]
struct Obj {
    addr: usize,
    len: usize,
}

fn write_obj(p: *mut u8, len: usize, tag: u64) {
    // SAFETY: p has len >= 16 usable bytes.
    unsafe {
        *(p as *mut u64) = tag;
        *(p as *mut u64).add(1) = len as u64;
        for i in 16..len {
            *p.add(i) = (tag as u8).wrapping_add(i as u8);
        }
    }
}

fn verify(o: Obj) {
    let p = o.addr as *const u8;
    // SAFETY: o is live and o.len bytes long.
    unsafe {
        let tag = *(p as *const u64);
        assert_eq!(
            *(p as *const u64).add(1),
            o.len as u64,
            "length word damaged at {:#x}",
            o.addr
        );
        for i in 16..o.len {
            assert_eq!(
                *p.add(i),
                (tag as u8).wrapping_add(i as u8),
                "byte {i} damaged at {:#x}",
                o.addr
            );
        }
    }
}

/// Per-thread: objects owned, and an inbox of objects other threads hand over to be freed.
struct Shared {
    owned: Vec<Mutex<Vec<Obj>>>,
    inbox: Vec<Mutex<Vec<Obj>>>,
    live: Mutex<HashSet<usize>>,
    /// Read side: a mutator step; write side: the marker's snapshot of the live set.
    phase: RwLock<()>,
}

#[test]
fn mutators_and_concurrent_sweeps() {
    let iterations: usize =
        std::env::var("OOHGC_ALLOC_STRESS").map_or(20_000, |v| v.parse().unwrap());
    set_checked_free(true);
    let sh = Shared {
        owned: (0..THREADS).map(|_| Mutex::new(Vec::new())).collect(),
        inbox: (0..THREADS).map(|_| Mutex::new(Vec::new())).collect(),
        live: Mutex::new(HashSet::new()),
        phase: RwLock::new(()),
    };
    let stop = AtomicBool::new(false);
    let sweeps = AtomicUsize::new(0);
    let swept_objects = AtomicUsize::new(0);
    set_allocate_black(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                {
                    let _w = sh.phase.write().unwrap();
                    clear_marks();
                    for list in sh.owned.iter().chain(&sh.inbox) {
                        for o in list.lock().unwrap().iter() {
                            try_mark(o.addr);
                        }
                    }
                }
                let g = lock();
                let st = sweep();
                drop(g);
                swept_objects.fetch_add(st.objects_freed, Ordering::Relaxed);
                sweeps.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let sh = &sh;
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1000_0001));
                    for i in 0..iterations {
                        if i % 4000 == 3999 {
                            // hand the cache back mid-run; the next alloc adopts one (maybe another thread's)
                            flush_current_thread_cache();
                        }
                        let _r = sh.phase.read().unwrap();
                        let r = rng.next();
                        match r % 8 {
                            0..=3 => {
                                let len = if r.is_multiple_of(97) {
                                    40_000 + (r >> 20) as usize % 60_000
                                } else {
                                    16 + (r >> 8) as usize % 1500
                                };
                                let kind = if r.is_multiple_of(5) {
                                    ObjectKind::Manual
                                } else {
                                    ObjectKind::Managed
                                };
                                let p = alloc(len, 16, kind);
                                assert!(!p.is_null());
                                // SAFETY: fresh object of len bytes.
                                assert!(unsafe { (0..len).all(|i| *p.add(i) == 0) }, "not zeroed");
                                assert!(
                                    sh.live.lock().unwrap().insert(p as usize),
                                    "{p:?} handed out twice"
                                );
                                write_obj(p, len, ((t as u64) << 32) | i as u64);
                                sh.owned[t].lock().unwrap().push(Obj {
                                    addr: p as usize,
                                    len,
                                });
                            }
                            4 | 5 => {
                                let o = {
                                    let mut own = sh.owned[t].lock().unwrap();
                                    if own.is_empty() {
                                        continue;
                                    }
                                    let k = (r >> 16) as usize % own.len();
                                    own.swap_remove(k)
                                };
                                verify(o);
                                assert!(sh.live.lock().unwrap().remove(&o.addr));
                                // SAFETY: o is live and ours.
                                unsafe { free(o.addr as *mut u8) };
                            }
                            6 => {
                                // hand an object to another thread, which frees it (remote free)
                                let o = sh.owned[t].lock().unwrap().pop();
                                if let Some(o) = o {
                                    sh.inbox[(t + 1 + (r >> 8) as usize % (THREADS - 1)) % THREADS]
                                        .lock()
                                        .unwrap()
                                        .push(o);
                                }
                            }
                            _ => {
                                let batch: Vec<Obj> =
                                    std::mem::take(&mut *sh.inbox[t].lock().unwrap());
                                for o in batch {
                                    verify(o);
                                    assert!(sh.live.lock().unwrap().remove(&o.addr));
                                    // SAFETY: handed to us; no one else frees it.
                                    unsafe { free(o.addr as *mut u8) };
                                }
                                // drop a Managed object without freeing it: garbage for the sweep
                                let mut own = sh.owned[t].lock().unwrap();
                                if let Some(k) = own.iter().position(|o| {
                                    find_object(o.addr).unwrap().kind == ObjectKind::Managed
                                }) {
                                    let o = own.swap_remove(k);
                                    sh.live.lock().unwrap().remove(&o.addr);
                                }
                            }
                        }
                    }
                    if t % 2 == 0 {
                        flush_current_thread_cache();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    set_allocate_black(false);
    assert!(sweeps.load(Ordering::Relaxed) > 0);
    assert!(
        swept_objects.load(Ordering::Relaxed) > 0,
        "the sweeps never reclaimed garbage"
    );
    // Survivors are intact and are exactly what the object map reports as allocated.
    let mut survivors = 0;
    for list in sh.owned.iter().chain(&sh.inbox) {
        for &o in list.lock().unwrap().iter() {
            verify(o);
            assert_eq!(find_object(o.addr).map(|i| i.base), Some(o.addr));
            survivors += 1;
        }
    }
    clear_marks();
    for list in sh.owned.iter().chain(&sh.inbox) {
        for o in list.lock().unwrap().iter() {
            try_mark(o.addr);
        }
    }
    sweep();
    let mut counted = 0;
    for_each_object(None, &mut |_| counted += 1);
    assert_eq!(
        counted, survivors,
        "allocated objects other than the live set remain"
    );
    for list in sh.owned.iter().chain(&sh.inbox) {
        for o in list.lock().unwrap().drain(..) {
            verify(o);
            // SAFETY: live and ours.
            unsafe { free(o.addr as *mut u8) };
        }
    }
    assert_eq!(stats().in_use, 0);
}
