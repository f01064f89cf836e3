//! Reports: the terminal table, JSON, CSV, Markdown and charts.

pub mod csv;
pub mod json;
pub mod markdown;
pub mod plot;
pub mod table;

use crate::cli::OutputArgs;
use crate::runner::Report;

/// Write every output file asked for; says on stderr where each went.
pub fn write_outputs(report: &Report, out: &OutputArgs) -> Result<(), String> {
    if let Some(path) = &out.json {
        json::write(report, path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &out.csv {
        csv::write(report, path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &out.markdown {
        std::fs::write(path, markdown::render(report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &out.plot {
        for path in plot::write_all(report, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
