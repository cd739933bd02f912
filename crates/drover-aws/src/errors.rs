//! SDK errors to drover error kinds, by the service's error code and the HTTP status.
//!
//! The SDK's `Display` of an error says only "service error", and
//! [`DisplayErrorContext`] ends the chain of messages with a `Debug` dump of the whole error
//! (headers and bodies included); messages here keep the service's code and message, or the
//! chain of messages alone. The full context is logged at `debug` level.
//!
//! The codes come from the AWS API models of the services drover calls (botocore's
//! `backup/2018-11-15`, `dynamodb/2012-08-10` and `kms/2014-11-01` `service-2.json`; for S3,
//! whose model lists few errors, the codes of the S3 API reference's "Error responses"), plus
//! the codes every AWS service may answer (throttling, authentication, timeouts: the "Common
//! Errors" of the AWS API references). Every exception those models mark `"fault": true` (a
//! server-side failure) or document as retryable (the `retryable` trait, botocore's
//! `_retry.json`, or "try again later" / "can be retried" in its documentation) is
//! [`ErrorKind::Transient`]. A code nobody lists falls back on the HTTP status: `429` and `509`
//! are throttling, `401` refused credentials, `403` a denial, any `5xx` a passing fault.
//!
//! A call that got no answer is classified by why (`SdkError::DispatchFailure`): the
//! credential chain failed ([`ErrorKind::Credentials`]: the SDK resolves credentials while
//! dispatching, and hands the chain's `CredentialsError` over as the connector error's
//! source), or the endpoint could not be reached (`is_io`: connection refused, no such host;
//! `is_timeout`: no connection within the connect timeout; [`ErrorKind::Unreachable`]).

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{
    ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError,
};
use drover_engine::{CloudError, ErrorKind};

/// Classifies an error code (and, failing that, an HTTP status) into an [`ErrorKind`].
#[must_use]
pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match code.unwrap_or_default() {
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        // SNS (query codes of ThrottledException and KMSThrottlingException).
        | "Throttled"
        | "KMSThrottling" => ErrorKind::Throttled,
        "ResourceNotFoundException"
        | "NotFoundException"
        | "TableNotFoundException"
        // S3: a key or a bucket that does not exist; `NotFound` is the code the S3 SDK gives
        // a HEAD's 404, which has no body.
        | "NoSuchKey"
        | "NoSuchBucket"
        | "NotFound" => ErrorKind::NotFound,
        "AlreadyExistsException" | "TableAlreadyExistsException" => ErrorKind::AlreadyExists,
        // Valid credentials, not allowed the call.
        // SNS: `AuthorizationError`; EventBridge's entries: the NotAuthorizedFor* codes.
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "NotAuthorized"
        | "AuthorizationError"
        | "NotAuthorizedForSourceException"
        | "NotAuthorizedForDetailTypeException" => ErrorKind::AccessDenied,
        // The credentials themselves refused: an expired session, an unknown key, a request
        // signed wrongly or too long ago (a clock far off).
        "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "AuthFailure" => ErrorKind::Unauthenticated,
        // A table that is `CREATING` or `UPDATING` answers ResourceInUseException: the engine
        // waits for `ACTIVE` before it calls, so meeting it means something else holds the
        // table.
        "DisabledException"
        | "KMSInvalidStateException"
        | "ResourceInUseException"
        | "InvalidRequestException"
        | "ConditionalCheckFailedException"
        | "TableInUseException"
        // RestoreTableToPointInTime: an instant outside the source's restorable window, or a
        // source without point-in-time recovery (the model's "not yet been enabled").
        | "InvalidRestoreTimeException"
        | "PointInTimeRecoveryUnavailableException" => ErrorKind::InvalidState,
        // Faults (`"fault": true`): Backup, DynamoDB and KMS.
        "ServiceUnavailableException"
        | "DependencyFailureException"
        | "InternalServerError"
        | "KMSInternalException"
        | "KeyUnavailableException"
        | "DependencyTimeoutException"
        // Passing states the models tell callers to retry: Backup's ConflictException and
        // InvalidResourceStateException ("Try again later"; KMS's ConflictException is a key
        // rotation under way), DynamoDB's ReplicatedWriteConflictException (`retryable`) and
        // TransactionInProgressException (botocore `_retry.json`).
        | "ConflictException"
        | "InvalidResourceStateException"
        | "ReplicatedWriteConflictException"
        | "TransactionInProgressException"
        // UpdateContinuousBackups on a table created or restored moments ago: "Backups are
        // being enabled for the table" (the model: "Backups have not yet been enabled").
        | "ContinuousBackupsUnavailableException"
        // S3 (REST-XML errors, ErrorResponses.html): `InternalError` ("We encountered an
        // internal error. Please try again.", 500) and `OperationAborted` ("A conflicting
        // conditional operation is currently in progress against this resource. Try again.",
        // 409).
        | "InternalError"
        | "OperationAborted"
        // Spelled differently by other AWS services and by the SDK's own layers.
        | "ServiceUnavailable"
        | "InternalServerErrorException"
        | "InternalFailure"
        | "InternalServerException"
        // EventBridge (`InternalException`, a fault), CloudWatch (`InternalServiceFault`,
        // query code `InternalServiceError`).
        | "InternalException"
        | "InternalServiceError"
        | "InternalServiceFault"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::Transient,
        _ => match status {
            Some(429 | 509) => ErrorKind::Throttled,
            Some(401) => ErrorKind::Unauthenticated,
            Some(403) => ErrorKind::AccessDenied,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        },
    }
}

/// Maps an SDK error of operation `op` to a [`CloudError`]: a service error by its code and
/// the status of the raw HTTP response; a call that got no answer by why (no credentials, an
/// endpoint out of reach, anything else passing: timeouts, unreadable responses). The full
/// error, `Debug` included, is logged at `debug` level only.
pub(crate) fn map<E>(op: &str, e: &SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let no_credentials = match e {
        SdkError::ServiceError(_) => None,
        _ => credentials(e),
    };
    let mapped = match (e, no_credentials) {
        (_, Some((kind, message))) => CloudError::new(kind, op, message),
        (SdkError::ServiceError(service), None) => {
            let err = service.err();
            let code = err.code();
            let status = service.raw().status().as_u16();
            let kind = classify(code, Some(status));
            let message = match (code, err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => format!("HTTP {status}: {}", chain(e)),
            };
            CloudError::new(kind, op, message)
        }
        (SdkError::DispatchFailure(d), None) => match d.as_connector_error() {
            Some(c) if c.is_io() || c.is_timeout() => {
                CloudError::new(ErrorKind::Unreachable, op, unreachable(c))
            }
            _ => CloudError::new(ErrorKind::Transient, op, chain(e)),
        },
        (SdkError::TimeoutError(_) | SdkError::ResponseError(_), None) => {
            CloudError::new(ErrorKind::Transient, op, chain(e))
        }
        _ => CloudError::new(ErrorKind::Fatal, op, chain(e)),
    };
    tracing::debug!(op, kind = %mapped.kind, error = %DisplayErrorContext(e), "call failed");
    mapped
}

/// The messages of `e` and its sources, joined by `: ` (as [`DisplayErrorContext`], without
/// its `Debug` dump); a message that its error's own already ends with is not repeated.
pub(crate) fn chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// Why the credential chain gave no credentials, when that is what `e` is: the chain's own
/// messages, from its `CredentialsError` on ([`ErrorKind::Credentials`]), or why a role could
/// not be assumed (its own kind: a denial, or a passing fault). The SDK's identity cache
/// gives up on a chain that takes longer than its load timeout (5 s) with an error of a
/// private type, known only by its message.
fn credentials(e: &(dyn Error + 'static)) -> Option<(ErrorKind, String)> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(failed) = err.downcast_ref::<crate::accounts::AssumeRoleFailed>() {
            return Some((failed.kind, failed.to_string()));
        }
        next = err.source();
    }
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<CredentialsError>().is_some()
            || err.to_string().starts_with("identity resolver timed out")
        {
            return Some((ErrorKind::Credentials, chain(err)));
        }
        next = err.source();
    }
    None
}

/// Why a connection could not be made: the last two messages of the connector error's chain
/// (`tcp connect error: Connection refused (os error 111)`, `dns error: failed to lookup
/// address information: ...`), which the layers above only wrap.
fn unreachable(c: &ConnectorError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(c);
    while let Some(err) = next {
        parts.push(err.to_string());
        next = err.source();
    }
    let keep = parts.len().saturating_sub(2);
    parts[keep..].join(": ")
}

/// A response of operation `op` that lacks `what`, which the service always sends: fatal.
pub(crate) fn missing(op: &str, what: &str) -> CloudError {
    CloudError::new(ErrorKind::Fatal, op, format!("the response has no {what}"))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    /// The exceptions of `backup/2018-11-15/service-2.json` (botocore) that drover must not
    /// treat as failures: `"fault": true` ones, the retryable ones, and the limits.
    const BACKUP_MODEL: &[(&str, ErrorKind)] = &[
        ("DependencyFailureException", ErrorKind::Transient), // fault
        ("ServiceUnavailableException", ErrorKind::Transient), // fault
        ("ConflictException", ErrorKind::Transient),          // "Try again later."
        ("InvalidResourceStateException", ErrorKind::Transient), // "Try again later."
        ("LimitExceededException", ErrorKind::Throttled),
    ];

    /// Likewise for `dynamodb/2012-08-10/service-2.json` (and botocore's `_retry.json`).
    const DYNAMODB_MODEL: &[(&str, ErrorKind)] = &[
        ("InternalServerError", ErrorKind::Transient), // fault
        ("ReplicatedWriteConflictException", ErrorKind::Transient), // retryable
        ("TransactionInProgressException", ErrorKind::Transient), // _retry.json
        ("ContinuousBackupsUnavailableException", ErrorKind::Transient), // passing
        ("ThrottlingException", ErrorKind::Throttled),
        ("ProvisionedThroughputExceededException", ErrorKind::Throttled),
        ("RequestLimitExceeded", ErrorKind::Throttled),
        ("LimitExceededException", ErrorKind::Throttled),
    ];

    /// RestoreTableToPointInTime's errors (`dynamodb/2012-08-10/service-2.json`): the target
    /// name taken, or being created or deleted; the instant outside the window or PITR off; too
    /// many restores at once ("up to 50 concurrent restores"); the source missing.
    const DYNAMODB_PITR_RESTORE: &[(&str, ErrorKind)] = &[
        ("TableAlreadyExistsException", ErrorKind::AlreadyExists),
        ("TableInUseException", ErrorKind::InvalidState),
        ("InvalidRestoreTimeException", ErrorKind::InvalidState),
        ("PointInTimeRecoveryUnavailableException", ErrorKind::InvalidState),
        ("LimitExceededException", ErrorKind::Throttled),
        ("TableNotFoundException", ErrorKind::NotFound),
        ("InternalServerError", ErrorKind::Transient),
        // A cross-region restore without `SSESpecificationOverride`, among others.
        ("ValidationException", ErrorKind::Fatal),
    ];

    #[test]
    fn point_in_time_restore_errors_map_to_what_the_engine_expects() {
        for (code, kind) in DYNAMODB_PITR_RESTORE {
            assert_eq!(classify(Some(code), Some(400)), *kind, "{code}");
            assert_eq!(classify(Some(code), None), *kind, "{code}");
        }
    }

    /// Likewise for `kms/2014-11-01/service-2.json`.
    const KMS_MODEL: &[(&str, ErrorKind)] = &[
        ("DependencyTimeoutException", ErrorKind::Transient), // fault, "You can retry"
        ("KMSInternalException", ErrorKind::Transient),       // fault, "can be retried"
        ("KeyUnavailableException", ErrorKind::Transient),    // fault, "You can retry"
        ("ConflictException", ErrorKind::Transient),          // a key rotation under way
        ("LimitExceededException", ErrorKind::Throttled),
    ];

    /// S3's codes (S3 API reference, "Error responses", `ErrorResponses.html`), each with the
    /// HTTP status S3 sends it with: passing faults and throttling are retried, a missing key
    /// or bucket is not found, a denial is a denial.
    const S3_CODES: &[(&str, u16, ErrorKind)] = &[
        ("InternalError", 500, ErrorKind::Transient),
        ("ServiceUnavailable", 503, ErrorKind::Transient),
        ("OperationAborted", 409, ErrorKind::Transient),
        ("RequestTimeout", 400, ErrorKind::Transient),
        ("SlowDown", 503, ErrorKind::Throttled),
        ("NoSuchKey", 404, ErrorKind::NotFound),
        ("NoSuchBucket", 404, ErrorKind::NotFound),
        ("NotFound", 404, ErrorKind::NotFound),
        ("AccessDenied", 403, ErrorKind::AccessDenied),
        ("InvalidAccessKeyId", 403, ErrorKind::Unauthenticated),
        ("SignatureDoesNotMatch", 403, ErrorKind::Unauthenticated),
        ("ExpiredToken", 400, ErrorKind::Unauthenticated),
        ("InvalidArgument", 400, ErrorKind::Fatal),
    ];

    #[test]
    fn s3_codes_map_to_kinds_whatever_their_status() {
        for (code, status, kind) in S3_CODES {
            assert_eq!(classify(Some(code), Some(*status)), *kind, "{code} ({status})");
            assert_eq!(classify(Some(code), None), *kind, "{code}");
        }
        // A HEAD's error has no body: the status alone (the SDK names a 404 `NotFound`).
        assert_eq!(classify(None, Some(503)), ErrorKind::Transient);
        assert_eq!(classify(None, Some(403)), ErrorKind::AccessDenied);
        // A 404 without a known code is not taken for a missing object: an endpoint that is
        // not S3 answers so too.
        assert_eq!(classify(None, Some(404)), ErrorKind::Fatal);
    }

    #[test]
    fn the_models_faults_retryable_errors_and_limits_are_retried() {
        for (model, cases) in
            [("backup", BACKUP_MODEL), ("dynamodb", DYNAMODB_MODEL), ("kms", KMS_MODEL)]
        {
            for (code, kind) in cases {
                // A 400, so that the code alone decides (faults come with a 5xx).
                assert_eq!(classify(Some(code), Some(400)), *kind, "{model}: {code}");
                assert_eq!(classify(Some(code), None), *kind, "{model}: {code}");
            }
        }
    }

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            ("ThrottlingException", ErrorKind::Throttled),
            ("LimitExceededException", ErrorKind::Throttled),
            ("ProvisionedThroughputExceededException", ErrorKind::Throttled),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("TableAlreadyExistsException", ErrorKind::AlreadyExists),
            ("TableInUseException", ErrorKind::InvalidState),
            ("InvalidRestoreTimeException", ErrorKind::InvalidState),
            ("PointInTimeRecoveryUnavailableException", ErrorKind::InvalidState),
            // A table CREATING or UPDATING: the engine waits for ACTIVE instead.
            ("ResourceInUseException", ErrorKind::InvalidState),
            ("DisabledException", ErrorKind::InvalidState),
            ("KMSInvalidStateException", ErrorKind::InvalidState),
            ("AccessDeniedException", ErrorKind::AccessDenied),
            ("AccessDenied", ErrorKind::AccessDenied),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("UnrecognizedClientException", ErrorKind::Unauthenticated),
            ("InvalidClientTokenId", ErrorKind::Unauthenticated),
            ("ExpiredToken", ErrorKind::Unauthenticated),
            ("ExpiredTokenException", ErrorKind::Unauthenticated),
            ("RequestExpired", ErrorKind::Unauthenticated),
            ("InvalidSignatureException", ErrorKind::Unauthenticated),
            ("ServiceUnavailableException", ErrorKind::Transient),
            ("KeyUnavailableException", ErrorKind::Transient),
            ("ValidationException", ErrorKind::Fatal),
            ("IdempotentParameterMismatchException", ErrorKind::Fatal),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(Some(code), Some(400)), kind, "{code}");
        }
        assert_eq!(classify(None, Some(503)), ErrorKind::Transient);
        assert_eq!(classify(None, Some(429)), ErrorKind::Throttled);
        assert_eq!(classify(None, Some(509)), ErrorKind::Throttled);
        assert_eq!(classify(None, Some(401)), ErrorKind::Unauthenticated);
        assert_eq!(classify(None, Some(403)), ErrorKind::AccessDenied);
        assert_eq!(classify(Some("SomethingNew"), Some(400)), ErrorKind::Fatal);
        assert_eq!(classify(Some("SomethingNew"), Some(500)), ErrorKind::Transient);
        assert_eq!(classify(Some("SomethingNew"), None), ErrorKind::Fatal);
    }

    /// A service error as the SDK hands it over: `code` and `message` parsed from a response
    /// of `status`.
    fn service_error(code: &str, status: u16) -> SdkError<DescribeTableError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("something happened").build();
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(DescribeTableError::generic(meta), raw)
    }

    #[test]
    fn service_errors_are_classified_by_their_http_status_too() {
        let e = map("DescribeTable", &service_error("SomethingNew", 500));
        assert_eq!(e.kind, ErrorKind::Transient, "{e:?}");
        assert_eq!(e.op, "DescribeTable");
        assert_eq!(e.message, "SomethingNew: something happened");
        assert_eq!(map("X", &service_error("SomethingNew", 503)).kind, ErrorKind::Transient);
        assert_eq!(map("X", &service_error("SomethingNew", 429)).kind, ErrorKind::Throttled);
        assert_eq!(map("X", &service_error("SomethingNew", 400)).kind, ErrorKind::Fatal);
        // The code decides when it is known, whatever the status.
        assert_eq!(
            map("X", &service_error("ResourceNotFoundException", 400)).kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            map("X", &service_error("DependencyFailureException", 500)).kind,
            ErrorKind::Transient
        );
    }

    /// A call that got no answer: `connector` as the SDK's HTTP client hands it over.
    fn dispatch_failure(connector: ConnectorError) -> SdkError<DescribeTableError, HttpResponse> {
        SdkError::dispatch_failure(connector)
    }

    /// No `Debug` dump in a message people read.
    fn assert_readable(e: &CloudError) {
        for debug in ["{", "Some(", "SdkError", "DispatchFailure", "ConnectorError"] {
            assert!(!e.message.contains(debug), "{debug} in {:?}", e.message);
        }
    }

    #[test]
    fn no_credentials_is_told_apart_and_not_retried() {
        // The SDK resolves credentials while it dispatches a call: the chain's error is the
        // connector error's source.
        let chain = CredentialsError::not_loaded("no providers in chain provided credentials");
        let e = map("DescribeTable", &dispatch_failure(ConnectorError::other(chain.into(), None)));
        assert_eq!(e.kind, ErrorKind::Credentials, "{e:?}");
        assert!(!e.kind.is_retryable());
        assert_eq!(
            e.message,
            "the credential provider was not enabled: no providers in chain provided credentials"
        );
        assert_readable(&e);
        let bad_profile = CredentialsError::invalid_configuration("profile `nope` is not defined");
        let e = map("X", &dispatch_failure(ConnectorError::other(bad_profile.into(), None)));
        assert_eq!(e.kind, ErrorKind::Credentials, "{e:?}");
        assert!(e.message.ends_with("profile `nope` is not defined"), "{}", e.message);
    }

    #[test]
    fn an_endpoint_out_of_reach_is_unreachable_and_retried_by_running_steps() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = map("DescribeTable", &dispatch_failure(ConnectorError::io(refused.into())));
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e:?}");
        assert!(e.kind.is_retryable());
        assert_eq!(e.message, "io error: Connection refused");
        assert_readable(&e);
        let slow = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout");
        let e = map("X", &dispatch_failure(ConnectorError::timeout(slow.into())));
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e:?}");
        // Anything else that kept the call from an answer is a passing fault, as before.
        let other = std::io::Error::other("something odd");
        let e = map("X", &dispatch_failure(ConnectorError::other(other.into(), None)));
        assert_eq!(e.kind, ErrorKind::Transient, "{e:?}");
        assert_readable(&e);
    }

    #[test]
    fn refused_credentials_and_denials_keep_the_services_code_and_message() {
        let e = map("DescribeTable", &service_error("ExpiredTokenException", 400));
        assert_eq!(e.kind, ErrorKind::Unauthenticated);
        assert_eq!(e.message, "ExpiredTokenException: something happened");
        let e = map("DescribeBackupVault", &service_error("AccessDeniedException", 403));
        assert_eq!(e.kind, ErrorKind::AccessDenied);
        assert_eq!(e.message, "AccessDeniedException: something happened");
    }

    #[test]
    fn chains_skip_messages_their_error_already_ends_with() {
        #[derive(Debug)]
        struct Wrap(&'static str, Option<Box<Wrap>>);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl Error for Wrap {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                self.1.as_deref().map(|w| w as _)
            }
        }
        let e =
            Wrap("outer: inner", Some(Box::new(Wrap("inner", Some(Box::new(Wrap("root", None)))))));
        assert_eq!(chain(&e), "outer: inner: root");
    }
}
