//! Command-line parsing for the torture binaries: `--name value` pairs,
//! each checked, with errors that name the option, the value and what is
//! allowed.

use std::fmt;

/// A bad command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// One accepted option: its name (without `--`), what it takes, and the
/// inclusive range of values allowed.
#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    /// Name without the leading `--`.
    pub name: &'static str,
    /// Smallest value allowed.
    pub min: f64,
    /// Largest value allowed.
    pub max: f64,
    /// Whether the value must be a whole number.
    pub integer: bool,
}

/// Parse `args` (without the program name) against `specs`; returns the
/// values in `specs` order, `None` where an option was not given.
pub fn parse(args: &[String], specs: &[OptionSpec]) -> Result<Vec<Option<f64>>, ArgError> {
    let mut values = vec![None; specs.len()];
    let allowed = || {
        specs
            .iter()
            .map(|s| format!("--{}", s.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut i = 0;
    while i < args.len() {
        let flag = &args[i];
        let Some(name) = flag.strip_prefix("--") else {
            return Err(ArgError(format!(
                "unexpected argument {flag:?}; the options are {}",
                allowed()
            )));
        };
        let Some(idx) = specs.iter().position(|s| s.name == name) else {
            return Err(ArgError(format!(
                "unknown option {flag:?}; the options are {}",
                allowed()
            )));
        };
        let spec = specs[idx];
        let Some(raw) = args.get(i + 1) else {
            return Err(ArgError(format!("{flag} needs a value")));
        };
        let kind = if spec.integer {
            "a whole number"
        } else {
            "a number"
        };
        let value: f64 = raw
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && (!spec.integer || v.fract() == 0.0))
            .ok_or_else(|| {
                ArgError(format!(
                    "{flag} {raw:?} is not {kind}; allowed: {kind} from {} to {}",
                    spec.min, spec.max
                ))
            })?;
        if value < spec.min || value > spec.max {
            return Err(ArgError(format!(
                "{flag} {raw} is out of range; allowed: {kind} from {} to {}",
                spec.min, spec.max
            )));
        }
        values[idx] = Some(value);
        i += 2;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            name: "threads",
            min: 1.0,
            max: 1024.0,
            integer: true,
        },
        OptionSpec {
            name: "seconds",
            min: 0.1,
            max: 3600.0,
            integer: false,
        },
    ];

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn good_and_bad_command_lines() {
        assert_eq!(
            parse(&strings(&["--seconds", "2.5"]), SPECS).unwrap(),
            vec![None, Some(2.5)]
        );
        let e = parse(&strings(&["--threads", "0"]), SPECS).unwrap_err();
        assert!(
            e.0.contains("out of range") && e.0.contains("from 1 to 1024"),
            "{e}"
        );
        let e = parse(&strings(&["--threads", "1.5"]), SPECS).unwrap_err();
        assert!(e.0.contains("not a whole number"), "{e}");
        let e = parse(&strings(&["--thread", "4"]), SPECS).unwrap_err();
        assert!(e.0.contains("--threads, --seconds"), "{e}");
        let e = parse(&strings(&["--seconds"]), SPECS).unwrap_err();
        assert!(e.0.contains("needs a value"), "{e}");
        let e = parse(&strings(&["--seconds", "nan"]), SPECS).unwrap_err();
        assert!(e.0.contains("is not a number"), "{e}");
        let e = parse(&strings(&["7"]), SPECS).unwrap_err();
        assert!(e.0.contains("unexpected argument"), "{e}");
    }
}
