//! SDK errors to drover error kinds, by the service's error code.
//!
//! The SDK's `Display` of an error says only "service error"; messages here keep the
//! service's code and message.

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
        "DisabledException"
        | "KMSInvalidStateException"
        | "ResourceInUseException"
        | "InvalidResourceStateException"
        | "InvalidRequestException"
        | "ConditionalCheckFailedException"
        | "TableInUseException" => ErrorKind::InvalidState,
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalServerError"
        | "InternalServerErrorException"
        | "InternalFailure"
        | "InternalServerException"
        | "KeyUnavailableException"
        | "DependencyTimeoutException"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorKind::Transient,
        _ => match status {
            Some(429) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        },
    }
}

/// Maps an SDK error of operation `op` to a [`CloudError`].
pub(crate) fn map<E, R>(op: &str, e: &SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            CloudError::new(ErrorKind::Transient, op, format!("{}", DisplayErrorContext(e)))
        }
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code();
            let kind = classify(code, None);
            let message = match (code, err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => format!("{}", DisplayErrorContext(e)),
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
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let cases = [
            ("ThrottlingException", ErrorKind::Throttled),
            ("LimitExceededException", ErrorKind::Throttled),
            ("ProvisionedThroughputExceededException", ErrorKind::Throttled),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("TableAlreadyExistsException", ErrorKind::AlreadyExists),
            ("ResourceInUseException", ErrorKind::InvalidState),
            ("DisabledException", ErrorKind::InvalidState),
            ("KMSInvalidStateException", ErrorKind::InvalidState),
            ("AccessDeniedException", ErrorKind::AccessDenied),
            ("UnrecognizedClientException", ErrorKind::AccessDenied),
            ("ServiceUnavailableException", ErrorKind::Transient),
            ("KeyUnavailableException", ErrorKind::Transient),
            ("ValidationException", ErrorKind::Fatal),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(Some(code), Some(400)), kind, "{code}");
        }
        assert_eq!(classify(None, Some(503)), ErrorKind::Transient);
        assert_eq!(classify(None, Some(429)), ErrorKind::Throttled);
        assert_eq!(classify(Some("SomethingNew"), Some(400)), ErrorKind::Fatal);
    }
}
