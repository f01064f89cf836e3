//! The pinned peer suites: which crates, which versions, which of their
//! test targets, and the few failures expected under oohgc, each with its
//! reason.
//!
//! A version is pinned so that a run today and a run next month test the
//! same code; moving a pin is a reviewed change of this file. Crates that
//! ship no `Cargo.lock` resolve their (dev-)dependencies afresh at the
//! first build; the build directory's lock then stays.

/// Which runs a suite belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// Fast to build, run by `.ci/run` from a cold build directory.
    Ci,
    /// Only in `oohgc-peer run --set full` (ripgrep, tokio).
    Full,
}

/// A test target, as cargo names it: `lib`, `bin:<name>`, `test:<name>`.
pub type TargetId = &'static str;

/// A failure expected under oohgc that is not oohgc's fault.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// The test target (`test:<name>`, `lib`, `bin:<name>`).
    pub target: TargetId,
    /// The libtest test name.
    pub test: &'static str,
    /// Sources under which it is expected (empty: all of them).
    pub sources: &'static [&'static str],
    /// Why it is not oohgc's fault.
    pub reason: &'static str,
}

/// A crate root that declares a `#[global_allocator]` of its own and still
/// gets oohgc's, with the reason that is safe.
#[derive(Clone, Copy, Debug)]
pub struct InjectAnyway {
    /// Path of the crate root inside the package.
    pub path: &'static str,
    /// Why the existing declaration does not conflict here.
    pub reason: &'static str,
}

/// One pinned crate and how to test it.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// Package name on crates.io.
    pub name: &'static str,
    /// Exact version.
    pub version: &'static str,
    /// What it exercises (the table's note).
    pub exercises: &'static str,
    /// CI or full.
    pub set: Set,
    /// Cargo features to build with (besides the harness's own).
    pub features: &'static [&'static str],
    /// `--test` targets to build and run; empty: every test target
    /// (`cargo test --tests`: the lib, the bins and every integration test).
    pub tests: &'static [&'static str],
    /// The `--test` targets of the CI set, when it runs fewer than `tests`
    /// (empty: the same as `tests`).
    pub ci_tests: &'static [&'static str],
    /// Seconds one test executable may run before it counts as a hang.
    pub timeout_s: u64,
    /// Failures that are not oohgc's fault.
    pub expected: &'static [Expected],
    /// Allocator declarations that do not conflict with the injected one.
    pub inject_anyway: &'static [InjectAnyway],
}

impl Suite {
    /// `name-version`, the directory name used everywhere.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// The `--test` targets to build in `set` (empty: every test target).
    pub fn tests_in(&self, set: Set) -> &'static [&'static str] {
        if set == Set::Ci && !self.ci_tests.is_empty() {
            self.ci_tests
        } else {
            self.tests
        }
    }

    /// The expected-failure entry for `test` of `target` under `source`.
    pub fn expected_failure(&self, target: &str, test: &str, source: &str) -> Option<&Expected> {
        self.expected.iter().find(|e| {
            e.target == target
                && e.test == test
                && (e.sources.is_empty() || e.sources.contains(&source))
        })
    }
}

/// Every pinned suite.
pub const SUITES: &[Suite] = &[
    Suite {
        name: "ignore",
        version: "0.4.35",
        exercises: "ripgrep's directory walker: parallel walk threads over temporary trees, gitignore files",
        set: Set::Ci,
        features: &[],
        tests: &[],
        ci_tests: &[],
        timeout_s: 300,
        expected: &[],
        inject_anyway: &[],
    },
    Suite {
        name: "crossbeam-channel",
        version: "0.5.17",
        exercises: "threads: MPMC channels, select, timers, Go's channel tests",
        set: Set::Ci,
        features: &[],
        tests: &[],
        // The whole suite runs ~100 s per configuration (stress loops and
        // sleeps, as long without oohgc): CI takes the targets that finish
        // in seconds, the full set takes all.
        ci_tests: &["list", "mpsc", "never", "iter", "thread_locals", "same_channel", "after", "tick"],
        timeout_s: 300,
        expected: &[],
        inject_anyway: &[],
    },
    Suite {
        name: "tempfile",
        version: "3.27.0",
        exercises: "file I/O: temporary files and directories, spooled files, persist and reopen",
        set: Set::Ci,
        features: &[],
        tests: &[],
        ci_tests: &[],
        timeout_s: 300,
        expected: &[],
        inject_anyway: &[],
    },
    Suite {
        name: "ripgrep",
        version: "15.2.0",
        exercises: "the rg binary run by its integration tests: file I/O, the parallel walker, mmap, regex",
        set: Set::Full,
        features: &[],
        tests: &[],
        ci_tests: &[],
        timeout_s: 900,
        expected: &[],
        inject_anyway: &[InjectAnyway {
            path: "crates/core/main.rs",
            reason: "its jemalloc allocator is declared only for musl targets; on gnu there is none",
        }],
    },
    Suite {
        name: "tokio",
        version: "1.54.1",
        exercises: "runtimes (current-thread, multi-thread), fs, TCP, UDP, Unix sockets, signals, processes",
        set: Set::Full,
        // test-util: the time tests pause the clock (`start_paused`).
        features: &["full", "test-util"],
        tests: &[
            "rt_common",
            "rt_threaded",
            "rt_basic",
            "rt_handle",
            "rt_spawn_blocking",
            "fs",
            "fs_file",
            "fs_dir",
            "fs_copy",
            "tcp_stream",
            "tcp_echo",
            "tcp_accept",
            "tcp_into_split",
            "udp",
            "uds_stream",
            "uds_datagram",
            "uds_split",
            "signal_usr1",
            "signal_multi_rt",
            "signal_drop_rt",
            "signal_twice",
            "process_smoke",
            "process_kill_on_drop",
            "process_issue_42",
            "sync_mpsc",
            "time_sleep",
        ],
        ci_tests: &[],
        timeout_s: 600,
        expected: &[],
        inject_anyway: &[],
    },
];

/// The suites of `set`, or those named (any set).
pub fn select(set: Set, names: &[String]) -> Result<Vec<&'static Suite>, String> {
    if names.is_empty() {
        return Ok(SUITES
            .iter()
            .filter(|s| set == Set::Full || s.set == set)
            .collect());
    }
    names
        .iter()
        .map(|n| {
            SUITES.iter().find(|s| s.name == n).ok_or_else(|| {
                let known: Vec<_> = SUITES.iter().map(|s| s.name).collect();
                format!("no pinned suite named {n:?} (known: {})", known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expected_failure_has_a_reason() {
        for s in SUITES {
            for e in s.expected {
                assert!(!e.reason.trim().is_empty(), "{} {}", s.name, e.test);
            }
            for i in s.inject_anyway {
                assert!(!i.reason.trim().is_empty(), "{} {}", s.name, i.path);
            }
        }
    }

    #[test]
    fn the_ci_set_is_a_strict_subset() {
        let ci = select(Set::Ci, &[]).unwrap();
        let full = select(Set::Full, &[]).unwrap();
        assert!(!ci.is_empty() && ci.len() < full.len());
        assert!(ci.iter().all(|s| s.set == Set::Ci));
        assert!(select(Set::Ci, &["nope".into()]).is_err());
        assert_eq!(select(Set::Ci, &["tokio".into()]).unwrap()[0].name, "tokio");
    }

    #[test]
    fn expected_failures_match_by_target_test_and_source() {
        const E: &[Expected] = &[Expected {
            target: "test:a",
            test: "t",
            sources: &["mprotect"],
            reason: "r",
        }];
        let s = Suite {
            expected: E,
            ..SUITES[0]
        };
        assert!(s.expected_failure("test:a", "t", "mprotect").is_some());
        assert!(s.expected_failure("test:a", "t", "uffd").is_none());
        assert!(s.expected_failure("test:b", "t", "mprotect").is_none());
    }
}
