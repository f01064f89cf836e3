//! Report generation from a small real run: JSON, CSV, Markdown, SVG and
//! PNG are written and parse; `compare` reads two JSON reports.

use std::path::Path;
use std::process::Command;

const RUNNER: &str = env!("CARGO_BIN_EXE_oohgc-bench");

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oohgc-bench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn small_run(dir: &Path, tag: &str) -> std::process::Output {
    let json = dir.join(format!("{tag}.json"));
    Command::new(RUNNER)
        .args([
            "run",
            "gcbench",
            "array-writer",
            "--size",
            "tiny",
            "--runs",
            "2",
            "--quiet",
        ])
        .args([
            "--collectors",
            "malloc,bdwgc",
            "--sources",
            "none,card",
            "--baseline",
            "malloc",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--csv")
        .arg(dir.join(format!("{tag}.csv")))
        .arg("--markdown")
        .arg(dir.join(format!("{tag}.md")))
        .arg("--plot")
        .arg(dir.join(format!("{tag}-plots")))
        .output()
        .expect("runner starts")
}

#[test]
fn every_report_is_written_and_parseable() {
    let dir = scratch_dir("reports");
    let out = small_run(&dir, "a");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("gcbench") && table.contains("malloc") && table.contains("1.00x"),
        "{table}"
    );

    let report = oohgc_bench::report::json::read(&dir.join("a.json")).expect("JSON parses");
    assert_eq!(report.runs, 2);
    assert_eq!(report.baseline, "malloc");
    let gc_rows: Vec<_> = report
        .summaries
        .iter()
        .filter(|s| s.workload == "gcbench")
        .collect();
    assert!(gc_rows
        .iter()
        .any(|s| s.config == "malloc" && s.runs_ok == 2));
    assert!(gc_rows
        .iter()
        .filter(|s| s.runs_ok > 0)
        .all(|s| s.checksum_agrees));
    assert!(report.summaries.iter().any(|s| s.config == "direct/card"));
    assert!(
        report.results.len() >= 2 * 2 + 2 * 2 - 2,
        "{}",
        report.results.len()
    );

    let csv = std::fs::read_to_string(dir.join("a.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, oohgc_bench::report::csv::HEADER);
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), report.summaries.len());
    let wall = header.iter().position(|h| *h == "wall_ms").unwrap();
    for row in rows
        .iter()
        .filter(|r| r.starts_with("gcbench,tiny,malloc,"))
    {
        let v: f64 = row
            .split(',')
            .nth(wall)
            .unwrap()
            .parse()
            .expect("wall_ms is a number");
        assert!(v > 0.0);
    }

    let md = std::fs::read_to_string(dir.join("a.md")).unwrap();
    assert!(md.starts_with("# oohgc-bench report"));
    assert!(
        md.contains("| workload | config |") && md.contains("| gcbench | malloc |"),
        "{md}"
    );

    let plots = dir.join("a-plots");
    for name in ["gcbench", "array-writer"] {
        let svg = std::fs::read_to_string(plots.join(format!("{name}.svg"))).expect("svg written");
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}.svg malformed"
        );
        assert!(svg.contains("malloc") || name == "array-writer");
        let png = std::fs::read(plots.join(format!("{name}.png"))).expect("png written");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is not a PNG");
    }

    // compare: the report against itself is 1.00x everywhere.
    let out = Command::new(RUNNER)
        .arg("compare")
        .arg(dir.join("a.json"))
        .arg(dir.join("a.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gcbench") && text.contains("1.00x"), "{text}");

    let out = Command::new(RUNNER)
        .arg("compare")
        .arg(dir.join("a.json"))
        .arg(dir.join("a.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an oohgc-bench JSON report"));
    let _ = std::fs::remove_dir_all(&dir);
}
