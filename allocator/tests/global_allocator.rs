//! The heap as the process's `#[global_allocator]` (Manual objects): a
//! randomized Box/Vec/String/HashMap/BTreeMap workload on several threads,
//! checked against a deterministic expectation.

use oohgc_allocator::{alloc, find_object, free, realloc, stats, ObjectKind};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};

struct Heap;

// SAFETY: forwards to the oohgc heap, which returns suitably aligned, zeroed memory or null.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc(layout.size(), layout.align(), ObjectKind::Manual)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from alloc above.
        unsafe { free(ptr) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: ptr came from alloc above.
        unsafe { realloc(ptr, new_size, layout.align()) }
    }
}

#[global_allocator]
static GLOBAL: Heap = Heap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A workload whose result depends only on the seed.
fn workload(seed: u64, steps: usize) -> (u64, usize, String) {
    let mut rng = Rng(seed);
    let mut map: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut tree: BTreeMap<String, Box<[u64; 4]>> = BTreeMap::new();
    let mut text = String::new();
    let mut boxes: Vec<Box<u128>> = Vec::new();
    for _ in 0..steps {
        let r = rng.next();
        match r % 6 {
            0 => {
                map.entry(r % 512)
                    .or_default()
                    .extend((0..(r >> 40) % 50).map(|x| x as u32));
            }
            1 => {
                map.remove(&(r % 512));
            }
            2 => {
                tree.insert(
                    format!("k{}", r % 1000),
                    Box::new([r, r >> 1, r >> 2, r >> 3]),
                );
            }
            3 => {
                let k = format!("k{}", r % 1000);
                tree.remove(&k);
            }
            4 => {
                text.push_str(&format!("{:x}", r % 4096));
                if text.len() > 5000 {
                    text = text.split_off(text.len() / 2);
                }
            }
            _ => {
                boxes.push(Box::new(r as u128 * 3 + 1));
                if boxes.len() > 300 {
                    boxes.drain(..150);
                }
            }
        }
    }
    let mut sum = 0u64;
    for (k, v) in &map {
        sum = sum.wrapping_add(
            k.wrapping_mul(v.iter().map(|&x| x as u64).sum::<u64>() + v.len() as u64),
        );
    }
    for (k, v) in &tree {
        sum = sum.wrapping_add((k.len() as u64).wrapping_mul(v[0]) ^ v[3]);
    }
    sum = boxes.iter().fold(sum, |s, b| s.wrapping_add(**b as u64));
    (sum, tree.len() + map.len(), text)
}

#[test]
fn std_collections_on_the_heap() {
    let v: Vec<u64> = (0..1000).collect();
    let info = find_object(v.as_ptr() as usize).expect("Vec buffer is not in the heap");
    assert_eq!(info.kind, ObjectKind::Manual);

    let expected: Vec<_> = (0..4u64).map(|s| workload(s * 7 + 1, 20_000)).collect();
    // Same workloads again, concurrently: identical results.
    let handles: Vec<_> = (0..4u64)
        .map(|s| std::thread::spawn(move || workload(s * 7 + 1, 20_000)))
        .collect();
    for (h, e) in handles.into_iter().zip(&expected) {
        assert_eq!(&h.join().unwrap(), e);
    }
    // And repeatable on this thread.
    assert_eq!(workload(1, 20_000), expected[0]);
    // Different seeds really differ (the check can fail).
    assert_ne!(expected[0].0, expected[1].0);
    assert!(stats().manual_bytes > 0);
}
