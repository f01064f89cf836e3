//! Small statistics helpers: percentiles and medians over measured figures.

use crate::heap::CollectorFigures;

/// The `p`-th percentile (0..=100) of `sorted` by nearest rank; 0 when empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of `values` (mean of the middle two for even counts);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Figures built from a list of pauses and their total.
pub fn from_pauses(mut pauses: Vec<u64>, total_ns: u64) -> CollectorFigures {
    pauses.sort_unstable();
    CollectorFigures {
        total_pause_ns: total_ns,
        pause_p50_ns: percentile(&pauses, 50.0),
        pause_p99_ns: percentile(&pauses, 99.0),
        pause_max_ns: pauses.last().copied().unwrap_or(0),
        pauses_ns: pauses,
        ..CollectorFigures::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn pause_figures_are_sorted_summaries() {
        let f = from_pauses(vec![5, 1, 9, 3], 18);
        assert_eq!(f.pause_max_ns, 9);
        assert_eq!(f.pause_p50_ns, 3);
        assert_eq!(f.total_pause_ns, 18);
        assert_eq!(f.pauses_ns, vec![1, 3, 5, 9]);
    }
}
