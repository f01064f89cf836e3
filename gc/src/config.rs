//! Configuration: one [`Config`] builder and the same settings read from
//! `OOHGC_*` environment variables.
//!
//! The environment is read without allocating (the first read happens
//! inside the first allocation of the program, before `main`), and a bad
//! value is an error that names the variable, the value and what is allowed.
//!
//! | variable | meaning | allowed | default |
//! |---|---|---|---|
//! | `OOHGC_DIRTY` | dirty-page source for the concurrent re-scan | `epml`, `spml`, `pagemap-scan`, `uffd`, `mprotect`, `soft-dirty`, `card`, `none` | the cargo feature's (`epml`) |
//! | `OOHGC_PML_ENGINE` | kernel engine under the PML model | `async`, `sync` | `async` |
//! | `OOHGC_INITIAL_HEAP` | allocation before the first collection | size (`64M`, `1G`, bytes) | `8M` |
//! | `OOHGC_MAX_HEAP` | committed heap never exceeded | size >= 4 MiB | 64 GiB (the reservation) |
//! | `OOHGC_FREE_SPACE_DIVISOR` | a cycle starts after `live / divisor` bytes of allocation | 1..=100 | 2 |
//! | `OOHGC_VERIFY` | full re-mark after each concurrent cycle; lost objects abort | `0`, `1` | `0` |
//! | `OOHGC_STATS` | one line per cycle on stderr | `0`, `1` | `0` |
//! | `OOHGC_FIND_LEAKS` | report unreachable, never-freed `GcAllocator` blocks | `0`, `1` | `0` |
//! | `OOHGC_LEAK_BACKTRACES` | with `OOHGC_FIND_LEAKS=1`, record where each `GcAllocator` block was allocated and show it under each leak (costs a stack walk per allocation); alone it does nothing | `0`, `1` | `0` |
//! | `OOHGC_LEAK_BACKTRACE_DEPTH` | stack frames recorded per allocation (the walk's cost grows with it; the allocator's own entry frames count) | 1..=32 | 16 |
//! | `OOHGC_COLLECTOR` | automatic collection | `on`, `off` | `on` |
//! | `OOHGC_PARALLEL_MARK` | a helper thread marks beside the collecting thread in stop-the-world pauses (when the machine has 2+ CPUs) | `0`, `1` | `0` |
//! | `OOHGC_CROSS_CHECK` | a second source beside the first; a page it saw written that the first missed aborts | a source name (`mprotect` beside a userfaultfd-based source: two userfaultfds cannot watch one range) | off |
//! | `OOHGC_REQUIRE_GLOBAL_ALLOCATOR` | refuse `Gc` when `GcAllocator` is not the global allocator (`malloc` memory is never scanned) | `0`, `1` | `1` |
//! | `OOHGC_SUSPEND_SIGNAL` / `OOHGC_RESTART_SIGNAL` | signals that stop and restart threads | a number or name (`SIGPWR`, `SIGXCPU`, `SIGRTMIN+n`) | `SIGPWR` / `SIGXCPU` |

use std::fmt;

/// Every dirty-source name the collector accepts.
pub const DIRTY_SOURCES: &[&str] = oohgc_dirty::SOURCE_NAMES;

/// The source compiled in as the default (cargo feature): the first
/// enabled default candidate in the dirty-source table's order
/// (`oohgc_dirty::registry::SOURCES`: epml, spml, pagemap-scan, uffd,
/// mprotect, soft-dirty, card, none). Never `card`: it is sound only if
/// every pointer store of the program calls [`crate::write_barrier`]
/// (std's collections, `Mutex` and `RefCell` do not), so it must be named
/// explicitly; a build whose only source feature is `card` defaults to
/// `none` (stop-the-world).
pub const DEFAULT_DIRTY_SOURCE: &str = default_dirty_source(&[
    cfg!(feature = "epml"),
    cfg!(feature = "spml"),
    cfg!(feature = "pagemap-scan"),
    cfg!(feature = "uffd"),
    cfg!(feature = "mprotect"),
    cfg!(feature = "soft-dirty"),
    cfg!(feature = "card"),
    cfg!(feature = "none"),
]);

/// This crate's source features, in the order of the flags above (checked
/// against the table and Cargo.toml by a test).
#[cfg(test)]
const SOURCE_FEATURES: [&str; 8] = [
    "epml",
    "spml",
    "pagemap-scan",
    "uffd",
    "mprotect",
    "soft-dirty",
    "card",
    "none",
];

/// The first source of the table whose flag in `enabled` is set and that
/// may be a default, else `none`.
const fn default_dirty_source(enabled: &[bool; 8]) -> &'static str {
    let rows = &oohgc_dirty::registry::SOURCES;
    let mut i = 0;
    while i < rows.len() {
        if enabled[i] && rows[i].capabilities.default_candidate {
            return rows[i].name;
        }
        i += 1;
    }
    "none"
}

/// The collector's settings. Build one with [`Config::new`] or
/// [`Config::from_env`], adjust it, then [`Config::apply`] it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Dirty source name (one of [`DIRTY_SOURCES`]).
    pub dirty_source: &'static str,
    /// Whether the dirty source was named explicitly (an unavailable
    /// explicit source is an error; an unavailable default falls back).
    pub dirty_source_explicit: bool,
    /// PML engine name: `async` or `sync`.
    pub pml_engine: &'static str,
    /// Bytes allocated before the first collection.
    pub initial_heap: usize,
    /// Committed heap bytes never exceeded.
    pub max_heap: usize,
    /// Allocation budget between cycles is `live / free_space_divisor`.
    pub free_space_divisor: usize,
    /// Verify each concurrent cycle with a full stop-the-world re-mark.
    pub verify: bool,
    /// Print one line per cycle on stderr.
    pub print_stats: bool,
    /// Report leaked `GcAllocator` blocks at each cycle.
    pub find_leaks: bool,
    /// Record each `GcAllocator` block's allocation stack and show it in
    /// leak reports. Takes effect only together with `find_leaks` (it does
    /// not turn leak reports on by itself).
    pub leak_backtraces: bool,
    /// Stack frames walked and kept per allocation when
    /// `leak_backtraces` is on (1..=[`MAX_LEAK_BACKTRACE_DEPTH`]).
    pub leak_backtrace_depth: usize,
    /// Collect automatically when the budget is spent.
    pub auto_collect: bool,
    /// Mark with a helper thread during stop-the-world pauses (on machines
    /// with two or more CPUs). Off by default: see `parallel_mark`'s
    /// module documentation for when it pays.
    pub parallel_mark: bool,
    /// Signal used to suspend threads.
    pub suspend_signal: i32,
    /// Signal used to restart threads.
    pub restart_signal: i32,
    /// A second dirty source run beside the first; a page it saw written
    /// that the first did not report aborts the process (bdwgc's
    /// CHECK_SOFT_VDB idea, for any pair).
    pub cross_check: Option<&'static str>,
    /// Refuse `Gc` allocation (and [`crate::init`]) when `GcAllocator` is
    /// not the program's global allocator. Without it, `Box`/`Vec`/`String`
    /// memory is `malloc`'s, which the collector never scans: a `Gc` kept
    /// only there is freed while in use. Turn it off only if every `Gc` is
    /// kept on stacks, in statics, inside `Gc` objects or in ranges given to
    /// [`crate::add_roots`].
    pub require_global_allocator: bool,
}

/// Smallest maximum heap accepted.
pub const MIN_MAX_HEAP: usize = 4 << 20;
/// Default maximum heap: the whole reservation.
pub const DEFAULT_MAX_HEAP: usize = 64 << 30;
/// Default allocation before the first collection.
pub const DEFAULT_INITIAL_HEAP: usize = 8 << 20;
/// Default free-space divisor.
pub const DEFAULT_FREE_SPACE_DIVISOR: usize = 2;
/// Default stack frames recorded per allocation for leak backtraces.
pub const DEFAULT_LEAK_BACKTRACE_DEPTH: usize = 16;
/// Most stack frames recorded per allocation for leak backtraces.
pub const MAX_LEAK_BACKTRACE_DEPTH: usize = 32;

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// A setting with a bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The environment variable or builder method concerned.
    pub setting: &'static str,
    /// The value that was refused (truncated to 64 bytes).
    pub value: String,
    /// What is allowed, in words.
    pub allowed: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad value {:?} for {}: allowed values are {}",
            self.value, self.setting, self.allowed
        )
    }
}

impl std::error::Error for ConfigError {}

/// The same error without allocation, for the environment read that happens
/// inside the first allocation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawConfigError {
    pub setting: &'static str,
    pub value: &'static str,
    pub allowed: &'static str,
}

impl RawConfigError {
    pub(crate) fn to_error(self) -> ConfigError {
        ConfigError {
            setting: self.setting,
            value: self.value.chars().take(64).collect(),
            allowed: self.allowed,
        }
    }
}

impl fmt::Display for RawConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad value {:?} for {}: allowed values are {}",
            self.value, self.setting, self.allowed
        )
    }
}

const SIZE_ALLOWED: &str = "a size in bytes with an optional K, M, G or T suffix (e.g. 512M)";
const MAX_HEAP_ALLOWED: &str =
    "a size of at least 4M, with an optional K, M, G or T suffix (e.g. 512M)";
const BOOL_ALLOWED: &str = "0 or 1";
const DIVISOR_ALLOWED: &str = "a whole number from 1 to 100";
const DEPTH_ALLOWED: &str = "a whole number from 1 to 32";
const COLLECTOR_ALLOWED: &str = "on or off";
const ENGINE_ALLOWED: &str = "async or sync";
const DIRTY_ALLOWED: &str = "epml, spml, pagemap-scan, uffd, mprotect, soft-dirty, card, none";
const SIGNAL_ALLOWED: &str =
    "a signal number or name other than SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP (e.g. SIGPWR, SIGXCPU, SIGRTMIN+3, 30)";

impl Config {
    /// The built-in defaults (no environment).
    pub const fn new() -> Config {
        Config {
            dirty_source: DEFAULT_DIRTY_SOURCE,
            dirty_source_explicit: false,
            pml_engine: "async",
            initial_heap: DEFAULT_INITIAL_HEAP,
            max_heap: DEFAULT_MAX_HEAP,
            free_space_divisor: DEFAULT_FREE_SPACE_DIVISOR,
            verify: false,
            print_stats: false,
            find_leaks: false,
            leak_backtraces: false,
            leak_backtrace_depth: DEFAULT_LEAK_BACKTRACE_DEPTH,
            auto_collect: true,
            parallel_mark: false,
            suspend_signal: libc::SIGPWR,
            restart_signal: libc::SIGXCPU,
            cross_check: None,
            require_global_allocator: true,
        }
    }

    /// The defaults overridden by every `OOHGC_*` variable that is set.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_env_raw().map_err(RawConfigError::to_error)
    }

    /// As [`Config::from_env`], without allocating.
    pub(crate) fn from_env_raw() -> Result<Config, RawConfigError> {
        let mut c = Config::new();
        if let Some(v) = getenv(c"OOHGC_DIRTY") {
            c.dirty_source = parse_dirty(v).ok_or(RawConfigError {
                setting: "OOHGC_DIRTY",
                value: v,
                allowed: DIRTY_ALLOWED,
            })?;
            c.dirty_source_explicit = true;
        }
        if let Some(v) = getenv(c"OOHGC_CROSS_CHECK") {
            c.cross_check = Some(parse_dirty(v).ok_or(RawConfigError {
                setting: "OOHGC_CROSS_CHECK",
                value: v,
                allowed: DIRTY_ALLOWED,
            })?);
        }
        if let Some(v) = getenv(c"OOHGC_PML_ENGINE") {
            c.pml_engine = parse_engine(v).ok_or(RawConfigError {
                setting: "OOHGC_PML_ENGINE",
                value: v,
                allowed: ENGINE_ALLOWED,
            })?;
        }
        if let Some(v) = getenv(c"OOHGC_INITIAL_HEAP") {
            c.initial_heap = parse_size(v).ok_or(RawConfigError {
                setting: "OOHGC_INITIAL_HEAP",
                value: v,
                allowed: SIZE_ALLOWED,
            })?;
        }
        if let Some(v) = getenv(c"OOHGC_MAX_HEAP") {
            c.max_heap = parse_size(v)
                .filter(|&n| n >= MIN_MAX_HEAP)
                .ok_or(RawConfigError {
                    setting: "OOHGC_MAX_HEAP",
                    value: v,
                    allowed: MAX_HEAP_ALLOWED,
                })?;
        }
        if let Some(v) = getenv(c"OOHGC_FREE_SPACE_DIVISOR") {
            c.free_space_divisor = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(RawConfigError {
                    setting: "OOHGC_FREE_SPACE_DIVISOR",
                    value: v,
                    allowed: DIVISOR_ALLOWED,
                })?;
        }
        if let Some(v) = getenv(c"OOHGC_LEAK_BACKTRACE_DEPTH") {
            c.leak_backtrace_depth = parse_depth(v).ok_or(RawConfigError {
                setting: "OOHGC_LEAK_BACKTRACE_DEPTH",
                value: v,
                allowed: DEPTH_ALLOWED,
            })?;
        }
        for (name, slot) in [
            (c"OOHGC_VERIFY", &mut c.verify),
            (c"OOHGC_STATS", &mut c.print_stats),
            (c"OOHGC_FIND_LEAKS", &mut c.find_leaks),
            (c"OOHGC_LEAK_BACKTRACES", &mut c.leak_backtraces),
            (c"OOHGC_PARALLEL_MARK", &mut c.parallel_mark),
            (
                c"OOHGC_REQUIRE_GLOBAL_ALLOCATOR",
                &mut c.require_global_allocator,
            ),
        ] {
            if let Some(v) = getenv(name) {
                *slot = parse_bool(v).ok_or(RawConfigError {
                    setting: cstr_static(name),
                    value: v,
                    allowed: BOOL_ALLOWED,
                })?;
            }
        }
        if let Some(v) = getenv(c"OOHGC_COLLECTOR") {
            c.auto_collect = match v {
                "on" | "1" => true,
                "off" | "0" => false,
                _ => {
                    return Err(RawConfigError {
                        setting: "OOHGC_COLLECTOR",
                        value: v,
                        allowed: COLLECTOR_ALLOWED,
                    })
                }
            };
        }
        if let Some(v) = getenv(c"OOHGC_SUSPEND_SIGNAL") {
            c.suspend_signal = parse_signal(v).ok_or(RawConfigError {
                setting: "OOHGC_SUSPEND_SIGNAL",
                value: v,
                allowed: SIGNAL_ALLOWED,
            })?;
        }
        if let Some(v) = getenv(c"OOHGC_RESTART_SIGNAL") {
            c.restart_signal = parse_signal(v).ok_or(RawConfigError {
                setting: "OOHGC_RESTART_SIGNAL",
                value: v,
                allowed: SIGNAL_ALLOWED,
            })?;
        }
        Ok(c)
    }

    /// Use dirty source `name` (see [`DIRTY_SOURCES`]).
    pub fn dirty_source(mut self, name: &str) -> Result<Config, ConfigError> {
        self.dirty_source = parse_dirty(name).ok_or_else(|| ConfigError {
            setting: "Config::dirty_source",
            value: name.into(),
            allowed: DIRTY_ALLOWED,
        })?;
        self.dirty_source_explicit = true;
        Ok(self)
    }

    /// Use PML engine `name` (`async` or `sync`).
    pub fn pml_engine(mut self, name: &str) -> Result<Config, ConfigError> {
        self.pml_engine = parse_engine(name).ok_or_else(|| ConfigError {
            setting: "Config::pml_engine",
            value: name.into(),
            allowed: ENGINE_ALLOWED,
        })?;
        Ok(self)
    }

    /// Set the maximum heap (at least [`MIN_MAX_HEAP`]).
    pub fn max_heap(mut self, bytes: usize) -> Result<Config, ConfigError> {
        if bytes < MIN_MAX_HEAP {
            return Err(ConfigError {
                setting: "Config::max_heap",
                value: bytes.to_string(),
                allowed: MAX_HEAP_ALLOWED,
            });
        }
        self.max_heap = bytes;
        Ok(self)
    }

    /// Set the allocation before the first collection.
    pub fn initial_heap(mut self, bytes: usize) -> Config {
        self.initial_heap = bytes;
        self
    }

    /// Set the free-space divisor (1..=100).
    pub fn free_space_divisor(mut self, divisor: usize) -> Result<Config, ConfigError> {
        if !(1..=100).contains(&divisor) {
            return Err(ConfigError {
                setting: "Config::free_space_divisor",
                value: divisor.to_string(),
                allowed: DIVISOR_ALLOWED,
            });
        }
        self.free_space_divisor = divisor;
        Ok(self)
    }

    /// Turn the verifier on or off.
    pub fn verify(mut self, on: bool) -> Config {
        self.verify = on;
        self
    }

    /// Turn per-cycle stderr output on or off.
    pub fn print_stats(mut self, on: bool) -> Config {
        self.print_stats = on;
        self
    }

    /// Mark with a helper thread in stop-the-world pauses, or not.
    pub fn parallel_mark(mut self, on: bool) -> Config {
        self.parallel_mark = on;
        self
    }

    /// Turn leak reports on or off.
    pub fn find_leaks(mut self, on: bool) -> Config {
        self.find_leaks = on;
        self
    }

    /// Record allocation stacks for leak reports (see the field
    /// [`Config::leak_backtraces`]); effective only with
    /// [`Config::find_leaks`]. Blocks allocated before it is turned on
    /// have no recorded site.
    pub fn leak_backtraces(mut self, on: bool) -> Config {
        self.leak_backtraces = on;
        self
    }

    /// Set the stack frames recorded per allocation for leak backtraces
    /// (1..=[`MAX_LEAK_BACKTRACE_DEPTH`]). The stack walk, most of the cost
    /// of recording, grows with it.
    pub fn leak_backtrace_depth(mut self, frames: usize) -> Result<Config, ConfigError> {
        if !(1..=MAX_LEAK_BACKTRACE_DEPTH).contains(&frames) {
            return Err(ConfigError {
                setting: "Config::leak_backtrace_depth",
                value: frames.to_string(),
                allowed: DEPTH_ALLOWED,
            });
        }
        self.leak_backtrace_depth = frames;
        Ok(self)
    }

    /// Refuse `Gc` allocation without `GcAllocator` as the global
    /// allocator (on by default; see the field's documentation).
    pub fn require_global_allocator(mut self, on: bool) -> Config {
        self.require_global_allocator = on;
        self
    }

    /// Turn automatic collection on or off.
    pub fn auto_collect(mut self, on: bool) -> Config {
        self.auto_collect = on;
        self
    }

    /// Make these settings the collector's. Heap settings (`max_heap`)
    /// take effect immediately; the dirty source and signals can only be
    /// chosen before the collector has started (its first cycle).
    pub fn apply(self) -> Result<(), crate::InitError> {
        crate::runtime::apply_config(self)
    }
}

/// Parse a size such as `512M`, `2G`, `4096`, `64k`.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: usize = digits.parse().ok()?;
    n.checked_mul(1usize << shift)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn parse_depth(v: &str) -> Option<usize> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LEAK_BACKTRACE_DEPTH).contains(n))
}

fn parse_dirty(v: &str) -> Option<&'static str> {
    DIRTY_SOURCES.iter().copied().find(|&n| n == v)
}

fn parse_engine(v: &str) -> Option<&'static str> {
    ["async", "sync"].into_iter().find(|&n| n == v)
}

/// Parse a signal number or name; refuses the signals a runtime must not take.
pub fn parse_signal(v: &str) -> Option<i32> {
    let n = if let Ok(n) = v.parse::<i32>() {
        n
    } else {
        let name = v.strip_prefix("SIG").unwrap_or(v);
        let rtmin = libc::SIGRTMIN();
        if let Some(off) = name.strip_prefix("RTMIN+") {
            rtmin + off.parse::<i32>().ok()?
        } else {
            match name {
                "PWR" => libc::SIGPWR,
                "XCPU" => libc::SIGXCPU,
                "XFSZ" => libc::SIGXFSZ,
                "USR1" => libc::SIGUSR1,
                "USR2" => libc::SIGUSR2,
                "RTMIN" => rtmin,
                _ => return None,
            }
        }
    };
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
        libc::SIGTRAP,
    ];
    if n <= 0 || n > libc::SIGRTMAX() || forbidden.contains(&n) {
        return None;
    }
    Some(n)
}

/// Read an environment variable as a `&'static str` without allocating.
fn getenv(name: &std::ffi::CStr) -> Option<&'static str> {
    // SAFETY: getenv returns a pointer into the environment block, valid
    // until the variable is changed; the collector reads it at start-up.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: p is a NUL-terminated C string from the environment.
    let c = unsafe { std::ffi::CStr::from_ptr(p) };
    Some(c.to_str().unwrap_or("<not UTF-8>"))
}

fn cstr_static(c: &'static std::ffi::CStr) -> &'static str {
    c.to_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::default_dirty_source;

    #[test]
    fn card_is_never_the_default() {
        // Only `card` (or nothing) compiled in: stop-the-world, not a source
        // that loses every write made without a barrier.
        let only = |name: &str| SOURCE_FEATURES.map(|f| f == name);
        assert_eq!(default_dirty_source(&[false; 8]), "none");
        assert_eq!(default_dirty_source(&only("card")), "none");
        assert_eq!(default_dirty_source(&only("mprotect")), "mprotect");
        assert_eq!(default_dirty_source(&[true; 8]), "epml");
    }

    /// The flags of `DEFAULT_DIRTY_SOURCE` follow the table's rows, and this
    /// crate's cargo features are exactly the table's sources.
    #[test]
    fn source_features_follow_the_table() {
        let rows = &oohgc_dirty::registry::SOURCES;
        for (i, f) in SOURCE_FEATURES.iter().enumerate() {
            assert_eq!(*f, rows[i].name, "flag {i} of DEFAULT_DIRTY_SOURCE");
        }
        let mut listed = oohgc_dirty::registry::features_in_manifest(include_str!("../Cargo.toml"));
        listed.sort_unstable();
        let mut expected = SOURCE_FEATURES.to_vec();
        expected.sort_unstable();
        assert_eq!(
            listed, expected,
            "oohgc's [features] and the source table disagree"
        );
        assert_eq!(DIRTY_ALLOWED, oohgc_dirty::SOURCE_NAMES.join(", "));
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGPWR"), Some(libc::SIGPWR));
        assert_eq!(parse_signal("XCPU"), Some(libc::SIGXCPU));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("SIGSEGV"), None);
        assert_eq!(parse_signal("9"), None);
        assert_eq!(parse_signal("1000"), None);
    }

    #[test]
    fn builder_errors_name_the_setting() {
        let e = Config::new().max_heap(1000).unwrap_err();
        assert!(e.to_string().contains("Config::max_heap"), "{e}");
        assert!(e.to_string().contains("at least 4M"), "{e}");
        let e = Config::new().dirty_source("bogus").unwrap_err();
        assert!(e.to_string().contains("epml, spml"), "{e}");
        let e = Config::new().free_space_divisor(0).unwrap_err();
        assert!(e.to_string().contains("1 to 100"), "{e}");
    }
}
