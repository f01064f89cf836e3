//! The `--markdown` report: the tables, the legend, the counters of every
//! configuration (PML events and modelled time beside measured time), and
//! the reasons for configurations that did not run.

use super::table::{array_writer_table, failures, heap_table, paper_tables, LEGEND};
use crate::runner::Report;

/// The Markdown text of `report`.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "# oohgc-bench report\n\nSize {}, {} run(s) per configuration (medians), baseline `{}`.\n\n",
        report.size, report.runs, report.baseline
    );
    let heap = heap_table(report);
    if !heap.rows.is_empty() {
        out += "## Collectors\n\n";
        out += &heap.to_markdown();
        out.push('\n');
    }
    let aw = array_writer_table(report);
    if !aw.rows.is_empty() {
        out += "## Dirty sources alone (array-writer)\n\n";
        out += &aw.to_markdown();
        out.push('\n');
    }
    out += "## Legend\n\n";
    for line in LEGEND.lines() {
        out += &format!("- {line}\n");
    }
    let with_counters: Vec<_> = report
        .summaries
        .iter()
        .filter(|s| !s.counters.is_empty())
        .collect();
    if !with_counters.is_empty() {
        out += "\n## Counters (medians; names ending `_modelled_ns` are modelled estimates)\n\n";
        for s in with_counters {
            out += &format!("### {} — {}\n\n", s.workload, s.config);
            for (name, value) in &s.counters {
                out += &format!("- `{name}`: {value:.0}\n");
            }
            out.push('\n');
        }
    }
    let f = failures(report);
    if !f.is_empty() {
        out += "\n## Not run\n\n";
        for line in f.lines() {
            out += &format!("- {}\n", line.trim());
        }
    }
    out
}

/// The `paper` Markdown report: the GC-time and run-time tables in the
/// layout of the paper's Figs. 5 and 6, then the full report.
pub fn render_paper(report: &Report, sources: &[&str]) -> String {
    let (gc, app) = paper_tables(report, sources);
    let mut out = format!(
        "# OoH Boehm evaluation, reproduced in shape\n\nSize {}, {} run(s) per configuration (medians).\n\n",
        report.size, report.runs
    );
    out += "## GC time: sum of collector pauses, ms (cf. paper Fig. 5)\n\n";
    out += &gc.to_markdown();
    out += "\n## Application run time, ms (x oohgc/none: tracking overhead; cf. paper Fig. 6)\n\n";
    out += &app.to_markdown();
    out += "\n";
    out + &render(report).replacen("# oohgc-bench report", "## All figures", 1)
}
