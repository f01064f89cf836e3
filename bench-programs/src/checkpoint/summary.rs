//! Medians, ratios and tables of a `checkpoint` run: per workload, the
//! dumps per source (the paper's CRIU figures: frozen time, dump time,
//! pages scanned and written, plus the PML model's estimate beside the
//! measured times), the workloads' slowdowns against `off`, and the
//! performance targets with their ratios.

use super::worker::{DumpFigures, RunResult};
use super::Params;
use crate::figures::{median, percentile};
use crate::report::table::Table;
use std::path::{Path, PathBuf};

/// Aggregated figures of one (workload, source).
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// The workload.
    pub workload: String,
    /// The source, or `off`.
    pub source: String,
    /// Runs that completed.
    pub ok_runs: usize,
    /// The first error met, if any run failed.
    pub error: Option<String>,
    /// Dumps taken while the workload ran (the first, full one before it
    /// started is excluded), pooled over runs.
    pub dumps: usize,
    /// Frozen time of those dumps: median and maximum, ns.
    pub frozen_p50: u64,
    /// See `frozen_p50`.
    pub frozen_max: u64,
    /// Median harvest time (frozen), ns.
    pub harvest_p50: u64,
    /// Median copy time (frozen), ns.
    pub copy_p50: u64,
    /// Median whole-dump time, ns.
    pub dump_p50: u64,
    /// Median pages per image.
    pub pages_p50: u64,
    /// Pages tracked (what a scan covers).
    pub tracked_pages: u64,
    /// Median image size, bytes.
    pub image_p50: u64,
    /// Median modelled PML hardware time per dump (epml/spml), ns.
    pub modelled_p50: Option<u64>,
    /// Median frozen time of the first (full) dump, ns.
    pub first_frozen: u64,
    /// Median workload time, ns.
    pub run_ns: f64,
    /// Median writer busy time, ns.
    pub busy_ns: f64,
    /// Median of (workload time minus the frozen time of its dumps), ns.
    pub unfrozen_ns: f64,
    /// Median work done (updates; 1 for a Phoenix kernel).
    pub ops: f64,
    /// Median time per unit of work, ns.
    pub per_op_ns: f64,
    /// Median time per unit of work outside the freezes, ns.
    pub per_op_unfrozen_ns: f64,
    /// Median modelled PML time summed over the run's harvests, ns.
    pub modelled_total: Option<f64>,
    /// kv-paced: median writer time lost per run to tracking faults and
    /// freezes (busy time above `off`'s, plus frozen time), ns; set after
    /// aggregation.
    pub lost_ns: f64,
    /// Whether every run's checksum matched the `off` runs'.
    pub checksum_ok: bool,
}

/// A whole `checkpoint` run.
pub struct Report {
    /// Parameters.
    pub params: Params,
    /// Runs per configuration.
    pub runs_per_config: usize,
    /// Where the images went.
    pub dir: PathBuf,
    /// Workloads, in order.
    pub workloads: Vec<String>,
    /// Sources, in order (`off` last).
    pub sources: Vec<String>,
    /// Every run.
    pub runs: Vec<RunResult>,
    /// One cell per (workload, source).
    pub cells: Vec<Cell>,
}

/// Frozen time of the dumps taken while the workload ran.
fn frozen_sum(r: &RunResult) -> u64 {
    r.dumps.iter().skip(1).map(|d| d.frozen_ns).sum()
}

fn p50(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    percentile(&v, 50.0)
}

fn ms(ns: f64) -> String {
    if ns >= 100e6 {
        format!("{:.0}", ns / 1e6)
    } else if ns >= 1e6 {
        format!("{:.1}", ns / 1e6)
    } else {
        format!("{:.3}", ns / 1e6)
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.3}x", a / b)
    } else {
        "-".into()
    }
}

impl Report {
    /// Aggregate `runs`.
    pub fn new(
        params: &Params,
        runs_per_config: usize,
        dir: &Path,
        workloads: &[String],
        sources: &[String],
        runs: Vec<RunResult>,
    ) -> Report {
        let mut cells = Vec::new();
        for w in workloads {
            let off_sum = runs
                .iter()
                .find(|r| &r.workload == w && r.source == "off" && r.error.is_none())
                .map(|r| r.checksum);
            for s in sources {
                let mine: Vec<&RunResult> = runs
                    .iter()
                    .filter(|r| &r.workload == w && &r.source == s)
                    .collect();
                let ok: Vec<&&RunResult> = mine.iter().filter(|r| r.error.is_none()).collect();
                let pooled: Vec<&DumpFigures> =
                    ok.iter().flat_map(|r| r.dumps.iter().skip(1)).collect();
                let modelled: Vec<u64> = pooled.iter().filter_map(|d| d.modelled_ns).collect();
                let f = |g: &dyn Fn(&RunResult) -> f64| {
                    median(&ok.iter().map(|r| g(r)).collect::<Vec<_>>()).unwrap_or(0.0)
                };
                cells.push(Cell {
                    workload: w.clone(),
                    source: s.clone(),
                    ok_runs: ok.len(),
                    error: mine.iter().find_map(|r| r.error.clone()),
                    dumps: pooled.len(),
                    frozen_p50: p50(pooled.iter().map(|d| d.frozen_ns).collect()),
                    frozen_max: pooled.iter().map(|d| d.frozen_ns).max().unwrap_or(0),
                    harvest_p50: p50(pooled.iter().map(|d| d.harvest_ns).collect()),
                    copy_p50: p50(pooled.iter().map(|d| d.copy_ns).collect()),
                    dump_p50: p50(pooled.iter().map(|d| d.total_ns).collect()),
                    pages_p50: p50(pooled.iter().map(|d| d.pages).collect()),
                    tracked_pages: pooled.first().map(|d| d.tracked_pages).unwrap_or(0),
                    image_p50: p50(pooled.iter().map(|d| d.image_bytes).collect()),
                    modelled_p50: (!modelled.is_empty()).then(|| p50(modelled)),
                    first_frozen: p50(ok
                        .iter()
                        .filter_map(|r| r.dumps.first().map(|d| d.frozen_ns))
                        .collect()),
                    run_ns: f(&|r| r.run_ns as f64),
                    busy_ns: f(&|r| r.busy_ns as f64),
                    unfrozen_ns: f(&|r| r.run_ns.saturating_sub(frozen_sum(r)) as f64),
                    ops: f(&|r| r.ops as f64),
                    per_op_ns: f(&|r| r.run_ns as f64 / r.ops.max(1) as f64),
                    per_op_unfrozen_ns: f(&|r| {
                        r.run_ns.saturating_sub(frozen_sum(r)) as f64 / r.ops.max(1) as f64
                    }),
                    lost_ns: 0.0,
                    modelled_total: {
                        let m: Vec<f64> = ok
                            .iter()
                            .filter_map(|r| r.modelled_total_ns.map(|v| v as f64))
                            .collect();
                        median(&m)
                    },
                    // kv runs for a time, not a number of updates: its
                    // checksum cannot compare.
                    checksum_ok: (w == "kv"
                        || off_sum.is_some_and(|c| ok.iter().all(|r| r.checksum == c)))
                        && ok.iter().all(|r| r.restored_ok != Some(false)),
                });
            }
            let off_busy = cells
                .iter()
                .find(|c| &c.workload == w && c.source == "off")
                .map(|c| c.busy_ns)
                .unwrap_or(0.0);
            for c in cells.iter_mut().filter(|c| &c.workload == w) {
                let mine: Vec<f64> = runs
                    .iter()
                    .filter(|r| {
                        r.workload == c.workload && r.source == c.source && r.error.is_none()
                    })
                    .map(|r| (r.busy_ns as f64 - off_busy).max(0.0) + frozen_sum(r) as f64)
                    .collect();
                c.lost_ns = median(&mine).unwrap_or(0.0);
            }
        }
        Report {
            params: params.clone(),
            runs_per_config,
            dir: dir.to_path_buf(),
            workloads: workloads.to_vec(),
            sources: sources.to_vec(),
            runs,
            cells,
        }
    }

    fn cell(&self, w: &str, s: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.workload == w && c.source == s && c.ok_runs > 0)
    }

    /// The dump table of workload `w`.
    pub fn dump_table(&self, w: &str) -> Table {
        let mut t = Table::new(&[
            "source",
            "dumps",
            "frozen p50 ms",
            "frozen max ms",
            "harvest p50 ms",
            "copy p50 ms",
            "dump p50 ms",
            "pages written/dump",
            "pages scanned",
            "image MiB/dump",
            "model ms/dump",
            "first (full) frozen ms",
        ]);
        for s in self
            .sources
            .iter()
            .filter(|s| *s != "off" && !s.starts_with("track:"))
        {
            let Some(c) = self.cell(w, s) else {
                let why = self
                    .cells
                    .iter()
                    .find(|c| c.workload == *w && c.source == *s)
                    .and_then(|c| c.error.clone())
                    .unwrap_or_else(|| "no run".into());
                t.rows.push(vec![format!("{s}: not run: {why}")]);
                continue;
            };
            t.rows.push(vec![
                s.clone(),
                c.dumps.to_string(),
                ms(c.frozen_p50 as f64),
                ms(c.frozen_max as f64),
                ms(c.harvest_p50 as f64),
                ms(c.copy_p50 as f64),
                ms(c.dump_p50 as f64),
                c.pages_p50.to_string(),
                c.tracked_pages.to_string(),
                format!("{:.1}", c.image_p50 as f64 / (1 << 20) as f64),
                c.modelled_p50
                    .map(|m| ms(m as f64))
                    .unwrap_or_else(|| "-".into()),
                ms(c.first_frozen as f64),
            ]);
        }
        t
    }

    /// The slowdown table over every workload.
    pub fn slowdown_table(&self) -> Table {
        let mut t = Table::new(&[
            "workload",
            "source",
            "time ms",
            "work",
            "x off",
            "x off, freezes excluded",
            "writer lost ms (kv-paced)",
            "modelled x off (PML estimate)",
            "checksum, restore",
        ]);
        for w in &self.workloads {
            let Some(off) = self.cell(w, "off") else {
                t.rows
                    .push(vec![format!("{w}: the off baseline did not run")]);
                continue;
            };
            for s in &self.sources {
                let Some(c) = self.cell(w, s) else { continue };
                let paced = w == "kv-paced";
                t.rows.push(vec![
                    w.clone(),
                    s.clone(),
                    ms(c.run_ns),
                    format!("{:.0}", c.ops),
                    ratio(self.slowdown(c, off), 1.0),
                    if paced {
                        "-".into()
                    } else {
                        ratio(c.per_op_unfrozen_ns, off.per_op_ns)
                    },
                    if paced { ms(c.lost_ns) } else { "-".into() },
                    match c.modelled_total {
                        Some(m) => {
                            let base = if paced {
                                c.run_ns
                            } else {
                                off.per_op_ns * c.ops
                            };
                            ratio(base + m, base)
                        }
                        None => "-".into(),
                    },
                    match (c.checksum_ok, w == "kv") {
                        (false, _) => "DIFFERS".into(),
                        (true, true) => "restore ok".into(),
                        (true, false) => "ok".into(),
                    },
                ]);
            }
        }
        t
    }

    /// The slowdown of `c` against `off`: time per unit of work; for
    /// kv-paced, whose time is fixed by its pace, (time + writer time lost
    /// to tracking and freezes) / time.
    fn slowdown(&self, c: &Cell, off: &Cell) -> f64 {
        if c.workload == "kv-paced" {
            (c.run_ns + c.lost_ns) / c.run_ns.max(1.0)
        } else {
            c.per_op_ns / off.per_op_ns.max(1e-9)
        }
    }

    /// The performance targets, each with its figures and verdict.
    pub fn targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let w = "kv-paced";
        let frozen = |s: &str| self.cell(w, s).map(|c| c.frozen_p50 as f64);
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        if self.workloads.iter().any(|x| x == w) {
            out.push(format!(
                "kv-paced: {} MiB, {}% of pages written per {} ms interval; frozen time p50 per incremental dump",
                self.params.kv_mib, self.params.write_pct, self.params.interval_ms
            ));
            for fast in ["epml", "pagemap-scan"] {
                let Some(f) = frozen(fast) else {
                    out.push(format!("  {fast}: not run"));
                    continue;
                };
                if let Some(full) = frozen("none") {
                    let r = full / f.max(1.0);
                    out.push(format!(
                        "  full dump (none) / {fast}: {} ms / {} ms = {r:.1}x (target >= 10x: {})",
                        ms(full),
                        ms(f),
                        verdict(r >= 10.0)
                    ));
                }
                for slow in ["uffd", "mprotect"] {
                    if let Some(sf) = frozen(slow) {
                        let r = sf / f.max(1.0);
                        out.push(format!(
                            "  {slow} / {fast}: {} ms / {} ms = {r:.2}x (target >= 5x: {})",
                            ms(sf),
                            ms(f),
                            verdict(r >= 5.0)
                        ));
                    }
                }
            }
        }
        for (w, src) in self
            .workloads
            .iter()
            .flat_map(|w| [(w, "track:epml"), (w, "epml")])
        {
            let (Some(c), Some(off)) = (self.cell(w, src), self.cell(w, "off")) else {
                continue;
            };
            let w = &format!("{w} [{src}]");
            if c.workload == "kv-paced" {
                let r = self.slowdown(c, off);
                out.push(format!(
                    "  {w}: epml slowdown (interval + writer time lost to faults and freezes) / interval: {r:.3}x (target <= 1.05x: {}); its batches alone ran {:.2}x off's",
                    verdict(r <= 1.05),
                    c.busy_ns / off.busy_ns.max(1.0)
                ));
            } else {
                let all = self.slowdown(c, off);
                let r = c.per_op_unfrozen_ns / off.per_op_ns.max(1e-9);
                out.push(format!(
                    "  {w}: epml tracking slowdown (time per unit of work outside the freezes) {r:.3}x (target <= 1.05x: {}); with the freezes {all:.3}x",
                    verdict(r <= 1.05)
                ));
            }
        }
        out
    }

    fn legend(&self) -> String {
        format!(
            "Every (workload, source) ran {} time(s), each in its own process, alternating; \
             medians (frozen and dump times pooled over the runs' dumps). Images in {} \
             (written after the thaw; the frozen time never includes the write). \
             frozen: from the freeze call (signal to the writer) to the thaw's return: \
             stop + harvest + copy into a private buffer. pages scanned: pages tracked, \
             which a PAGEMAP_SCAN-based harvest walks. model ms/dump: the PML cost \
             model's estimate of the hardware time of the events the dump's harvest \
             processed (epml, spml only) — modelled, not measured. none dumps every page \
             each time: the full-dump baseline. off: no checkpointer. x off: time per \
             unit of work (an update; one kernel run) over off's; for kv-paced, whose \
             time its pace fixes, (time + writer lost) / time, where writer lost = its \
             batches' time above off's (tracking faults) + the frozen time of its dumps. \
             x off, freezes excluded: (time - frozen time) per unit of work over off's. \
             track:NAME: source NAME tracks and is harvested every interval, with no \
             freeze, copy or image (tracking alone). modelled x off: (off's time for \
             the same work + the PML model's estimated hardware time of every harvest \
             of the run) / off's time — what the paper's hardware would add, an \
             estimate, not a measurement (epml, spml). \
             checksum, restore: the workload's checksum equals off's (kv runs for a \
             time: not compared) and a last image, dumped after the workload ended and \
             restored into a fresh mapping, equals the memory byte for byte.",
            self.runs_per_config,
            self.dir.display()
        )
    }

    fn sections(&self) -> Vec<(String, Table)> {
        let mut out = Vec::new();
        for w in &self.workloads {
            let what = match w.as_str() {
                "kv-paced" => format!(
                    "kv-paced: {} MiB store, {}% of its pages written per {} ms interval, {} dumps",
                    self.params.kv_mib,
                    self.params.write_pct,
                    self.params.interval_ms,
                    self.params.dumps
                ),
                "kv" => format!(
                    "kv: {} MiB store, random updates flat out for {} s, a dump every {} ms",
                    self.params.kv_mib, self.params.kv_secs, self.params.interval_ms
                ),
                other => format!(
                    "{other} (size {}) in a {} MiB tracked arena, a dump every {} ms",
                    self.params.size.name(),
                    self.params.arena_mib,
                    self.params.interval_ms
                ),
            };
            out.push((what, self.dump_table(w)));
        }
        out.push((
            "Workload slowdown against no checkpointing (off)".into(),
            self.slowdown_table(),
        ));
        out
    }

    /// Plain text for the terminal.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        for (title, t) in self.sections() {
            s += &format!("\n{title}\n{}", t.to_text());
        }
        s += "\nTargets\n";
        for line in self.targets() {
            s += &format!("{line}\n");
        }
        s += &format!("\n{}\n", self.legend());
        s
    }

    /// Markdown.
    pub fn render_markdown(&self) -> String {
        let mut s = String::from("# oohgc-bench checkpoint\n");
        for (title, t) in self.sections() {
            s += &format!("\n### {title}\n\n{}", t.to_markdown());
        }
        s += "\n### Targets\n\n```\n";
        for line in self.targets() {
            s += &format!("{line}\n");
        }
        s += "```\n\n";
        s += &self.legend();
        s.push('\n');
        s
    }
}
