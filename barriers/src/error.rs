//! The error type of this crate: every way setting up thread coordination can
//! fail, each message naming what was wrong and what is allowed.

use core::fmt;

use crate::signals::{allowed_signals_text, signal_name, SignalConfig};

/// Which of the two signals an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalRole {
    /// The signal that suspends a thread (`SignalConfig::suspend`).
    Suspend,
    /// The signal that resumes a suspended thread (`SignalConfig::restart`).
    Restart,
}

impl SignalRole {
    /// The environment variable that chooses this signal.
    pub fn env_var(self) -> &'static str {
        match self {
            SignalRole::Suspend => "OOHGC_SUSPEND_SIGNAL",
            SignalRole::Restart => "OOHGC_RESTART_SIGNAL",
        }
    }
}

impl fmt::Display for SignalRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignalRole::Suspend => "suspend",
            SignalRole::Restart => "restart",
        })
    }
}

/// A short piece of text copied without allocating (an environment value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortText {
    bytes: [u8; 32],
    len: u8,
    truncated: bool,
}

impl ShortText {
    /// Copies up to 32 bytes of `text`.
    pub fn new(text: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        let len = text.len().min(bytes.len());
        bytes[..len].copy_from_slice(&text[..len]);
        Self {
            bytes,
            len: len as u8,
            truncated: text.len() > len,
        }
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.bytes[..usize::from(self.len)]);
        write!(f, "\"{text}{}\"", if self.truncated { "..." } else { "" })
    }
}

/// Why thread coordination could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BarrierError {
    /// The signal number cannot be used (reserved, fatal, job control, or out
    /// of range).
    InvalidSignal {
        /// Which signal of the configuration.
        role: SignalRole,
        /// The number given.
        signal: i32,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Suspend and restart were given the same signal.
    SameSignal {
        /// The signal given for both.
        signal: i32,
    },
    /// The program already installed its own handler for the signal.
    SignalInUse {
        /// Which signal of the configuration.
        role: SignalRole,
        /// The signal number.
        signal: i32,
    },
    /// `init` was already called with another configuration.
    AlreadyInitialized {
        /// The configuration in force.
        current: SignalConfig,
        /// The configuration this call asked for.
        requested: SignalConfig,
    },
    /// `sigaction` refused to install the handler.
    SigactionFailed {
        /// The signal number.
        signal: i32,
        /// The errno `sigaction` returned.
        errno: i32,
    },
    /// An `OOHGC_*_SIGNAL` environment variable does not name a signal.
    BadEnvironment {
        /// Which signal the variable configures.
        role: SignalRole,
        /// The value found (first 32 bytes).
        value: ShortText,
    },
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = allowed_signals_text();
        match *self {
            BarrierError::InvalidSignal {
                role,
                signal,
                reason,
            } => write!(
                f,
                "{role} signal {signal} cannot be used to stop threads: {reason}. \
                 Choose another with {} (allowed: {allowed})",
                role.env_var()
            ),
            BarrierError::SameSignal { signal } => write!(
                f,
                "the suspend and restart signals are both {} ({signal}); they must differ. \
                 Set OOHGC_SUSPEND_SIGNAL / OOHGC_RESTART_SIGNAL to two different signals \
                 (allowed: {allowed})",
                signal_name(signal)
            ),
            BarrierError::SignalInUse { role, signal } => write!(
                f,
                "signal {} ({signal}) already has a handler installed by the program; oohgc \
                 needs it to {} threads. Move oohgc with OOHGC_SUSPEND_SIGNAL / \
                 OOHGC_RESTART_SIGNAL (allowed: {allowed})",
                signal_name(signal),
                match role {
                    SignalRole::Suspend => "stop",
                    SignalRole::Restart => "restart",
                }
            ),
            BarrierError::AlreadyInitialized { current, requested } => write!(
                f,
                "oohgc-barriers is already initialised with suspend {} ({}) / restart {} ({}); \
                 it cannot switch to suspend {} ({}) / restart {} ({}) while running. \
                 Call init with the same configuration, or once only",
                signal_name(current.suspend),
                current.suspend,
                signal_name(current.restart),
                current.restart,
                signal_name(requested.suspend),
                requested.suspend,
                signal_name(requested.restart),
                requested.restart
            ),
            BarrierError::SigactionFailed { signal, errno } => write!(
                f,
                "sigaction refused to install the handler for {} ({signal}): errno {errno}. \
                 Choose another signal with OOHGC_SUSPEND_SIGNAL / OOHGC_RESTART_SIGNAL \
                 (allowed: {allowed})",
                signal_name(signal)
            ),
            BarrierError::BadEnvironment { role, value } => write!(
                f,
                "{}={value} is not a signal: give a number or a name such as SIGPWR, SIGUSR1 \
                 or SIGRTMIN+3 (allowed: {allowed})",
                role.env_var()
            ),
        }
    }
}

impl std::error::Error for BarrierError {}
