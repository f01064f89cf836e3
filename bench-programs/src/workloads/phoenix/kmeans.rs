//! Phoenix kmeans: iterative 3-D k-means over integer points.
//!
//! Each iteration's map tasks (4096 points) assign points to the nearest
//! mean and accumulate per-cluster sums in a heap-allocated partial; the
//! reduce step adds the partials and computes the new means. Stops when no
//! point changes cluster or after [`MAX_ITERATIONS`].

use crate::heap::Heap;
use crate::rng::{mix, Rng};
use crate::workloads::{Size, SEED};

/// Coordinates per point.
const DIM: usize = 3;
/// Number of means.
const CLUSTERS: usize = 16;
/// Coordinates lie in `0..GRID` (Phoenix's `-s`).
const GRID: u64 = 1000;
/// Points per map task.
const TASK_POINTS: usize = 4096;
/// Iteration cap.
pub const MAX_ITERATIONS: u32 = 30;

/// Points for `size` (see the size table in `phoenix`).
pub fn points(size: Size) -> usize {
    size.pick(2_000, 100_000, 200_000, 1_000_000)
}

/// Run kmeans at `size`; returns the checksum.
pub fn run<H: Heap>(heap: &mut H, size: Size) -> u64 {
    let n = points(size);
    let mut rng = Rng::new(SEED ^ 0x6b6d);
    let mut coords = heap.alloc_data::<i64>(n * DIM);
    for point in coords.chunks_exact_mut(DIM) {
        for c in point {
            *c = rng.below(GRID) as i64;
        }
        heap.tick();
    }
    let mut means = heap.alloc_data::<i64>(CLUSTERS * DIM);
    means.copy_from_slice(&coords[..CLUSTERS * DIM]);
    let mut assignment = heap.alloc_data::<u32>(n);
    for a in assignment.iter_mut() {
        *a = u32::MAX;
    }

    let mut iterations = 0;
    loop {
        iterations += 1;
        let mut changed = 0u64;
        // Per cluster: DIM sums and a count.
        let mut totals = heap.alloc_data::<i64>(CLUSTERS * (DIM + 1));
        for task in 0..n.div_ceil(TASK_POINTS) {
            let mut partial = heap.alloc_data::<i64>(CLUSTERS * (DIM + 1));
            for p in task * TASK_POINTS..((task + 1) * TASK_POINTS).min(n) {
                let point = &coords[p * DIM..(p + 1) * DIM];
                let mut best = (i64::MAX, 0usize);
                for (k, mean) in means.chunks_exact(DIM).enumerate() {
                    let d: i64 = point.iter().zip(mean).map(|(a, b)| (a - b) * (a - b)).sum();
                    if d < best.0 {
                        best = (d, k);
                    }
                }
                if assignment[p] != best.1 as u32 {
                    assignment[p] = best.1 as u32;
                    changed += 1;
                }
                let slot = &mut partial[best.1 * (DIM + 1)..(best.1 + 1) * (DIM + 1)];
                for d in 0..DIM {
                    slot[d] += point[d];
                }
                slot[DIM] += 1;
                heap.tick();
            }
            for (t, p) in totals.iter_mut().zip(partial.iter()) {
                *t += *p;
            }
            heap.free_data(partial);
        }
        for k in 0..CLUSTERS {
            let count = totals[k * (DIM + 1) + DIM];
            if count > 0 {
                for d in 0..DIM {
                    means[k * DIM + d] = totals[k * (DIM + 1) + d] / count;
                }
            }
        }
        heap.free_data(totals);
        if changed == 0 || iterations >= MAX_ITERATIONS {
            break;
        }
    }

    let mut checksum = mix(0, iterations as u64);
    for &m in means.iter() {
        checksum = mix(checksum, m as u64);
    }
    heap.free_data(assignment);
    heap.free_data(means);
    heap.free_data(coords);
    checksum
}
