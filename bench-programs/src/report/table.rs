//! Tables: the terminal output of `run`, `paper` and `compare`, rendered as
//! aligned text or as Markdown from one [`Table`] value.

use crate::runner::{Report, Summary};

/// Rows of cells under a header.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows; a row with one cell spans the table (error notes).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Aligned plain text (numbers right-aligned, first two columns left).
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in self.rows.iter().filter(|r| r.len() == self.header.len()) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i < 2 {
                    out += &format!("{cell:<w$}  ");
                } else {
                    out += &format!("{cell:>w$}  ");
                }
            }
            out.trim_end().to_string() + "\n"
        };
        let mut out = line(&self.header);
        out += &(widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
            + "\n");
        for row in &self.rows {
            if row.len() == self.header.len() {
                out += &line(row);
            } else {
                out += &(row.join("  ") + "\n");
            }
        }
        out
    }

    /// A Markdown (pipe) table.
    pub fn to_markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = format!(
            "| {} |\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        out += &format!("|{}\n", "---|".repeat(self.header.len()));
        for row in &self.rows {
            let mut cells: Vec<String> = row.iter().map(|c| esc(c)).collect();
            cells.resize(self.header.len(), String::new());
            out += &format!("| {} |\n", cells.join(" | "));
        }
        out
    }
}

fn ms(v: f64) -> String {
    if v == 0.0 {
        "-".into()
    } else if v < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into())
}

fn count(v: f64) -> String {
    if v == 0.0 {
        "-".into()
    } else {
        format!("{v:.0}")
    }
}

fn extra(s: &Summary, name: &str) -> Option<f64> {
    s.extra.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// The main per-configuration table (heap workloads).
pub fn heap_table(report: &Report) -> Table {
    let mut t = Table::new(&[
        "workload",
        "config",
        "wall ms",
        "vs base",
        "cpu ms",
        "RSS MiB",
        "GCs",
        "p50 ms",
        "p99 ms",
        "max ms",
        "stall ms",
        "dirty pg",
        "track ovh",
        "harv ms",
        "PML ent",
        "model ms",
        "checksum",
    ]);
    for s in report
        .summaries
        .iter()
        .filter(|s| s.workload != "array-writer")
    {
        if s.runs_ok == 0 {
            t.rows.push(vec![
                s.workload.clone(),
                s.config.clone(),
                s.error.clone().unwrap_or_else(|| "no runs".into()),
            ]);
            continue;
        }
        let checksum = match (s.checksum, s.checksum_agrees) {
            (Some(c), true) => format!("{:08x} ok", c >> 32),
            (Some(c), false) => format!("{:08x} MISMATCH", c >> 32),
            (None, _) => "differs between runs".into(),
        };
        t.rows.push(vec![
            s.workload.clone(),
            s.config.clone(),
            ms(s.wall_ms),
            ratio(s.wall_vs_baseline),
            ms(s.cpu_ms),
            format!("{:.1}", s.rss_mib),
            count(s.collections),
            ms(s.pause_p50_ms),
            ms(s.pause_p99_ms),
            ms(s.pause_max_ms),
            ms(s.max_stall_ms),
            count(s.dirty_pages),
            ratio(s.tracking_overhead),
            ms(s.harvest_ms),
            count(s.pml_entries),
            ms(s.modelled_ms),
            checksum,
        ]);
        if let Some(e) = &s.error {
            t.rows
                .push(vec![String::new(), format!("  (some runs {e})")]);
        }
    }
    t
}

/// The array-writer table (dirty sources driven directly).
pub fn array_writer_table(report: &Report) -> Table {
    let mut t = Table::new(&[
        "workload",
        "source",
        "region MiB",
        "passes",
        "untracked ms/pass",
        "tracked ms/pass",
        "harvest ms/pass",
        "mutator slowdown",
        "total slowdown",
        "model ms",
    ]);
    for s in report
        .summaries
        .iter()
        .filter(|s| s.workload == "array-writer")
    {
        let source = s.config.trim_start_matches("direct/").to_string();
        if s.runs_ok == 0 {
            t.rows.push(vec![
                s.workload.clone(),
                source,
                s.error.clone().unwrap_or_else(|| "no runs".into()),
            ]);
            continue;
        }
        let e = |n| extra(s, n).unwrap_or(0.0);
        t.rows.push(vec![
            s.workload.clone(),
            source,
            format!("{:.0}", e("region_bytes") / 1048576.0),
            format!("{:.0}", e("tracked_passes")),
            ms(e("untracked_pass_ns") / 1e6),
            ms(e("tracked_pass_ns") / 1e6),
            ms(e("harvest_pass_ns") / 1e6),
            format!("{:.2}x", e("mutator_slowdown")),
            format!("{:.2}x", e("total_slowdown")),
            ms(s.modelled_ms),
        ]);
    }
    t
}

/// Legend printed under the tables.
pub const LEGEND: &str = "\
wall/cpu: median of the runs; vs base: wall / baseline's wall (same run); p50/p99/max: collector pauses;
stall: longest gap the mutator itself saw (clock sampled every 64 allocations); dirty pg: pages harvested;
track ovh: wall / oohgc/none's wall; harv ms: measured time in the source's harvests; PML ent: PML log
entries; model ms: modelled PML hardware time for the same events (an estimate, not a measurement);
checksum: high 32 bits, `ok` when equal across every configuration of the workload.
";

/// The `run` output.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "size {}, {} run(s) per configuration, baseline {}\n",
        report.size, report.runs, report.baseline
    );
    if !report
        .summaries
        .iter()
        .any(|s| s.config == report.baseline && s.runs_ok > 0)
    {
        out += &format!(
            "(no run of the baseline {} succeeded in this suite: `vs base` is left empty; pick one with --baseline)\n",
            report.baseline
        );
    }
    out.push('\n');
    let heap = heap_table(report);
    if !heap.rows.is_empty() {
        out += &heap.to_text();
        out.push('\n');
    }
    let aw = array_writer_table(report);
    if !aw.rows.is_empty() {
        out += &aw.to_text();
        out.push('\n');
    }
    out + LEGEND
}

/// The `paper` output: GC time and application overhead per source, in the
/// layout of the paper's Figs. 5 and 6, then array-writer (Fig. 4).
pub fn paper_tables(report: &Report, sources: &[&str]) -> (Table, Table) {
    let mut header = vec!["workload".to_string()];
    header.extend(sources.iter().map(|s| s.to_string()));
    let mut workloads: Vec<&str> = Vec::new();
    for s in report
        .summaries
        .iter()
        .filter(|s| s.workload != "array-writer")
    {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    let cell = |w: &str, src: &str, f: &dyn Fn(&Summary) -> String| -> String {
        match report
            .summaries
            .iter()
            .find(|s| s.workload == w && s.config == format!("oohgc/{src}"))
        {
            Some(s) if s.runs_ok > 0 => f(s),
            Some(s) => {
                let e = s.error.clone().unwrap_or_default();
                if e.starts_with("unavailable") {
                    "refused".into()
                } else {
                    "failed".into()
                }
            }
            None => "-".into(),
        }
    };
    let mut gc = Table {
        header: header.clone(),
        rows: Vec::new(),
    };
    let mut app = Table {
        header,
        rows: Vec::new(),
    };
    for w in &workloads {
        let mut g = vec![w.to_string()];
        let mut a = vec![w.to_string()];
        for src in sources {
            g.push(cell(w, src, &|s| format!("{:.2}", s.total_pause_ms)));
            a.push(cell(w, src, &|s| {
                format!("{:.1} ({})", s.wall_ms, ratio(s.tracking_overhead))
            }));
        }
        gc.rows.push(g);
        app.rows.push(a);
    }
    (gc, app)
}

/// Why each refused or failed configuration did not run, one line each.
pub fn failures(report: &Report) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    for s in &report.summaries {
        if let Some(e) = &s.error {
            let line = format!("  {}: {e}\n", s.config);
            if !seen.contains(&line) {
                seen.push(line.clone());
                out += &line;
            }
        }
    }
    out
}

/// The `paper` terminal output.
pub fn paper(report: &Report, sources: &[&str]) -> String {
    let (gc, app) = paper_tables(report, sources);
    let mut out = format!(
        "OoH Boehm evaluation, reproduced in shape: size {}, {} run(s)\n\n",
        report.size, report.runs
    );
    out += "GC time (sum of collector pauses, ms; cf. paper Fig. 5):\n";
    out += &gc.to_text();
    out += "\nApplication run time, ms (x oohgc/none, i.e. tracking overhead; cf. paper Fig. 6):\n";
    out += &app.to_text();
    out += "\nArray-writer slowdown per dirty source (cf. paper Fig. 4):\n";
    out += &array_writer_table(report).to_text();
    let f = failures(report);
    if !f.is_empty() {
        out += "\nNot run:\n";
        out += &f;
    }
    out
}

/// `compare a.json b.json`: b's medians against a's, per workload and config.
pub fn compare(a: &Report, b: &Report) -> String {
    let mut t = Table::new(&[
        "workload",
        "config",
        "wall A ms",
        "wall B ms",
        "B/A",
        "max pause A",
        "max pause B",
        "B/A",
    ]);
    for sb in &b.summaries {
        let Some(sa) = a
            .summaries
            .iter()
            .find(|s| s.workload == sb.workload && s.config == sb.config)
        else {
            continue;
        };
        let r = |x: f64, y: f64| {
            if x > 0.0 {
                format!("{:.2}x", y / x)
            } else {
                "-".into()
            }
        };
        t.rows.push(vec![
            sb.workload.clone(),
            sb.config.clone(),
            ms(sa.wall_ms),
            ms(sb.wall_ms),
            r(sa.wall_ms, sb.wall_ms),
            ms(sa.pause_max_ms),
            ms(sb.pause_max_ms),
            r(sa.pause_max_ms, sb.pause_max_ms),
        ]);
    }
    if t.rows.is_empty() {
        return "the two reports have no workload and configuration in common\n".into();
    }
    format!(
        "A: size {} ({} runs); B: size {} ({} runs)\n{}",
        a.size,
        a.runs,
        b.size,
        b.runs,
        t.to_text()
    )
}
