//! Helpers shared by the collector's integration tests: running a test in a
//! child process (for per-process settings such as `OOHGC_MAX_HEAP`), heap
//! churn that reuses freed memory, and a deterministic random generator.
#![allow(dead_code)]

use std::process::{Command, Output};

pub mod subgraphs;

/// Set in the environment of a child started by [`run_in_child`].
pub const CHILD_VAR: &str = "OOHGC_TEST_CHILD";

/// Whether this process is a child started by [`run_in_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_VAR).is_some()
}

/// Run test `name` of the current test binary alone in a child process with
/// `env` added; returns its output (the caller asserts on it).
pub fn run_in_child(name: &str, env: &[(&str, &str)]) -> Output {
    child_command(name, env)
        .output()
        .expect("spawn child test process")
}

/// The command that runs test `name` of this binary alone as a child.
fn child_command(name: &str, env: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    cmd.env(CHILD_VAR, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a child run with a deadline ended as.
pub struct TimedOutput {
    /// None: killed at the deadline (a hang).
    pub status: Option<std::process::ExitStatus>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// As [`run_in_child`], killing the child if it runs past `limit`.
pub fn run_in_child_for(
    name: &str,
    env: &[(&str, &str)],
    limit: std::time::Duration,
) -> TimedOutput {
    use std::process::Stdio;
    let mut child = child_command(name, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    // Read both pipes while waiting, so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out_pipe, &mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    TimedOutput {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Assert a child run succeeded, showing its output otherwise.
pub fn assert_child_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Allocate and drop `mb` MiB of small collected objects with a recognisable
/// pattern, so that memory freed by a wrong collection gets reused and
/// overwritten.
pub fn churn(mb: usize) {
    let n = (mb << 20) / 64;
    for i in 0..n {
        let g = oohgc::Gc::new([0xDEAD_BEEF_u64 ^ i as u64; 6]);
        std::hint::black_box(&g);
    }
}

/// Overwrite the dead stack below the caller: a conservative scan reads
/// uninitialised slots of later frames, and a stale copy of a pointer left
/// there by an earlier call would keep its target alive.
#[inline(never)]
pub fn clobber_stack() {
    let mut buf = [0u64; 4096];
    std::hint::black_box(&mut buf);
}

/// Collect `n` times with churn in between.
pub fn collect_many(n: usize) {
    for _ in 0..n {
        churn(2);
        oohgc::collect();
    }
}
