//! alloc+free pairs for random sizes 16..=256 B with a ring of recent objects
//! (each step frees the oldest object and allocates a new one): this heap vs
//! glibc `malloc/free` with the same pattern, on 1 thread and on 2 threads.
//! Criterion reports each; the ratios oohgc/glibc (median and minimum of 9
//! interleaved rounds measured in this same run) are printed at the end.
//! Also: `find_object` for interior pointers, random heap words and
//! addresses outside the heap; `sweep` of 100k objects, half of them live.

use criterion::{criterion_group, Criterion};
use oohgc_allocator::{
    alloc, clear_marks, find_object, free, heap_bounds, sweep, try_mark, ObjectKind,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const RING: usize = 512;
const SIZES: usize = 4096;

fn sizes() -> Vec<usize> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..SIZES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            16 + (x % 241) as usize
        })
        .collect()
}

trait Allocator: Sync {
    fn alloc(&self, size: usize) -> *mut u8;
    fn free(&self, p: *mut u8);
}

struct Oohgc;
impl Allocator for Oohgc {
    #[inline(always)]
    fn alloc(&self, size: usize) -> *mut u8 {
        alloc(size, 8, ObjectKind::Manual)
    }
    #[inline(always)]
    fn free(&self, p: *mut u8) {
        // SAFETY: p came from alloc and is freed once.
        unsafe { free(p) }
    }
}

struct Glibc;
impl Allocator for Glibc {
    #[inline(always)]
    fn alloc(&self, size: usize) -> *mut u8 {
        // SAFETY: plain malloc.
        unsafe { libc::malloc(size) as *mut u8 }
    }
    #[inline(always)]
    fn free(&self, p: *mut u8) {
        // SAFETY: p came from malloc and is freed once.
        unsafe { libc::free(p as *mut libc::c_void) }
    }
}

/// Runs `pairs` free+alloc steps over a ring; returns the elapsed time.
fn ring<A: Allocator>(a: &A, sizes: &[usize], pairs: u64) -> Duration {
    let mut ring: Vec<*mut u8> = sizes[..RING].iter().map(|&s| a.alloc(s)).collect();
    let start = Instant::now();
    for i in 0..pairs as usize {
        let slot = i % RING;
        a.free(ring[slot]);
        let p = a.alloc(sizes[i % SIZES]);
        // SAFETY: p has at least 16 bytes; a store keeps the allocation honest.
        unsafe { *p = i as u8 };
        ring[slot] = black_box(p);
    }
    let t = start.elapsed();
    for p in ring {
        a.free(p);
    }
    t
}

/// Two threads running `ring` at once; returns the slower thread's time.
fn ring2<A: Allocator>(a: &A, sizes: &[usize], pairs: u64) -> Duration {
    std::thread::scope(|s| {
        let h: Vec<_> = (0..2).map(|_| s.spawn(|| ring(a, sizes, pairs))).collect();
        h.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

fn bench(c: &mut Criterion) {
    let sizes = sizes();
    let mut g = c.benchmark_group("alloc_free_16_256B");
    g.bench_function("oohgc", |b| b.iter_custom(|n| ring(&Oohgc, &sizes, n)));
    g.bench_function("glibc", |b| b.iter_custom(|n| ring(&Glibc, &sizes, n)));
    g.bench_function("oohgc_2_threads", |b| {
        b.iter_custom(|n| ring2(&Oohgc, &sizes, n))
    });
    g.bench_function("glibc_2_threads", |b| {
        b.iter_custom(|n| ring2(&Glibc, &sizes, n))
    });
    g.finish();

    // The conservative scanner's question: is this word a pointer into an object?
    let objs: Vec<usize> = (0..10_000)
        .map(|i| alloc(16 + (i % 241), 8, ObjectKind::Managed) as usize)
        .collect();
    let (lo, _) = heap_bounds();
    let span = objs.iter().max().unwrap() - lo;
    let mut g = c.benchmark_group("find_object");
    g.bench_function("interior_hit", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % objs.len();
            black_box(find_object(objs[i] + 5))
        })
    });
    g.bench_function("random_heap_word", |b| {
        let mut x = 0x9e37_79b9u64;
        b.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            black_box(find_object(lo + (x as usize) % span))
        })
    });
    g.bench_function("outside_heap", |b| {
        b.iter(|| black_box(find_object(black_box(0x1000))))
    });
    g.finish();
    for p in objs {
        // SAFETY: allocated above.
        unsafe { free(p as *mut u8) };
    }

    // Sweeping 100k small Managed objects (16-256 B), half of them marked.
    let mut g = c.benchmark_group("sweep");
    g.sample_size(20);
    g.bench_function("100k_objects_half_live", |b| {
        b.iter_batched(
            || {
                clear_marks();
                let objs: Vec<usize> = (0..100_000)
                    .map(|i| alloc(16 + (i * 37) % 241, 8, ObjectKind::Managed) as usize)
                    .collect();
                for p in objs.iter().step_by(2) {
                    try_mark(*p);
                }
                objs
            },
            |objs| {
                let st = sweep();
                assert!(st.objects_freed >= 50_000);
                objs
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
    clear_marks();
    sweep();
}

/// (median, minimum) of the samples; the minimum is the least disturbed by
/// other load on a shared machine.
fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0])
}

fn print_ratios() {
    let sizes = sizes();
    let pairs = 2_000_000u64;
    let ns = |d: Duration| d.as_nanos() as f64 / pairs as f64;
    let (mut o1, mut g1, mut o2, mut g2) = (vec![], vec![], vec![], vec![]);
    for _ in 0..9 {
        o1.push(ns(ring(&Oohgc, &sizes, pairs)));
        g1.push(ns(ring(&Glibc, &sizes, pairs)));
        o2.push(ns(ring2(&Oohgc, &sizes, pairs)));
        g2.push(ns(ring2(&Glibc, &sizes, pairs)));
    }
    println!("alloc+free pair, random 16-256 B, ring of {RING}, 9 interleaved rounds in this run:");
    for (name, o, g) in [("1 thread ", o1, g1), ("2 threads", o2, g2)] {
        let ((om, on), (gm, gn)) = (summary(o), summary(g));
        println!(
            "  {name}: median oohgc {om:.2} ns, glibc {gm:.2} ns, ratio {:.2} | min oohgc {on:.2} ns, glibc {gn:.2} ns, ratio {:.2}",
            om / gm,
            on / gn
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
