//! Running one test executable: in its own process group (so a hang is
//! ended with everything it started), with a wall-clock limit, output to
//! log files, and the exit reports of every oohgc process it ran read back.

use crate::libtest::{self, Parsed};
use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Exit status.
    Exited(i32),
    /// Killed by this signal (not by the harness).
    Signal(i32),
    /// Still running at the limit; the harness killed its process group.
    Timeout,
}

/// One process's exit report (see `oohgc-peer-hook`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Completed collection cycles.
    pub cycles: u64,
    /// Of which concurrent.
    pub concurrent: u64,
    /// The dirty source in use (`-` before the collector started).
    pub source: String,
    /// The executable.
    pub exe: String,
}

/// Parses a report file's line.
pub fn parse_report(line: &str) -> Option<Report> {
    let (fields, exe) = line.trim_end().split_once(" exe=")?;
    let mut r = Report {
        exe: exe.to_string(),
        ..Report::default()
    };
    for f in fields.split(' ') {
        let (k, v) = f.split_once('=')?;
        match k {
            "cycles" => r.cycles = v.parse().ok()?,
            "concurrent" => r.concurrent = v.parse().ok()?,
            "source" => r.source = v.to_string(),
            _ => {}
        }
    }
    Some(r)
}

/// What one run of a test executable gave.
#[derive(Debug)]
pub struct RunOutput {
    /// How it ended.
    pub end: End,
    /// Its stdout, parsed.
    pub parsed: Parsed,
    /// Lines of stderr from oohgc (`oohgc: ...`), the collector's own
    /// warnings and aborts.
    pub oohgc_lines: Vec<String>,
    /// The last lines of stderr, for a crash without a libtest summary.
    pub stderr_tail: String,
    /// Exit reports of this process and its children.
    pub reports: Vec<Report>,
    /// Wall time.
    pub elapsed: Duration,
    /// Where stdout and stderr were written.
    pub log: PathBuf,
}

/// Runs `exe` in `cwd` with `env` set (after removing every inherited
/// `OOHGC_*` variable), stdout and stderr to `log_base.{out,err}`, the
/// reports into `log_base.reports/`, `TMPDIR` an empty `tmp` (removed
/// afterwards).
pub fn run(
    exe: &Path,
    args: &[&str],
    cwd: &Path,
    env: &[(String, String)],
    log_base: &Path,
    tmp: &Path,
    limit: Duration,
) -> std::io::Result<RunOutput> {
    // Appended, not `with_extension`: a base such as `uffd.lib` has a dot.
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", log_base.display()));
    let out_path = with("out");
    let err_path = with("err");
    let reports_dir = with("reports");
    if reports_dir.exists() {
        fs::remove_dir_all(&reports_dir)?;
    }
    fs::create_dir_all(&reports_dir)?;
    // A temporary directory of its own: suites name their scratch
    // directories after the test and a per-process counter (ripgrep's
    // /tmp/ripgrep-tests/<test>/<n>), so two runs at once would share and
    // delete each other's files.
    if tmp.exists() {
        fs::remove_dir_all(tmp)?;
    }
    fs::create_dir_all(tmp)?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?)
        .process_group(0);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("OOHGC_") || k == "RUST_TEST_THREADS" || k.starts_with("CARGO_") {
            cmd.env_remove(&*k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("OOHGC_PEER_REPORT_DIR", &reports_dir)
        .env("TMPDIR", tmp);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let pgid = child.id() as libc::pid_t;
    let end = loop {
        if let Some(status) = child.try_wait()? {
            break match (status.code(), status.signal()) {
                (Some(c), _) => End::Exited(c),
                (None, Some(s)) => End::Signal(s),
                (None, None) => End::Exited(-1),
            };
        }
        if start.elapsed() > limit {
            kill_group(pgid);
            child.wait()?;
            break End::Timeout;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    // Whatever the tests started and left behind goes with them.
    kill_group(pgid);
    // What is left in it is of no use (and may be large); a file that
    // cannot be removed stays for the next run to try again.
    let _ = fs::remove_dir_all(tmp);

    let stdout = String::from_utf8_lossy(&fs::read(&out_path)?).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&err_path)?).into_owned();
    let mut oohgc_lines: Vec<String> = Vec::new();
    for l in stderr.lines().filter(|l| l.starts_with("oohgc")) {
        if !oohgc_lines.iter().any(|o| o == l) && oohgc_lines.len() < 20 {
            oohgc_lines.push(l.to_string());
        }
    }
    // From the last panic on, if there is one (the message of a crash).
    let lines: Vec<&str> = stderr.lines().collect();
    let from = lines
        .iter()
        .rposition(|l| l.contains("panicked at"))
        .unwrap_or(lines.len().saturating_sub(12));
    let stderr_tail = lines[from..]
        .iter()
        .take(12)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let mut reports = Vec::new();
    for e in fs::read_dir(&reports_dir)?.flatten() {
        if let Some(r) = fs::read_to_string(e.path())
            .ok()
            .as_deref()
            .and_then(parse_report)
        {
            reports.push(r);
        }
    }
    Ok(RunOutput {
        end,
        parsed: libtest::parse(&stdout),
        oohgc_lines,
        stderr_tail,
        reports,
        elapsed,
        log: out_path,
    })
}

fn kill_group(pgid: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals the process group the
    // harness created for this run (process_group(0): its id is the
    // child's pid); nothing else is in it.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse_with_spaces_in_the_path() {
        let r =
            parse_report("cycles=5 concurrent=4 source=uffd heap=1 max_pause_ns=2 exe=/x y/rg\n")
                .unwrap();
        assert_eq!(r.cycles, 5);
        assert_eq!(r.concurrent, 4);
        assert_eq!(r.source, "uffd");
        assert_eq!(r.exe, "/x y/rg");
        assert!(parse_report("garbage").is_none());
    }

    #[test]
    fn a_hang_is_ended_at_the_limit_with_its_children() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("oohgc-peer-exec-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("child-survived");
        // A child in the background that would outlive its parent and
        // leave a mark if it were not killed with the group.
        let script = dir.join("hang.sh");
        let text = format!(
            "#!/bin/sh\n(sleep 1; touch '{}') &\nsleep 30\n",
            marker.display()
        );
        fs::write(&script, text).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let t = Instant::now();
        let out = run(
            &script,
            &[],
            &dir,
            &[],
            &dir.join("hang"),
            &dir.join("hang.tmp"),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(out.end, End::Timeout);
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the background child outlived the limit");

        let ok = dir.join("ok.sh");
        let script = "#!/bin/sh\necho 'test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured'\necho \"$TMPDIR\" >&2\nexit 0\n";
        fs::write(&ok, script).unwrap();
        fs::set_permissions(&ok, fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(
            &ok,
            &[],
            &dir,
            &[("X".into(), "1".into())],
            &dir.join("ok"),
            &dir.join("ok.tmp"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.end, End::Exited(0));
        assert_eq!(out.parsed.summary.map(|c| c.passed), Some(2));
        // Its own temporary directory, removed afterwards.
        assert!(out.stderr_tail.ends_with("ok.tmp"), "{}", out.stderr_tail);
        assert!(!dir.join("ok.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
