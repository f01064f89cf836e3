//! Finalization and weak references: finalizers run exactly once, for
//! unreachable objects only, referrers before referents; a panicking
//! finalizer does not stop the collector; `Gc::new_local` finalizers run on
//! their own thread; weak references clear when and only when the target is
//! gone, and an upgrade racing collections never returns a freed object.

mod common;

use common::{churn, collect_many};
use oohgc::{Gc, GcWeak};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// Tests in this binary share the finalizer; each uses its own counters.
struct Counted {
    id: u64,
    log: &'static Mutex<Vec<u64>>,
    next: Option<Gc<Counted>>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.log.lock().unwrap().push(self.id);
        if let Some(n) = &self.next {
            // The referent must still be intact while its referrer is dropped.
            assert!(
                n.id < 1_000_000,
                "referent freed before its referrer's finalizer ran"
            );
        }
    }
}

#[inline(never)]
fn make_chain(log: &'static Mutex<Vec<u64>>, base: u64, len: u64) -> Gc<Counted> {
    let mut head: Option<Gc<Counted>> = None;
    for i in (0..len).rev() {
        head = Some(Gc::new(Counted {
            id: base + i,
            log,
            next: head,
        }));
    }
    head.unwrap()
}

fn settle() {
    for _ in 0..4 {
        churn(1);
        oohgc::collect();
        oohgc::run_finalizers();
    }
}

#[inline(never)]
fn make_chains(log: &'static Mutex<Vec<u64>>, chains: u64) {
    for c in 0..chains {
        black_box(make_chain(log, 1000 + c * 10, 4));
    }
}

#[test]
fn finalizers_run_once_for_unreachable_objects_in_topological_order() {
    // A conservative collector may keep an unreachable object alive through
    // a stale word, so liveness is checked over many chains; safety (once
    // only, never a reachable object, referrer before referent) is exact.
    static LOG: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let kept = make_chain(&LOG, 100, 3);
    make_chains(&LOG, 100);
    black_box(&kept);
    for _ in 0..8 {
        settle();
    }
    let log = LOG.lock().unwrap().clone();
    assert!(
        log.iter().all(|&i| i >= 1000),
        "a reachable object was finalized: {log:?}"
    );
    let mut seen = std::collections::HashSet::new();
    for &i in &log {
        assert!(seen.insert(i), "object {i} finalized twice");
        if i % 10 != 0 {
            // Referrers (lower index in the chain) are finalized first.
            let pos = log.iter().position(|&x| x == i).unwrap();
            let prev = log.iter().position(|&x| x == i - 1);
            assert!(
                prev.is_some_and(|p| p < pos),
                "{i} finalized before its referrer {}",
                i - 1
            );
        }
    }
    let complete = (0..100u64)
        .filter(|c| (0..4).all(|k| seen.contains(&(1000 + c * 10 + k))))
        .count();
    assert!(
        complete >= 90,
        "only {complete}/100 unreachable chains were fully finalized"
    );
    assert_eq!(kept.id, 100);
    assert_eq!(kept.next.as_ref().unwrap().id, 101);
}

#[test]
fn a_panicking_finalizer_does_not_stop_the_collector() {
    static RAN: AtomicU64 = AtomicU64::new(0);
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            RAN.fetch_add(1, Ordering::SeqCst);
            panic!("finalizer panic (expected by the test)");
        }
    }
    #[inline(never)]
    fn make() {
        for _ in 0..10 {
            black_box(Gc::new(Bomb));
        }
    }
    let before = oohgc::finalizer_panics();
    make();
    for _ in 0..3 {
        settle();
    }
    let ran = RAN.load(Ordering::SeqCst);
    assert!(ran >= 8, "only {ran} of 10 finalizers ran");
    assert_eq!(oohgc::finalizer_panics() - before, ran);
    // The collector still works.
    let g = Gc::new(42u64);
    collect_many(2);
    assert_eq!(*g, 42);
}

#[test]
fn resurrected_objects_stay_valid() {
    static SAVED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    struct Phoenix {
        payload: [u64; 4],
    }
    impl Drop for Phoenix {
        fn drop(&mut self) {
            SAVED.lock().unwrap().push(self as *const Phoenix as usize);
        }
    }
    #[inline(never)]
    fn make() {
        for i in 0..50 {
            black_box(Gc::new(Phoenix {
                payload: [i, 8, 7, 6],
            }));
        }
    }
    make();
    for _ in 0..3 {
        settle();
    }
    let saved = SAVED.lock().unwrap().clone();
    assert!(
        saved.len() >= 40,
        "only {} of 50 finalizers ran",
        saved.len()
    );
    // The Vec (a GcAllocator block, a root) now points at the objects: they
    // must not be freed or reused.
    collect_many(4);
    for &addr in &saved {
        // SAFETY: reading the plain words of a resurrected object (its value
        // was dropped, but Phoenix's payload has no drop glue).
        let payload = unsafe { (*(addr as *const Phoenix)).payload };
        assert!(
            payload[0] < 50 && payload[1..] == [8, 7, 6],
            "a resurrected object was reused: {payload:?}"
        );
    }
}

#[test]
fn local_finalizers_run_on_their_own_thread() {
    static THREAD: Mutex<Option<std::thread::ThreadId>> = Mutex::new(None);
    struct NotSend(#[allow(dead_code)] std::rc::Rc<u8>);
    impl Drop for NotSend {
        fn drop(&mut self) {
            *THREAD.lock().unwrap() = Some(std::thread::current().id());
        }
    }
    let h = std::thread::spawn(|| {
        #[inline(never)]
        fn make() {
            black_box(Gc::new_local(NotSend(std::rc::Rc::new(1))));
        }
        make();
        for _ in 0..4 {
            churn(1);
            oohgc::collect();
            oohgc::run_finalizers();
            if THREAD.lock().unwrap().is_some() {
                break;
            }
        }
        std::thread::current().id()
    });
    let id = h.join().unwrap();
    assert_eq!(*THREAD.lock().unwrap(), Some(id));
}

#[test]
fn weak_references_clear_when_and_only_when_the_target_is_gone() {
    let live = Gc::new([1u64, 2, 3]);
    let weak_live = Gc::downgrade(&live);
    #[inline(never)]
    fn dead_weak() -> GcWeak<[u64; 3]> {
        Gc::downgrade(&Gc::new([4u64, 5, 6]))
    }
    let weak_dead = dead_weak();
    // `dead_weak`'s frame held the target: wipe it, or a later frame's
    // uninitialised slot may still hold the pointer when the stack is scanned.
    common::clobber_stack();
    collect_many(4);
    assert_eq!(
        *weak_live
            .upgrade()
            .expect("cleared while the target was live"),
        [1, 2, 3]
    );
    assert!(
        weak_dead.upgrade().is_none(),
        "not cleared after the target became unreachable"
    );
    black_box(&live);
    // A weak map: entries vanish with their values.
    let mut map = std::collections::HashMap::new();
    let keep: Vec<Gc<u64>> = (0..50).map(Gc::new).collect();
    for (i, k) in keep.iter().enumerate() {
        map.insert(i, Gc::downgrade(k));
    }
    #[inline(never)]
    fn add_dead(map: &mut std::collections::HashMap<usize, GcWeak<u64>>) {
        for i in 50..100 {
            map.insert(i, Gc::downgrade(&Gc::new(i as u64)));
        }
    }
    add_dead(&mut map);
    common::clobber_stack();
    collect_many(4);
    map.retain(|_, w| w.upgrade().is_some());
    assert_eq!(map.len(), 50);
    black_box(&keep);
}

#[test]
fn upgrades_racing_collections_never_see_freed_objects() {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                oohgc::collect();
            }
        })
    };
    let mut upgraded = 0;
    for round in 0..300u64 {
        let weaks: Vec<GcWeak<[u64; 8]>> = (0..50)
            .map(|i| Gc::downgrade(&Gc::new([round * 100 + i; 8])))
            .collect();
        churn(1);
        for (i, w) in weaks.iter().enumerate() {
            if let Some(g) = w.upgrade() {
                upgraded += 1;
                assert!(
                    g.iter().all(|&x| x == round * 100 + i as u64),
                    "upgrade returned a freed object"
                );
            }
        }
    }
    stop.store(true, Ordering::Release);
    c.join().unwrap();
    eprintln!("{upgraded} successful upgrades");
}
