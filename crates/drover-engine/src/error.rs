//! Errors: what a cloud call can fail with, and what a run can fail with.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure a cloud call met. Adapters classify their service's error codes into
/// these; the engine decides from the kind alone whether to retry, back off or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Rate or quota exceeded (`ThrottlingException`, `LimitExceededException`): back off,
    /// lower concurrency, retry.
    Throttled,
    /// A passing fault (5xx, timeout, connection reset): retry.
    Transient,
    /// The resource does not exist.
    NotFound,
    /// The resource already exists (`TableAlreadyExistsException`, ...).
    AlreadyExists,
    /// Permission denied.
    AccessDenied,
    /// The resource is not in a state that allows the call (`ResourceInUseException`, a
    /// disabled KMS key, ...).
    InvalidState,
    /// Anything else: not retried.
    Fatal,
}

impl ErrorKind {
    /// Whether a call failing this way may succeed when retried as is.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// The kind's name in journals and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::AccessDenied => "access-denied",
            ErrorKind::InvalidState => "invalid-state",
            ErrorKind::Fatal => "fatal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed cloud call: its kind, the operation, and the service's code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{op} failed ({kind}): {message}")]
pub struct CloudError {
    /// How the engine treats it.
    pub kind: ErrorKind,
    /// The operation, e.g. `StartRestoreJob`.
    pub op: String,
    /// The service's error code and message (never credentials).
    pub message: String,
}

impl CloudError {
    /// A new error.
    pub fn new(kind: ErrorKind, op: impl Into<String>, message: impl Into<String>) -> CloudError {
        CloudError { kind, op: op.into(), message: message.into() }
    }
}

/// Why a run stopped other than by finishing its steps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The journal could not be read, written or replayed.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Another drover holds the state directory.
    #[error("{0}")]
    Locked(String),
    /// The run cannot start as asked (plan changed, names taken, unknown run, ...).
    #[error("{0}")]
    Refused(String),
    /// A cloud call failed outside any step (preflight reads).
    #[error(transparent)]
    Cloud(#[from] CloudError),
}
