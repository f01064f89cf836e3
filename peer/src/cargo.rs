//! Running cargo for the harness: `cargo metadata`, and `cargo test
//! --no-run --message-format=json` whose artifact messages name the test
//! executables to run.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a cargo command printed and whether it succeeded.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The cargo that runs the harness (`$CARGO` under `cargo run`), else `cargo`.
pub fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// `cargo ARGS` in `dir` with extra environment `env`.
pub fn cargo(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> std::io::Result<Outcome> {
    let mut cmd = Command::new(cargo_bin());
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    // A harness started by `cargo run` or `cargo test` must not hand its
    // own package's settings to the builds it starts.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || k == "CARGO_MANIFEST_DIR"
            || k == "CARGO_PRIMARY_PACKAGE"
        {
            cmd.env_remove(&*k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    Ok(Outcome {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Whether cargo's error output says crates.io could not be reached (as
/// opposed to a build error or a missing version).
pub fn network_failure(stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "failed to query replaced source registry",
        "Could not resolve host",
        "Couldn't resolve host",
        "network failure",
        "spurious network error",
        "failed to download from",
        "download of config.json failed",
        "Connection refused",
        "Connection timed out",
        "failed to get successful HTTP response",
        "SSL connect error",
        "attempting to make an HTTP request, but --offline was specified",
        "you're using offline mode",
        "Could not connect to server",
    ];
    SIGNS.iter().any(|s| stderr.contains(s))
}

/// One test executable built by `cargo test --no-run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestExe {
    /// `lib`, `bin:<name>` or `test:<name>`.
    pub target: String,
    /// The crate root, as cargo reports it.
    pub src_path: PathBuf,
    /// The executable.
    pub path: PathBuf,
}

/// The test executables in cargo's `--message-format=json` output, in the
/// order built, each once.
pub fn test_executables(json_lines: &str) -> Vec<TestExe> {
    let mut exes: Vec<TestExe> = Vec::new();
    for line in json_lines.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let t = &v["target"];
        let kinds: Vec<&str> = t["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let name = t["name"].as_str().unwrap_or("?");
        let target = if kinds
            .iter()
            .any(|k| matches!(*k, "lib" | "rlib" | "proc-macro"))
        {
            "lib".to_string()
        } else if let Some(k) = kinds.first() {
            format!("{k}:{name}")
        } else {
            format!("?:{name}")
        };
        let e = TestExe {
            target,
            src_path: PathBuf::from(t["src_path"].as_str().unwrap_or("")),
            path: PathBuf::from(exe),
        };
        if !exes.contains(&e) {
            exes.push(e);
        }
    }
    exes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_are_read_from_artifact_messages() {
        let lines = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ignore","src_path":"/p/src/lib.rs"},"profile":{"test":true},"executable":"/t/deps/ignore-1"}
{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"ignore","src_path":"/p/src/lib.rs"},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"rg","src_path":"/p/main.rs"},"profile":{"test":false},"executable":"/t/rg"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"integration","src_path":"/p/tests/tests.rs"},"profile":{"test":true},"executable":"/t/deps/integration-2"}
not json
{"reason":"build-finished","success":true}"#;
        let e = test_executables(lines);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].target, "lib");
        assert_eq!(e[0].path, PathBuf::from("/t/deps/ignore-1"));
        assert_eq!(e[1].target, "test:integration");
    }

    #[test]
    fn network_failures_are_told_from_build_errors() {
        assert!(network_failure(
            "error: failed to download from `https://static.crates.io/api/v1/crates/x/1.0.0/download`"
        ));
        assert!(!network_failure("error[E0308]: mismatched types"));
    }
}
