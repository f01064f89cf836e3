//! The result of one worker run: the machine-readable line a worker prints
//! and the runner parses.

use serde::{Deserialize, Serialize};

/// Prefix of the single result line a worker prints on stdout.
pub const RESULT_PREFIX: &str = "OOHGC-BENCH-RESULT ";

/// Pauses kept per run in the result (the rest still count in totals).
pub const MAX_PAUSES_KEPT: usize = 4096;

/// Everything one run of one workload in one configuration measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Workload name.
    pub workload: String,
    /// Size name.
    pub size: String,
    /// Configuration label, e.g. `oohgc/epml`, `bdwgc`, `direct/uffd`.
    pub config: String,
    /// The workload's checksum (equal across configurations).
    pub checksum: u64,
    /// Wall time of the workload, ns.
    pub wall_ns: u64,
    /// User + system CPU time of the whole worker process, ns.
    pub cpu_ns: u64,
    /// Peak resident set of the worker, KiB.
    pub max_rss_kb: u64,
    /// Collections completed.
    pub collections: u64,
    /// Heap size at the end, bytes.
    pub heap_size: u64,
    /// Sum of collector pauses, ns.
    pub total_pause_ns: u64,
    /// Median pause, ns.
    pub pause_p50_ns: u64,
    /// 99th-percentile pause, ns.
    pub pause_p99_ns: u64,
    /// Longest pause, ns.
    pub pause_max_ns: u64,
    /// Longest gap the mutator saw (see `stall`), ns.
    pub max_stall_ns: u64,
    /// Pages the dirty source reported.
    pub dirty_pages: u64,
    /// The dirty source the collector reports using.
    pub dirty_source: String,
    /// Collector / source counters (`*_modelled_ns` are estimates).
    pub counters: Vec<(String, u64)>,
    /// Individual pauses, ns, where the collector gives them (capped).
    pub pauses_ns: Vec<u64>,
    /// Workload-specific figures (array-writer slowdowns, ...).
    pub extra: Vec<(String, f64)>,
}

impl RunResult {
    /// The result line: prefix + JSON.
    pub fn to_line(&self) -> String {
        format!(
            "{RESULT_PREFIX}{}",
            serde_json::to_string(self).expect("a RunResult always serialises")
        )
    }

    /// Find and parse the result line in a worker's stdout.
    pub fn from_output(stdout: &str) -> Result<RunResult, String> {
        let line = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(RESULT_PREFIX))
            .ok_or_else(|| "the worker printed no result line".to_string())?;
        serde_json::from_str(line).map_err(|e| format!("bad result line from worker: {e}"))
    }

    /// A named extra figure.
    pub fn extra(&self, name: &str) -> Option<f64> {
        self.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Modelled hardware time, ns (never measured time): the source's
    /// `*total_modelled_ns` counter where it gives one, else the sum of
    /// its `*_modelled_ns` counters.
    pub fn modelled_ns(&self) -> u64 {
        if let Some((_, total)) = self
            .counters
            .iter()
            .find(|(n, _)| n.ends_with("total_modelled_ns"))
        {
            return *total;
        }
        self.counters
            .iter()
            .filter(|(n, _)| n.ends_with("_modelled_ns"))
            .map(|(_, v)| *v)
            .sum()
    }

    /// A named counter, 0 when absent.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips_among_other_output() {
        let r = RunResult {
            workload: "gcbench".into(),
            checksum: u64::MAX,
            counters: vec![("log_full_modelled_ns".into(), 5), ("exits".into(), 2)],
            ..RunResult::default()
        };
        let out = format!("noise\n{}\nmore noise\n", r.to_line());
        let back = RunResult::from_output(&out).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.modelled_ns(), 5);
        assert_eq!(back.counter("exits"), 2);
        assert!(RunResult::from_output("nothing").is_err());
        let with_total = RunResult {
            counters: vec![
                ("a_modelled_ns".into(), 5),
                ("b_modelled_ns".into(), 7),
                ("pml_total_modelled_ns".into(), 12),
            ],
            ..RunResult::default()
        };
        assert_eq!(
            with_total.modelled_ns(),
            12,
            "the total is not added to its parts"
        );
    }
}
