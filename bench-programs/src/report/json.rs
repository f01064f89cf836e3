//! The `--json` report: the whole [`Report`] (summaries and every run).

use crate::runner::Report;
use std::path::Path;

/// Write `report` as pretty JSON.
pub fn write(report: &Report, path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).expect("a Report always serialises");
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Read a report written by [`write()`].
pub fn read(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not an oohgc-bench JSON report: {e}", path.display()))
}
