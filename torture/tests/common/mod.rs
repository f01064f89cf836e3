//! Helpers shared by the torture tests: run one of the crate's binaries in
//! a child process with extra environment, a time limit (a hang is a
//! failure, reported as such) and its output captured in files (so a
//! chatty child cannot block on a full pipe).
#![allow(dead_code)]

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a child did.
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Run {
    /// The signal that killed it, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// Its exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Everything, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status {:?}\n--- stdout:\n{}\n--- stderr (last 3000 bytes):\n{}",
            self.status,
            self.stdout,
            tail(&self.stderr, 3000)
        )
    }

    /// Assert it exited 0.
    pub fn assert_ok(&self) {
        assert!(self.status.success(), "child failed: {}", self.describe());
    }
}

fn tail(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Run `cmd` with `env` added (and every inherited `OOHGC_*` removed, so
/// the caller's settings are the only ones), killing it after `limit`.
pub fn run_with(mut cmd: Command, env: &[(&str, &str)], limit: Duration) -> Run {
    for (k, _) in std::env::vars() {
        if k.starts_with("OOHGC_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("oohgc-torture-{}-{n}", std::process::id()));
    let out_path = base.with_extension("out");
    let err_path = base.with_extension("err");
    let out = std::fs::File::create(&out_path).expect("create stdout file");
    let err = std::fs::File::create(&err_path).expect("create stderr file");
    // Its own process group, so that a hang kills forked grandchildren too.
    cmd.process_group(0);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let mut child = cmd.spawn().expect("spawn child");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for child") {
            break s;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the child's own process group.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(&err_path);
            panic!(
                "HANG: {cmd:?} did not finish within {limit:?}\n--- stdout:\n{stdout}\n--- stderr:\n{}",
                tail(&stderr, 3000)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout =
        String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
    let stderr =
        String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default()).into_owned();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Run the `hostile` binary's `scenario` with `env`, killed after `limit`.
pub fn hostile(scenario: &str, env: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostile"));
    cmd.arg(scenario);
    run_with(cmd, env, limit)
}

/// The value of `key=` in a `key=value ...` line of `text`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(pat.as_str()))
}
