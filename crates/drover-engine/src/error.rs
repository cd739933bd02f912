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
    /// The service's endpoint could not be reached: connection refused, no such host, no
    /// connection within the connect timeout. A running step retries it like a passing fault;
    /// a command that only reads (preflight, estimate) reports it at once instead of waiting.
    Unreachable,
    /// No credentials: the credential chain (environment, profile, SSO, process, instance
    /// metadata) found none or could not load them (a profile that is not defined, an SSO
    /// session not logged in). The call was never sent; not retried.
    Credentials,
    /// The service refused the credentials themselves: an expired session (`ExpiredToken`,
    /// `RequestExpired`), an unknown or invalid key (`InvalidClientTokenId`,
    /// `UnrecognizedClientException`, a bad signature). Not retried.
    Unauthenticated,
    /// The resource does not exist.
    NotFound,
    /// The resource already exists (`TableAlreadyExistsException`, ...).
    AlreadyExists,
    /// Permission denied: the credentials are valid but not allowed the call
    /// (`AccessDeniedException`, `UnauthorizedOperation`). Not retried.
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
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient | ErrorKind::Unreachable)
    }

    /// Whether the failure is about reaching the cloud or being let in (endpoint,
    /// credentials, permissions) rather than about the resource asked for: the next call
    /// would most likely fail the same way, so a command reports it once, with how to fix
    /// access, instead of once per resource.
    #[must_use]
    pub fn is_access(self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable
                | ErrorKind::Credentials
                | ErrorKind::Unauthenticated
                | ErrorKind::AccessDenied
        )
    }

    /// The kind's name in journals and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Unauthenticated => "unauthenticated",
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

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    const ALL: [ErrorKind; 10] = [
        ErrorKind::Throttled,
        ErrorKind::Transient,
        ErrorKind::Unreachable,
        ErrorKind::Credentials,
        ErrorKind::Unauthenticated,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::AccessDenied,
        ErrorKind::InvalidState,
        ErrorKind::Fatal,
    ];

    #[test]
    fn names_in_journals_are_the_serde_names() {
        for kind in ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json.as_str(), Some(kind.as_str()), "{kind:?}");
        }
    }

    #[test]
    fn only_passing_failures_are_retried_and_access_failures_are_told_apart() {
        let retried: Vec<_> = ALL.into_iter().filter(|k| k.is_retryable()).collect();
        // An endpoint that refuses connections may come back (a restart): a running step
        // retries it. Missing, refused or insufficient credentials never fix themselves.
        assert_eq!(retried, [ErrorKind::Throttled, ErrorKind::Transient, ErrorKind::Unreachable]);
        let access: Vec<_> = ALL.into_iter().filter(|k| k.is_access()).collect();
        assert_eq!(
            access,
            [
                ErrorKind::Unreachable,
                ErrorKind::Credentials,
                ErrorKind::Unauthenticated,
                ErrorKind::AccessDenied
            ]
        );
    }
}
