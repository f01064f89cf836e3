//! Objects reachable only from one kind of root survive many forced
//! collections with their contents intact (issue: heap and stop-the-world
//! collector). Every test churns the heap between collections, so an object
//! freed by mistake is overwritten and the content check fails.

mod common;

use common::{collect_many, Rng};
use oohgc::Gc;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

#[global_allocator]
static GC: oohgc::GcAllocator = oohgc::GcAllocator;

/// A payload whose contents prove it was not freed and reused.
#[derive(Debug)]
struct Payload {
    words: [u64; 8],
}

impl Payload {
    fn new(seed: u64) -> Payload {
        let mut w = [0; 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64);
        }
        Payload { words: w }
    }
    fn check(&self, seed: u64) {
        assert_eq!(
            self.words,
            Payload::new(seed).words,
            "object contents changed: it was freed while live"
        );
    }
}

struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
    val: u64,
}

fn tree(depth: u32, val: u64) -> Gc<Node> {
    if depth == 0 {
        return Gc::new(Node {
            left: None,
            right: None,
            val,
        });
    }
    Gc::new(Node {
        left: Some(tree(depth - 1, val * 2)),
        right: Some(tree(depth - 1, val * 2 + 1)),
        val,
    })
}

fn tree_sum(n: &Gc<Node>) -> u64 {
    n.val + n.left.as_ref().map_or(0, tree_sum) + n.right.as_ref().map_or(0, tree_sum)
}

#[test]
fn the_issue_example_compiles_and_runs() {
    let tree = Gc::new(Node {
        left: None,
        right: None,
        val: 1,
    });
    let shared = Gc::new(std::sync::Mutex::new(Vec::new()));
    shared.lock().unwrap().push(tree);
    oohgc::collect();
    let s = oohgc::stats();
    assert!(s.cycles >= 1);
    assert!(s.heap_size > 0);
    assert_eq!(shared.lock().unwrap()[0].val, 1);
    assert_eq!(
        std::mem::size_of::<Gc<Node>>(),
        std::mem::size_of::<usize>()
    );
}

#[test]
fn local_variable() {
    let p = Gc::new(Payload::new(1));
    let t = tree(10, 1);
    let expect = tree_sum(&t);
    collect_many(5);
    p.check(1);
    assert_eq!(tree_sum(&t), expect);
}

#[test]
fn inside_a_box() {
    let b = Box::new(Gc::new(Payload::new(2)));
    collect_many(5);
    b.check(2);
}

#[test]
fn inside_a_vec() {
    let v: Vec<Gc<Payload>> = (0..1000).map(|i| Gc::new(Payload::new(100 + i))).collect();
    collect_many(5);
    for (i, p) in v.iter().enumerate() {
        p.check(100 + i as u64);
    }
}

#[test]
fn inside_a_hashmap_value() {
    let mut m = HashMap::new();
    for i in 0..500u64 {
        m.insert(format!("key{i}"), Gc::new(Payload::new(1000 + i)));
    }
    collect_many(5);
    for i in 0..500u64 {
        m[&format!("key{i}")].check(1000 + i);
    }
}

static STATIC_SLOT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn in_a_static() {
    publish_payload(&STATIC_SLOT, 3);
    clobber_stack();
    collect_many(5);
    // SAFETY: the static kept the object alive (what this test checks).
    let p: Gc<Payload> =
        unsafe { Gc::from_raw(STATIC_SLOT.load(Ordering::SeqCst) as *const Payload) };
    p.check(3);
}

thread_local! {
    static TLS_SLOT: Cell<usize> = const { Cell::new(0) };
    static TLS_GC: RefCell<Option<Gc<Payload>>> = const { RefCell::new(None) };
}

#[test]
fn in_a_thread_local_of_a_test_thread() {
    TLS_GC.with(|s| *s.borrow_mut() = Some(Gc::new(Payload::new(4))));
    collect_many(5);
    TLS_GC.with(|s| s.borrow().as_ref().unwrap().check(4));
}

/// Allocate a payload and publish its address; no copy stays in this frame.
#[inline(never)]
fn publish_payload(slot: &AtomicUsize, seed: u64) {
    let p = Gc::new(Payload::new(seed));
    slot.store(Gc::as_ptr(&p) as usize, Ordering::Release);
}

/// Overwrite dead stack below the caller so stale copies of pointers do not
/// keep objects alive by accident.
#[inline(never)]
fn clobber_stack() {
    let mut buf = [0u64; 4096];
    black_box(&mut buf);
}

#[test]
fn in_a_thread_local_of_a_thread_that_never_allocated() {
    // The spawned thread takes the address out of `slot` into a const
    // thread_local and never allocates (so it never registered itself);
    // the collector must still find it and scan its TLS.
    let slot = Arc::new(AtomicUsize::new(0));
    let stored = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    publish_payload(&slot, 5);
    let h = {
        let (slot, stored, done) = (slot.clone(), stored.clone(), done.clone());
        std::thread::spawn(move || {
            TLS_SLOT.with(|t| t.set(slot.swap(0, Ordering::AcqRel)));
            stored.store(true, Ordering::Release);
            while !done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            TLS_SLOT.with(|t| t.get())
        })
    };
    while !stored.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    clobber_stack();
    collect_many(5);
    done.store(true, Ordering::Release);
    let addr = h.join().unwrap();
    assert_ne!(addr, 0);
    // SAFETY: the address came from a Gc<Payload>; the test checks it survived.
    let p: Gc<Payload> = unsafe { Gc::from_raw(addr as *const Payload) };
    p.check(5);
}

#[test]
fn in_a_thread_local_of_a_spawned_thread_across_collections() {
    let go = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(2));
    let h = {
        let (go, ready) = (go.clone(), ready.clone());
        std::thread::spawn(move || {
            TLS_GC.with(|s| *s.borrow_mut() = Some(Gc::new(Payload::new(6))));
            ready.wait();
            while !go.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            TLS_GC.with(|s| s.borrow().as_ref().unwrap().check(6));
        })
    };
    ready.wait();
    collect_many(5);
    go.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn on_another_threads_stack_only() {
    let hidden = Arc::new(AtomicUsize::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let h = {
        let (hidden, go) = (hidden.clone(), go.clone());
        std::thread::spawn(move || {
            let p = Gc::new(Payload::new(7));
            let p = black_box(p);
            hidden.store(1, Ordering::Release);
            while !go.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            p.check(7);
        })
    };
    while hidden.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    collect_many(5);
    go.store(true, Ordering::Release);
    h.join().unwrap();
}

#[test]
fn in_a_register_only() {
    // The only copy of the pointer (others are XOR-hidden) lives in a
    // callee-saved register of a spinning thread while this thread collects:
    // it survives only if the stopped thread's registers are scanned.
    let hidden = Arc::new(AtomicUsize::new(0));
    let spinning = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicUsize::new(0));
    let h = {
        let (hidden, spinning, go) = (hidden.clone(), spinning.clone(), go.clone());
        std::thread::spawn(move || {
            let key = 0xA5A5_A5A5_A5A5_A5A5usize;
            let masked = {
                let p = Gc::new(Payload::new(8));
                Gc::as_ptr(&p) as usize ^ key
            };
            hidden.store(masked, Ordering::Release);
            let flag = Arc::as_ptr(&go) as usize;
            spinning.store(true, Ordering::Release);
            let out: usize;
            // SAFETY: the asm only reads the flag word and moves values
            // between registers.
            unsafe {
                std::arch::asm!(
                    "xor {p}, {k}",
                    "2:",
                    "pause",
                    "cmp qword ptr [{f}], 0",
                    "je 2b",
                    p = inout(reg) masked => out,
                    k = in(reg) key,
                    f = in(reg) flag,
                );
            }
            // SAFETY: `out` is the object's address; the test checks it survived.
            let p: Gc<Payload> = unsafe { Gc::from_raw(out as *const Payload) };
            p.check(8);
        })
    };
    while !spinning.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    collect_many(8);
    go.store(1, Ordering::Release);
    h.join().unwrap();
    assert_ne!(hidden.load(Ordering::Acquire), 0);
}

#[test]
fn through_an_interior_pointer() {
    let field_ref: &u64 = {
        let p = Gc::new(Payload::new(9));
        // SAFETY: the reference keeps the object alive through the
        // conservative scan (what this test checks).
        unsafe { &*(&p.words[5] as *const u64) }
    };
    let slice = Gc::from_slice(&[11u64, 22, 33, 44, 55, 66, 77, 88]);
    let elem: &u64 = {
        // SAFETY: as above, through an element of a slice.
        unsafe { &*(&slice[6] as *const u64) }
    };
    let field_ref = black_box(field_ref);
    let elem = black_box(elem);
    let _ = slice;
    collect_many(5);
    assert_eq!(*field_ref, Payload::new(9).words[5]);
    assert_eq!(*elem, 77);
}

#[test]
fn gc_slices_and_strings() {
    let s: Gc<str> = Gc::from("hello, collector");
    let v = Gc::from_slice_noscan(&[1u32, 2, 3, 4]);
    let inner = Gc::new(Payload::new(10));
    let held = Gc::from_slice(&[inner, inner]);
    let _ = inner;
    collect_many(5);
    assert_eq!(&*s, "hello, collector");
    assert_eq!(&*v, &[1, 2, 3, 4]);
    held[1].check(10);
}

#[test]
fn deep_random_graph_with_checksum() {
    struct G {
        id: u64,
        edges: Mutex<Vec<Gc<G>>>,
    }
    let mut rng = Rng(42);
    let nodes: Vec<Gc<G>> = (0..5000)
        .map(|id| {
            Gc::new(G {
                id,
                edges: Mutex::new(Vec::new()),
            })
        })
        .collect();
    for n in &nodes {
        for _ in 0..3 {
            let t = nodes[rng.below(5000) as usize];
            n.edges.lock().unwrap().push(t);
        }
    }
    let root = nodes[0];
    let checksum = |nodes: &[Gc<G>]| -> u64 {
        nodes
            .iter()
            .map(|n| {
                n.edges
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|e| e.id * 31 + n.id)
                    .sum::<u64>()
            })
            .sum()
    };
    let before = checksum(&nodes);
    collect_many(4);
    assert_eq!(checksum(&nodes), before);
    assert_eq!(root.id, 0);
}

#[test]
fn noscan_blocks_live_while_referenced_and_do_not_retain_what_they_hold() {
    const WORDS: usize = 64 * 1024;
    const MASK: u64 = 0xFFFF_0000_0000_FFFF;
    /// Store the only reference to a new object inside `words` (masked in
    /// the local copy returned, so no stack word points to it).
    #[inline(never)]
    fn hide_object_in(words: &mut [u64]) -> (oohgc::GcWeak<Payload>, u64) {
        let hidden = Gc::new(Payload::new(77));
        words[3] = Gc::as_ptr(&hidden) as u64;
        (Gc::downgrade(&hidden), words[3] ^ MASK)
    }
    let layout = std::alloc::Layout::array::<u64>(WORDS).unwrap();
    let block = oohgc::alloc_noscan(layout).as_ptr() as *mut u64;
    // SAFETY: the block has room for WORDS u64s, is zeroed, and stays
    // alive while `block` is on this stack.
    let words = unsafe { std::slice::from_raw_parts_mut(block, WORDS) };
    assert!(
        words.iter().all(|&w| w == 0),
        "alloc_noscan memory is zeroed"
    );
    for (i, w) in words.iter_mut().enumerate() {
        *w = i as u64 ^ 0x5A5A;
    }
    let (weak, masked) = hide_object_in(words);
    collect_many(5);
    let words = black_box(words);
    for (i, w) in words.iter().enumerate() {
        if i != 3 {
            assert_eq!(*w, i as u64 ^ 0x5A5A, "noscan block freed while referenced");
        }
    }
    assert_eq!(words[3] ^ MASK, masked);
    assert!(
        weak.upgrade().is_none(),
        "a pointer stored only inside a noscan block kept its target alive"
    );
}
