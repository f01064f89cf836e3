//! Phoenix pca: the mean of every row, then the covariance matrix.
//!
//! Integer arithmetic as in Phoenix (`cov[i][j] = sum_k (x_ik - m_i)(x_jk -
//! m_j) / (cols - 1)`, upper triangle). Each map task (one row of the
//! covariance matrix) is a heap-allocated result folded into the checksum.

use crate::heap::Heap;
use crate::rng::{mix, Rng};
use crate::workloads::{Size, SEED};

/// Rows (= columns) for `size` (see the size table in `phoenix`).
pub fn order(size: Size) -> usize {
    size.pick(48, 768, 1024, 1536)
}

/// Run pca at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let (rows, cols) = (order(size), order(size));
    let mut rng = Rng::new(SEED ^ 0x7063);
    let mut matrix = heap.alloc_data::<i64>(rows * cols);
    for row in matrix.chunks_exact_mut(cols) {
        for v in row {
            *v = rng.below(100) as i64;
        }
        heap.tick();
    }
    let mut means = heap.alloc_data::<i64>(rows);
    for (r, mean) in means.iter_mut().enumerate() {
        *mean = matrix[r * cols..(r + 1) * cols].iter().sum::<i64>() / cols as i64;
        heap.tick();
    }
    let mut checksum = 0;
    for i in 0..rows {
        let mut cov_row = heap.alloc_data::<i64>(rows - i);
        let row_i = &matrix[i * cols..(i + 1) * cols];
        for j in i..rows {
            let row_j = &matrix[j * cols..(j + 1) * cols];
            let sum: i64 = row_i
                .iter()
                .zip(row_j)
                .map(|(x, y)| (x - means[i]) * (y - means[j]))
                .sum();
            cov_row[j - i] = sum / (cols as i64 - 1);
            heap.tick();
        }
        checksum = cov_row.iter().fold(checksum, |c, &v| mix(c, v as u64));
        heap.free_data(cov_row);
    }
    heap.free_data(means);
    heap.free_data(matrix);
    checksum
}
