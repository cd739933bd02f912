//! SDK errors to drover error kinds, by the service's error code and the HTTP status.
//!
//! The SDK's `Display` of an error says only "service error"; messages here keep the
//! service's code and message.
//!
//! The codes come from the AWS API models of the three services drover calls (botocore's
//! `backup/2018-11-15`, `dynamodb/2012-08-10` and `kms/2014-11-01` `service-2.json`), plus
//! the codes every AWS service may answer (throttling, authentication, timeouts). Every
//! exception those models mark `"fault": true` (a server-side failure) or document as
//! retryable (the `retryable` trait, botocore's `_retry.json`, or "try again later" / "can be
//! retried" in its documentation) is [`ErrorKind::Transient`]. A code nobody lists falls back
//! on the HTTP status: `429` and `509` are throttling, any `5xx` a passing fault.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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
        | "PriorRequestNotComplete" => ErrorKind::Throttled,
        "ResourceNotFoundException" | "NotFoundException" | "TableNotFoundException" => {
            ErrorKind::NotFound
        }
        "AlreadyExistsException" | "TableAlreadyExistsException" => ErrorKind::AlreadyExists,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "ExpiredTokenException" => ErrorKind::AccessDenied,
        // A table that is `CREATING` or `UPDATING` answers ResourceInUseException: the engine
        // waits for `ACTIVE` before it calls, so meeting it means something else holds the
        // table.
        "DisabledException"
        | "KMSInvalidStateException"
        | "ResourceInUseException"
        | "InvalidRequestException"
        | "ConditionalCheckFailedException"
        | "TableInUseException" => ErrorKind::InvalidState,
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
        // Spelled differently by other AWS services and by the SDK's own layers.
        | "ServiceUnavailable"
        | "InternalServerErrorException"
        | "InternalFailure"
        | "InternalServerException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::Transient,
        _ => match status {
            Some(429 | 509) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        },
    }
}

/// Maps an SDK error of operation `op` to a [`CloudError`]: a service error by its code and
/// the status of the raw HTTP response, anything that kept the call from being answered
/// (connection, timeout, unreadable response) as [`ErrorKind::Transient`].
pub(crate) fn map<E>(op: &str, e: &SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            CloudError::new(ErrorKind::Transient, op, format!("{}", DisplayErrorContext(e)))
        }
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code();
            let status = service.raw().status().as_u16();
            let kind = classify(code, Some(status));
            let message = match (code, err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => format!("HTTP {status}: {}", DisplayErrorContext(e)),
            };
            CloudError::new(kind, op, message)
        }
        _ => CloudError::new(ErrorKind::Fatal, op, format!("{}", DisplayErrorContext(e))),
    }
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

    /// Likewise for `kms/2014-11-01/service-2.json`.
    const KMS_MODEL: &[(&str, ErrorKind)] = &[
        ("DependencyTimeoutException", ErrorKind::Transient), // fault, "You can retry"
        ("KMSInternalException", ErrorKind::Transient),       // fault, "can be retried"
        ("KeyUnavailableException", ErrorKind::Transient),    // fault, "You can retry"
        ("ConflictException", ErrorKind::Transient),          // a key rotation under way
        ("LimitExceededException", ErrorKind::Throttled),
    ];

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
            // A table CREATING or UPDATING: the engine waits for ACTIVE instead.
            ("ResourceInUseException", ErrorKind::InvalidState),
            ("DisabledException", ErrorKind::InvalidState),
            ("KMSInvalidStateException", ErrorKind::InvalidState),
            ("AccessDeniedException", ErrorKind::AccessDenied),
            ("UnrecognizedClientException", ErrorKind::AccessDenied),
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
}
