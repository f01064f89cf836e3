//! The `--csv` report: one row per workload and configuration.

use crate::runner::{Report, Summary};
use std::path::Path;

/// The CSV header.
pub const HEADER: &[&str] = &[
    "workload",
    "size",
    "config",
    "runs_ok",
    "error",
    "checksum",
    "checksum_agrees",
    "wall_ms",
    "wall_vs_baseline",
    "cpu_ms",
    "rss_mib",
    "collections",
    "total_pause_ms",
    "pause_p50_ms",
    "pause_p99_ms",
    "pause_max_ms",
    "max_stall_ms",
    "dirty_pages",
    "tracking_overhead",
    "harvest_ms",
    "pml_entries",
    "modelled_ms",
    "mutator_slowdown",
    "total_slowdown",
];

/// Quote a field if it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn row(s: &Summary) -> Vec<String> {
    let extra = |n: &str| s.extra.iter().find(|(m, _)| m == n).map(|(_, v)| *v);
    vec![
        s.workload.clone(),
        s.size.clone(),
        s.config.clone(),
        s.runs_ok.to_string(),
        s.error.clone().unwrap_or_default(),
        s.checksum.map(|c| format!("{c:016x}")).unwrap_or_default(),
        s.checksum_agrees.to_string(),
        format!("{:.3}", s.wall_ms),
        opt(s.wall_vs_baseline),
        format!("{:.3}", s.cpu_ms),
        format!("{:.2}", s.rss_mib),
        format!("{}", s.collections),
        format!("{:.4}", s.total_pause_ms),
        format!("{:.4}", s.pause_p50_ms),
        format!("{:.4}", s.pause_p99_ms),
        format!("{:.4}", s.pause_max_ms),
        format!("{:.4}", s.max_stall_ms),
        format!("{}", s.dirty_pages),
        opt(s.tracking_overhead),
        format!("{:.4}", s.harvest_ms),
        format!("{}", s.pml_entries),
        format!("{:.4}", s.modelled_ms),
        opt(extra("mutator_slowdown")),
        opt(extra("total_slowdown")),
    ]
}

/// The CSV text of `report`.
pub fn render(report: &Report) -> String {
    let mut out = HEADER.join(",") + "\n";
    for s in &report.summaries {
        out += &row(s)
            .iter()
            .map(|f| field(f))
            .collect::<Vec<_>>()
            .join(",");
        out.push('\n');
    }
    out
}

/// Write the CSV report.
pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    std::fs::write(path, render(report))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
