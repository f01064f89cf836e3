//! What `oohgc-peer` links into another crate's test harnesses and binaries.
//!
//! The harness appends to each test crate root, under the copied package's
//! `oohgc-peer` feature:
//!
//! ```text
//! extern crate oohgc_peer_hook;
//! #[global_allocator]
//! static OOHGC_PEER: oohgc_peer_hook::oohgc::GcAllocator = oohgc_peer_hook::oohgc::GcAllocator;
//! ```
//!
//! Linking this crate also puts [`at_exit`] in the process's `.fini_array`:
//! when the process exits normally and `OOHGC_PEER_REPORT_DIR` is set, it
//! writes `<dir>/<pid>` with the collector's totals (cycles, the dirty
//! source in use, heap bytes). That file is the harness's proof that a run
//! really allocated through oohgc and collected — for the test executable
//! and for every program it starts (ripgrep's tests run `rg`), without
//! adding a byte to their stdout or stderr, which tests compare.

pub use oohgc;

use std::io::Write;

/// The variable naming the directory the exit report goes to.
pub const REPORT_DIR_VAR: &str = "OOHGC_PEER_REPORT_DIR";

/// Runs at normal process exit (from `.fini_array`, after `atexit`
/// handlers): writes this process's report if [`REPORT_DIR_VAR`] is set.
pub extern "C" fn at_exit() {
    let Some(dir) = std::env::var_os(REPORT_DIR_VAR) else {
        return;
    };
    let s = oohgc::stats();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let line = report_line(
        &exe,
        s.cycles,
        s.concurrent_cycles,
        oohgc::dirty_source_name(),
        s.heap_size,
        s.max_pause_ns,
    );
    let path = std::path::Path::new(&dir).join(std::process::id().to_string());
    // Nowhere to report a failure to at exit: the harness notices the
    // missing file.
    if let Ok(mut f) = std::fs::File::create(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// One report: `key=value` fields separated by spaces, the executable last
/// (its path may hold spaces).
pub fn report_line(
    exe: &str,
    cycles: u64,
    concurrent: u64,
    source: &str,
    heap: usize,
    max_pause_ns: u64,
) -> String {
    let source = if source.is_empty() { "-" } else { source };
    format!(
        "cycles={cycles} concurrent={concurrent} source={source} heap={heap} max_pause_ns={max_pause_ns} exe={exe}\n"
    )
}

/// [`at_exit`] in `.fini_array`. `#[used]` keeps it through linking: rustc
/// hands the linker a reference to every `#[used]` static of an rlib.
#[used]
// SAFETY: `.fini_array` holds pointers to `extern "C" fn()` functions the C
// runtime calls at exit; this is one, and it touches nothing torn down
// before `.fini_array` runs (the Rust runtime and the heap stay usable).
#[unsafe(link_section = ".fini_array")]
static AT_EXIT: extern "C" fn() = at_exit;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_puts_the_executable_last() {
        let l = report_line("/a b/rg", 3, 2, "uffd", 4096, 17);
        assert_eq!(
            l,
            "cycles=3 concurrent=2 source=uffd heap=4096 max_pause_ns=17 exe=/a b/rg\n"
        );
        assert!(report_line("x", 0, 0, "", 0, 0).contains("source=-"));
    }
}
