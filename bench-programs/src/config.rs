//! Configurations: which collector (and dirty source) a run uses, parsed
//! from the runner's `--collectors` and `--sources` lists.

use crate::workloads::Workload;

/// Every collector the runner knows.
pub const COLLECTOR_NAMES: &[&str] = &["oohgc", "bdwgc", "bdwgc-incr", "malloc"];

/// Every dirty-source name (those `oohgc_dirty::open` accepts).
pub fn source_names() -> &'static [&'static str] {
    oohgc_dirty::SOURCE_NAMES
}

/// How a configuration runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// oohgc with the given dirty source (`OOHGC_DIRTY`), in `oohgc-bench-gc`.
    Oohgc {
        /// The source name.
        source: String,
    },
    /// bdwgc, stop-the-world or incremental.
    Bdwgc {
        /// `GC_enable_incremental` before `GC_init`.
        incremental: bool,
    },
    /// The system allocator with explicit frees.
    Malloc,
    /// A dirty source driven directly (array-writer).
    Direct {
        /// The source name.
        source: String,
    },
}

/// One configuration of a run, with the label tables show.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunConfig {
    /// `oohgc/epml`, `bdwgc`, `bdwgc-incr`, `malloc`, `direct/uffd`.
    pub label: String,
    /// How it runs.
    pub kind: ConfigKind,
}

impl RunConfig {
    /// Parse a label (as `--baseline` takes it).
    pub fn from_label(label: &str) -> Result<RunConfig, String> {
        let kind = if let Some(source) = label.strip_prefix("oohgc/") {
            check_source(source)?;
            ConfigKind::Oohgc {
                source: source.into(),
            }
        } else if let Some(source) = label.strip_prefix("direct/") {
            check_source(source)?;
            ConfigKind::Direct {
                source: source.into(),
            }
        } else {
            match label {
                "bdwgc" => ConfigKind::Bdwgc { incremental: false },
                "bdwgc-incr" => ConfigKind::Bdwgc { incremental: true },
                "malloc" => ConfigKind::Malloc,
                _ => {
                    return Err(format!(
                        "unknown configuration {label:?}; allowed: oohgc/<source>, bdwgc, bdwgc-incr, malloc, \
                         direct/<source>, with <source> one of: {}",
                        source_names().join(", ")
                    ))
                }
            }
        };
        Ok(RunConfig {
            label: label.into(),
            kind,
        })
    }

    /// The dirty source this configuration uses, if any.
    pub fn source(&self) -> Option<&str> {
        match &self.kind {
            ConfigKind::Oohgc { source } | ConfigKind::Direct { source } => Some(source),
            _ => None,
        }
    }
}

/// Check one source name; the error names every allowed value.
pub fn check_source(name: &str) -> Result<(), String> {
    if source_names().contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown dirty source {name:?}; the sources are: {}",
            source_names().join(", ")
        ))
    }
}

/// Split a comma-separated list and check every item against `allowed`;
/// the error names the bad item and every allowed value.
pub fn parse_list(list: &str, allowed: &[&str], what: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !allowed.contains(&item) {
            return Err(format!(
                "unknown {what} {item:?}; the {what}s are: {}",
                allowed.join(", ")
            ));
        }
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no {what} given; the {what}s are: {}",
            allowed.join(", ")
        ));
    }
    Ok(out)
}

/// The configurations `workload` runs in, from the chosen collectors and
/// sources. array-writer runs on the sources directly, without collectors.
pub fn configs_for(
    workload: Workload,
    collectors: &[String],
    sources: &[String],
) -> Vec<RunConfig> {
    if !workload.uses_heap() {
        return sources
            .iter()
            .map(|s| RunConfig::from_label(&format!("direct/{s}")).expect("sources were checked"))
            .collect();
    }
    let mut out = Vec::new();
    for c in collectors {
        if c == "oohgc" {
            for s in sources {
                out.push(
                    RunConfig::from_label(&format!("oohgc/{s}")).expect("sources were checked"),
                );
            }
        } else {
            out.push(RunConfig::from_label(c).expect("collectors were checked"));
        }
    }
    out
}

/// Expand workload arguments (`all`, `phoenix`, names); the error names
/// every allowed value.
pub fn parse_workloads(names: &[String]) -> Result<Vec<Workload>, String> {
    let mut out: Vec<Workload> = Vec::new();
    let mut push = |w: Workload| {
        if !out.contains(&w) {
            out.push(w)
        }
    };
    if names.is_empty() {
        push(Workload::GcBench);
    }
    for name in names {
        match name.as_str() {
            "all" => Workload::ALL.iter().copied().for_each(&mut push),
            "phoenix" => Workload::PHOENIX.iter().copied().for_each(&mut push),
            _ => push(Workload::from_name(name).map_err(|e| format!("{e} (or `all`, `phoenix`)"))?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oohgc_expands_per_source_and_array_writer_runs_direct() {
        let c = vec!["oohgc".to_string(), "malloc".to_string()];
        let s = vec!["epml".to_string(), "none".to_string()];
        let labels: Vec<_> = configs_for(Workload::GcBench, &c, &s)
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, ["oohgc/epml", "oohgc/none", "malloc"]);
        let labels: Vec<_> = configs_for(Workload::ArrayWriter, &c, &s)
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, ["direct/epml", "direct/none"]);
    }

    #[test]
    fn bad_names_are_reported_with_the_allowed_values() {
        let e = parse_list("oohgc,zgc", COLLECTOR_NAMES, "collector").unwrap_err();
        assert!(e.contains("\"zgc\"") && e.contains("bdwgc-incr"), "{e}");
        assert!(RunConfig::from_label("oohgc/nope")
            .unwrap_err()
            .contains("pagemap-scan"));
        assert!(parse_workloads(&["gcbnch".into()])
            .unwrap_err()
            .contains("binary-trees"));
        assert_eq!(parse_workloads(&["phoenix".into()]).unwrap().len(), 6);
    }
}
