//! # oohgc-peer
//!
//! Real, popular crates' own test suites under oohgc. For each pinned crate
//! ([`suites`]) the harness fetches the published source from crates.io,
//! makes a copy whose test crates install `oohgc::GcAllocator` as their
//! global allocator ([`prepare`]), builds the tests once into a cached
//! target directory ([`cargo`]), runs each test executable plainly (the
//! baseline) and then under every dirty source with collections forced
//! (`OOHGC_INITIAL_HEAP=64K`) and the verifier on (`OOHGC_VERIFY=1`)
//! ([`exec`], [`runner`]), reads libtest's output ([`libtest`]) and prints a
//! crate × source table ([`report`]).
//!
//! The proof that the allocator was really in a process and collected is
//! the exit report the hook crate (`oohgc-peer-hook`) writes for every
//! process that linked it, including the programs the tests start.

pub mod cargo;
pub mod exec;
pub mod libtest;
pub mod prepare;
pub mod report;
pub mod runner;
pub mod suites;

/// The sources the harness runs under, in the documented fallback order
/// (`soft-dirty` and `card` are left out: the first is refused on most
/// kernels, the second needs a barrier in every store).
pub const SOURCES: &[&str] = &["epml", "spml", "pagemap-scan", "uffd", "mprotect", "none"];

/// `names` (or every one of [`SOURCES`] when empty), keeping those this
/// machine offers; an unavailable source named explicitly is an error. The
/// second list says which were left out and why.
pub fn available_sources(names: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let explicit = !names.is_empty();
    let wanted: Vec<String> = if explicit {
        names.to_vec()
    } else {
        SOURCES.iter().map(|s| s.to_string()).collect()
    };
    let mut ok = Vec::new();
    let mut left_out = Vec::new();
    for s in wanted {
        if !oohgc_dirty::SOURCE_NAMES.contains(&s.as_str()) {
            return Err(format!(
                "unknown dirty source {s:?} (known: {})",
                oohgc_dirty::SOURCE_NAMES.join(", ")
            ));
        }
        match oohgc_dirty::probe(&s) {
            Ok(()) => ok.push(s),
            Err(e) if explicit => {
                return Err(format!("dirty source {s} is not available here: {e}"))
            }
            Err(e) => left_out.push(format!("{s}: {e}")),
        }
    }
    Ok((ok, left_out))
}
