//! The two signals that stop and restart threads: configuration, validation,
//! and installing the handlers (`init`).
//!
//! bdwgc's choice is the default: `SIGPWR` suspends, `SIGXCPU` restarts. Both
//! can be moved with `OOHGC_SUSPEND_SIGNAL` / `OOHGC_RESTART_SIGNAL`
//! ([`SignalConfig::from_env`]) when the program uses them itself.

use core::fmt;
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use crate::error::{BarrierError, ShortText, SignalRole};
use crate::handler::{restart_handler, suspend_handler};

/// The signals used to suspend and restart threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalConfig {
    /// Sent to a thread to suspend it (default `SIGPWR`).
    pub suspend: i32,
    /// Sent to a suspended thread to resume it (default `SIGXCPU`).
    pub restart: i32,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            suspend: libc::SIGPWR,
            restart: libc::SIGXCPU,
        }
    }
}

/// Classic signals a program may hand over to the collector. Everything else
/// below `SIGRTMIN` is fatal, job control, or has a meaning programs rely on.
const ALLOWED_CLASSIC: [(i32, &str); 7] = [
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGPWR, "SIGPWR"),
];

/// Names of the other classic signals, for messages.
const OTHER_NAMES: [(i32, &str); 22] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGWINCH, "SIGWINCH"),
];

/// The name of a signal number, `"SIGRT"` for real-time signals, `"?"` if
/// unknown.
pub fn signal_name(signal: i32) -> &'static str {
    ALLOWED_CLASSIC
        .iter()
        .chain(OTHER_NAMES.iter())
        .chain([(libc::SIGIO, "SIGIO"), (libc::SIGSYS, "SIGSYS")].iter())
        .find(|(n, _)| *n == signal)
        .map(|(_, name)| *name)
        .unwrap_or(
            if signal >= libc::SIGRTMIN() && signal <= libc::SIGRTMAX() {
                "SIGRT"
            } else {
                "?"
            },
        )
}

/// Displays the list of signals oohgc accepts.
pub struct AllowedSignals;

/// The list of acceptable signals, for error messages.
pub fn allowed_signals_text() -> AllowedSignals {
    AllowedSignals
}

impl fmt::Display for AllowedSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, name) in ALLOWED_CLASSIC {
            write!(f, "{name} ({n}), ")?;
        }
        write!(
            f,
            "or a real-time signal SIGRTMIN..=SIGRTMAX ({}..={})",
            libc::SIGRTMIN(),
            libc::SIGRTMAX()
        )
    }
}

fn validate_one(role: SignalRole, signal: i32) -> Result<(), BarrierError> {
    let invalid = |reason| {
        Err(BarrierError::InvalidSignal {
            role,
            signal,
            reason,
        })
    };
    if signal <= 0 || signal > libc::SIGRTMAX() {
        return invalid("not a signal number on this system");
    }
    if ALLOWED_CLASSIC.iter().any(|(n, _)| *n == signal) {
        return Ok(());
    }
    if signal >= libc::SIGRTMIN() {
        return Ok(());
    }
    if signal < libc::SIGRTMIN() && signal > 31 {
        return invalid("reserved by the C library for its own threads");
    }
    match signal {
        libc::SIGKILL | libc::SIGSTOP => invalid("it cannot be caught"),
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP => {
            invalid("it reports faults (Rust's stack-overflow guard uses SIGSEGV/SIGBUS)")
        }
        libc::SIGCONT | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU | libc::SIGCHLD => {
            invalid("it is used for job control")
        }
        _ => invalid("programs rely on its default meaning"),
    }
}

impl SignalConfig {
    /// Checks both signals are catchable, not used for faults or job control,
    /// in range, and different.
    pub fn validate(&self) -> Result<(), BarrierError> {
        validate_one(SignalRole::Suspend, self.suspend)?;
        validate_one(SignalRole::Restart, self.restart)?;
        if self.suspend == self.restart {
            return Err(BarrierError::SameSignal {
                signal: self.suspend,
            });
        }
        Ok(())
    }

    /// The default configuration overridden by `OOHGC_SUSPEND_SIGNAL` and
    /// `OOHGC_RESTART_SIGNAL` (a number, or a name like `SIGUSR1`, `USR1`,
    /// `SIGRTMIN+2`). The result is validated. Does not allocate.
    pub fn from_env() -> Result<SignalConfig, BarrierError> {
        let mut config = SignalConfig::default();
        if let Some(value) = env_bytes(c"OOHGC_SUSPEND_SIGNAL") {
            config.suspend = parse_signal(value).ok_or(BarrierError::BadEnvironment {
                role: SignalRole::Suspend,
                value: ShortText::new(value),
            })?;
        }
        if let Some(value) = env_bytes(c"OOHGC_RESTART_SIGNAL") {
            config.restart = parse_signal(value).ok_or(BarrierError::BadEnvironment {
                role: SignalRole::Restart,
                value: ShortText::new(value),
            })?;
        }
        config.validate()?;
        Ok(config)
    }
}

fn env_bytes(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; getenv returns NULL or a pointer to a
    // NUL-terminated string owned by the environment.
    let value = unsafe { libc::getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null getenv results are NUL-terminated strings that live as
    // long as the environment is not modified.
    Some(unsafe { core::ffi::CStr::from_ptr(value) }.to_bytes())
}

/// Parses a signal number or name (`"30"`, `"SIGPWR"`, `"PWR"`,
/// `"SIGRTMIN+3"`, `"SIGRTMAX-1"`). Does not validate.
pub fn parse_signal(text: &[u8]) -> Option<i32> {
    let text = text.trim_ascii();
    if let Some(n) = crate::sys::parse_decimal(text) {
        return i32::try_from(n).ok();
    }
    let upper = |b: &u8| b.to_ascii_uppercase();
    let mut buf = [0u8; 32];
    if text.len() > buf.len() {
        return None;
    }
    for (dst, src) in buf.iter_mut().zip(text) {
        *dst = upper(src);
    }
    let mut name = &buf[..text.len()];
    if let Some(rest) = name.strip_prefix(b"SIG") {
        name = rest;
    }
    for (base, rt) in [
        (&b"RTMIN"[..], libc::SIGRTMIN()),
        (&b"RTMAX"[..], libc::SIGRTMAX()),
    ] {
        if let Some(rest) = name.strip_prefix(base) {
            if rest.is_empty() {
                return Some(rt);
            }
            let offset = i32::try_from(crate::sys::parse_decimal(&rest[1..])?).ok()?;
            return match rest[0] {
                b'+' => Some(rt + offset),
                b'-' => Some(rt - offset),
                _ => None,
            };
        }
    }
    ALLOWED_CLASSIC
        .iter()
        .chain(OTHER_NAMES.iter())
        .find(|(_, full)| &full.as_bytes()[3..] == name)
        .map(|(n, _)| *n)
}

const UNINITIALIZED: u32 = 0;
const INITIALIZING: u32 = 1;
const READY: u32 = 2;

static INIT_STATE: AtomicU32 = AtomicU32::new(UNINITIALIZED);
static SUSPEND_SIGNAL: AtomicI32 = AtomicI32::new(0);
static RESTART_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Installs the suspend and restart handlers. Calling it again with the same
/// configuration is a no-op; with another one it is an error. Refuses a
/// signal the program already handles. Does not allocate.
pub fn init(config: SignalConfig) -> Result<(), BarrierError> {
    config.validate()?;
    loop {
        match INIT_STATE.compare_exchange(
            UNINITIALIZED,
            INITIALIZING,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                let result = install(config);
                if result.is_ok() {
                    SUSPEND_SIGNAL.store(config.suspend, Ordering::Relaxed);
                    RESTART_SIGNAL.store(config.restart, Ordering::Relaxed);
                    crate::registry::install_fork_handler();
                    INIT_STATE.store(READY, Ordering::Release);
                } else {
                    INIT_STATE.store(UNINITIALIZED, Ordering::Release);
                }
                return result;
            }
            Err(READY) => {
                let current = current_config().expect("READY implies a configuration");
                return if current == config {
                    Ok(())
                } else {
                    Err(BarrierError::AlreadyInitialized {
                        current,
                        requested: config,
                    })
                };
            }
            Err(_) => std::thread::yield_now(),
        }
    }
}

/// Whether `init` has succeeded.
pub fn is_initialized() -> bool {
    INIT_STATE.load(Ordering::Acquire) == READY
}

/// The configuration installed by `init`, if any.
pub fn current_config() -> Option<SignalConfig> {
    is_initialized().then(|| SignalConfig {
        suspend: SUSPEND_SIGNAL.load(Ordering::Relaxed),
        restart: RESTART_SIGNAL.load(Ordering::Relaxed),
    })
}

/// The restart signal number (0 before `init`). Used by the suspend handler.
#[inline]
pub(crate) fn restart_signal() -> i32 {
    RESTART_SIGNAL.load(Ordering::Relaxed)
}

/// The suspend signal number (0 before `init`).
#[inline]
pub(crate) fn suspend_signal() -> i32 {
    SUSPEND_SIGNAL.load(Ordering::Relaxed)
}

/// Initialises from the environment if nobody called `init` yet; panics with
/// the error's message if that fails (stop_world cannot return an error).
pub(crate) fn ensure_initialized() {
    if is_initialized() {
        return;
    }
    let result = SignalConfig::from_env().and_then(init);
    if let Err(error) = result {
        panic!("oohgc-barriers: cannot stop threads: {error}");
    }
}

type SigAction = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

fn current_handler(signal: i32) -> Result<usize, BarrierError> {
    // SAFETY: an all-zero sigaction is a valid out-value.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: querying (null new action) with a valid out-pointer.
    if unsafe { libc::sigaction(signal, core::ptr::null(), &mut old) } != 0 {
        return Err(BarrierError::SigactionFailed {
            signal,
            errno: crate::sys::errno(),
        });
    }
    Ok(old.sa_sigaction)
}

fn install(config: SignalConfig) -> Result<(), BarrierError> {
    let ours = [
        (
            SignalRole::Suspend,
            config.suspend,
            suspend_handler as SigAction,
        ),
        (
            SignalRole::Restart,
            config.restart,
            restart_handler as SigAction,
        ),
    ];
    for (role, signal, handler) in ours {
        let existing = current_handler(signal)?;
        if existing != libc::SIG_DFL && existing != libc::SIG_IGN && existing != handler as usize {
            return Err(BarrierError::SignalInUse { role, signal });
        }
    }
    for (_, signal, handler) in ours {
        // SAFETY: an all-zero sigaction is a valid starting value.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t to fill.
        unsafe {
            libc::sigfillset(&mut action.sa_mask);
            // Faults inside a handler must still reach Rust's guard-page
            // handler instead of killing the process silently.
            for fault in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
                libc::sigdelset(&mut action.sa_mask, fault);
            }
        }
        // SAFETY: installing a valid handler with a fully initialised action.
        if unsafe { libc::sigaction(signal, &action, core::ptr::null_mut()) } != 0 {
            return Err(BarrierError::SigactionFailed {
                signal,
                errno: crate::sys::errno(),
            });
        }
    }
    Ok(())
}
