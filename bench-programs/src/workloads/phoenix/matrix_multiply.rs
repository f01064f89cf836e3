//! Phoenix matrix-multiply: C = A x B for square integer matrices.
//!
//! B is transposed once so that each map task (one row of C) reads both
//! operands sequentially; each row of C is a heap-allocated result that the
//! reduce step folds into the checksum and releases.

use crate::heap::Heap;
use crate::rng::{mix, Rng};
use crate::workloads::{Size, SEED};

/// Matrix order for `size` (see the size table in `phoenix`).
pub fn order(size: Size) -> usize {
    size.pick(48, 640, 1000, 1600)
}

/// Run matrix-multiply at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let n = order(size);
    let mut rng = Rng::new(SEED ^ 0x6d6d);
    let mut a = heap.alloc_data::<i64>(n * n);
    let mut b_t = heap.alloc_data::<i64>(n * n);
    for row in a.chunks_exact_mut(n) {
        for v in row {
            *v = rng.below(16) as i64;
        }
        heap.tick();
    }
    // Generate B row-major, store it transposed.
    for i in 0..n {
        for j in 0..n {
            b_t[j * n + i] = rng.below(16) as i64;
        }
        heap.tick();
    }
    let mut checksum = 0;
    for i in 0..n {
        let mut row = heap.alloc_data::<i64>(n);
        let a_row = &a[i * n..(i + 1) * n];
        for (j, out) in row.iter_mut().enumerate() {
            let b_col = &b_t[j * n..(j + 1) * n];
            *out = a_row.iter().zip(b_col).map(|(x, y)| x * y).sum();
            heap.tick();
        }
        checksum = row.iter().fold(checksum, |c, &v| mix(c, v as u64));
        heap.free_data(row);
    }
    heap.free_data(b_t);
    heap.free_data(a);
    checksum
}
