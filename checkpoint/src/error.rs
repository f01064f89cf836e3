//! The checkpointer's error type: every failure names what was wrong and,
//! for images, the file and the page.

use oohgc_dirty::{DirtyError, PageRange};
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a checkpoint operation failed.
#[derive(Debug)]
pub enum CheckpointError {
    /// The dirty source refused (unknown name, unavailable here, or a
    /// failed track / arm / harvest).
    Source(DirtyError),
    /// A file or directory operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The system's error.
        error: io::Error,
    },
    /// An image is damaged, truncated, of another version, or does not
    /// belong to the chain that names it.
    Corrupt {
        /// The image file.
        path: PathBuf,
        /// What is wrong, naming the page where there is one.
        what: String,
    },
    /// A range given to `track`, `untrack` or a restore is not acceptable.
    BadRange {
        /// The range.
        range: PageRange,
        /// What is wrong with it, and what is allowed.
        what: String,
    },
    /// The writers could not be stopped.
    Freeze(String),
    /// The call does not make sense in this state (e.g. a dump into a
    /// directory that already holds an image).
    Usage(String),
}

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, error: io::Error) -> Self {
        CheckpointError::Io {
            path: path.into(),
            op,
            error,
        }
    }
    pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        CheckpointError::Corrupt {
            path: path.into(),
            what: what.into(),
        }
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Source(e) => write!(f, "{e}"),
            CheckpointError::Io { path, op, error } => {
                write!(f, "{op} {}: {error}", path.display())
            }
            CheckpointError::Corrupt { path, what } => {
                write!(f, "image {} refused: {what}", path.display())
            }
            CheckpointError::BadRange { range, what } => {
                write!(f, "range {:#x}..{:#x}: {what}", range.start, range.end())
            }
            CheckpointError::Freeze(why) => write!(f, "cannot stop the writers: {why}"),
            CheckpointError::Usage(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for CheckpointError {}

impl From<DirtyError> for CheckpointError {
    fn from(e: DirtyError) -> Self {
        CheckpointError::Source(e)
    }
}
