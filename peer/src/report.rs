//! The result table (crate × source: passed/failed/ignored and cycles),
//! the list of failures with their messages, and the closing line.

use crate::runner::{Cell, SuiteResult, SuiteStatus};
use std::fmt::Write;

/// One cell: `passed/failed/ignored c=cycles`, `!` when it has problems.
pub fn cell_text(c: &Cell, baseline: bool) -> String {
    let mut s = format!(
        "{}/{}/{}",
        c.counts.passed, c.counts.failed, c.counts.ignored
    );
    if !baseline {
        let _ = write!(s, " c={}", c.cycles);
    }
    if !c.problems.is_empty() {
        s.push_str(" !");
    }
    s
}

/// The whole report.
pub fn render(results: &[SuiteResult], sources: &[String]) -> String {
    let mut out = String::new();
    let mut header = vec!["crate".to_string(), "baseline".to_string()];
    header.extend(sources.iter().cloned());
    let mut rows = vec![header];
    for r in results {
        let mut row = vec![format!("{} {}", r.suite.name, r.suite.version)];
        match &r.status {
            SuiteStatus::Ran => {
                row.push(cell_text(&r.baseline, true));
                for s in sources {
                    let cell = r.cells.iter().find(|(n, _)| n == s).map(|(_, c)| c);
                    row.push(cell.map_or_else(|| "-".to_string(), |c| cell_text(c, false)));
                }
            }
            SuiteStatus::Skipped(_) => row.push("skipped".into()),
            SuiteStatus::Broken(_) => row.push("BROKEN".into()),
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let _ = writeln!(
        out,
        "\npassed/failed/ignored per crate and source (c = collection cycles over every process; ! = a failure that counts)"
    );
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }

    for r in results {
        let name = format!("{} {}", r.suite.name, r.suite.version);
        match &r.status {
            SuiteStatus::Skipped(n) => {
                let _ = writeln!(
                    out,
                    "\n{name}: skipped, crates.io could not be reached ({n})"
                );
                continue;
            }
            SuiteStatus::Broken(m) => {
                let _ = writeln!(out, "\n{name}: BROKEN: {m}");
                continue;
            }
            SuiteStatus::Ran => {}
        }
        let _ = writeln!(out, "\n{name} ({})", r.suite.exercises);
        for n in &r.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for p in &r.baseline.problems {
            let _ = writeln!(out, "  baseline (not counted): {}: {}", p.target, p.message);
        }
        for (s, c) in &r.cells {
            let _ = writeln!(
                out,
                "  {s}: {} processes reported, {} cycles, tests ran {:.1} s",
                c.processes,
                c.cycles,
                c.run_time.as_secs_f64()
            );
            for p in &c.problems {
                let _ = writeln!(out, "    FAIL {}: {}", p.target, p.message);
            }
            for e in &c.excused {
                let _ = writeln!(out, "    excused: {e}");
            }
            for l in &c.oohgc_lines {
                let _ = writeln!(out, "    stderr: {l}");
            }
        }
    }
    out
}

/// Tests passed under oohgc, and failures that count.
pub fn totals(results: &[SuiteResult]) -> (u64, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for r in results {
        if matches!(r.status, SuiteStatus::Broken(_)) {
            failed += 1;
        }
        for (_, c) in &r.cells {
            passed += c.counts.passed;
            failed += c.problems.len();
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libtest::Counts;
    use crate::runner::Problem;
    use crate::suites::SUITES;

    fn result(problems: usize) -> SuiteResult {
        let c = Cell {
            counts: Counts {
                passed: 10,
                failed: 1,
                ignored: 2,
            },
            cycles: 42,
            problems: (0..problems)
                .map(|i| Problem {
                    target: "lib".into(),
                    message: format!("t{i} FAILED"),
                })
                .collect(),
            ..Cell::default()
        };
        SuiteResult {
            suite: &SUITES[0],
            status: SuiteStatus::Ran,
            notes: vec!["a note".into()],
            baseline: Cell::default(),
            cells: vec![("uffd".into(), c)],
        }
    }

    #[test]
    fn the_table_shows_counts_cycles_and_failures() {
        let rs = vec![result(1)];
        let text = render(&rs, &["uffd".into()]);
        assert!(text.contains("10/1/2 c=42 !"), "{text}");
        assert!(text.contains("FAIL lib: t0 FAILED"));
        assert!(text.contains("note: a note"));
        assert_eq!(totals(&rs), (10, 1));
        assert_eq!(totals(&[result(0)]), (10, 0));
    }
}
