//! Reading libtest's output: the `test result:` summary lines, each test's
//! verdict line, the panic message of each failure, and the tests still
//! running when a binary hung.

use std::collections::BTreeMap;

/// The counts of one or more `test result:` lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Tests ignored.
    pub ignored: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

/// What one test executable's stdout said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Sum of the summary lines; `None` if there was none (a crash, a hang,
    /// a `harness = false` test).
    pub summary: Option<Counts>,
    /// Tests reported `FAILED`, with the first lines of their output.
    pub failed: BTreeMap<String, String>,
    /// Tests reported `ok`.
    pub passed: u64,
    /// Tests libtest said were running for over 60 seconds and never
    /// finished.
    pub still_running: Vec<String>,
}

fn number_before(s: &str, word: &str) -> Option<u64> {
    let i = s.find(word)?;
    s[..i]
        .trim_end()
        .rsplit([' ', '.', ';'])
        .next()?
        .parse()
        .ok()
}

/// `test result: ok. 3 passed; 1 failed; 2 ignored; ...` -> counts.
pub fn summary_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    Some(Counts {
        passed: number_before(rest, " passed")?,
        failed: number_before(rest, " failed")?,
        ignored: number_before(rest, " ignored")?,
    })
}

/// Parses a whole stdout.
pub fn parse(stdout: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut slow: Vec<String> = Vec::new();
    let mut finished: Vec<String> = Vec::new();
    let mut current_block: Option<String> = None;
    for line in stdout.lines() {
        if let Some(c) = summary_line(line) {
            *p.summary.get_or_insert_with(Counts::default) += c;
            current_block = None;
            continue;
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|r| r.strip_suffix(" stdout ----"))
        {
            current_block = Some(name.to_string());
            continue;
        }
        if line == "failures:" || line == "successes:" {
            current_block = None;
            continue;
        }
        if let Some(name) = &current_block {
            if let Some(msg) = p.failed.get_mut(name) {
                if msg.lines().count() < 8
                    && !line.trim().is_empty()
                    && !line.starts_with("note: run with")
                {
                    msg.push_str(line.trim_end());
                    msg.push('\n');
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some(name) = rest.strip_suffix(" has been running for over 60 seconds") {
                slow.push(name.to_string());
            } else if let Some((name, verdict)) = rest.rsplit_once(" ... ") {
                let name = name.to_string();
                match verdict.trim() {
                    "FAILED" => {
                        p.failed.entry(name.clone()).or_default();
                    }
                    v if v.starts_with("ok") => p.passed += 1,
                    _ => {}
                }
                finished.push(name);
            }
        }
    }
    p.still_running = slow.into_iter().filter(|s| !finished.contains(s)).collect();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\
running 4 tests
test a::one ... ok
test a::two ... FAILED
test a::slow has been running for over 60 seconds
test a::three ... ignored
test a::four ... ok

failures:

---- a::two stdout ----

thread 'a::two' panicked at src/lib.rs:3:5:
assertion `left == right` failed
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    a::two

test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

running 1 test
test b ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn summaries_add_up_and_failures_keep_their_message() {
        let p = parse(OUT);
        assert_eq!(
            p.summary,
            Some(Counts {
                passed: 3,
                failed: 1,
                ignored: 1
            })
        );
        assert_eq!(p.passed, 3);
        assert_eq!(p.failed.len(), 1);
        let msg = &p.failed["a::two"];
        assert!(msg.contains("panicked at src/lib.rs:3:5"), "{msg}");
        assert!(msg.contains("right: 2"));
        assert!(!msg.contains("RUST_BACKTRACE"));
        assert_eq!(p.still_running, vec!["a::slow".to_string()]);
    }

    #[test]
    fn no_summary_when_the_binary_died() {
        let p = parse("running 2 tests\ntest x ... ok\n");
        assert_eq!(p.summary, None);
        assert_eq!(p.passed, 1);
        assert_eq!(summary_line("test result: ok. 10 passed; 0 failed; 7 ignored; 0 measured; 1 filtered out; finished in 1s").unwrap().ignored, 7);
        assert_eq!(summary_line("test x ... ok"), None);
    }
}
