//! EventBridge and SNS: drover's events ([`EventService`]).
//!
//! - PutEvents of one entry (source [`SOURCE`], the event's detail type, its detail as JSON,
//!   its time) to the bus, by name or ARN, in the region the engine names. PutEvents answers
//!   200 even when its entry failed (`FailedEntryCount`): the entry's `ErrorCode` is the
//!   error, classified as a service error's code is (`ThrottlingException` throttled,
//!   `InternalFailure` passing, `ResourceNotFoundException` a bus that does not exist, a
//!   malformed entry fatal).
//! - Publish of the event's envelope (the JSON EventBridge delivers, so that one consumer
//!   reads both) to the topic, in the topic ARN's region, with the event's subject and a
//!   `detail-type` message attribute (for subscription filter policies).
//!
//! The credentials: those of the account the bus or topic ARN names when the plan puts a
//! region in it, else (a bus named without an ARN) those of the bus region's account when it
//! is one of the plan's, else the source account's (`Accounts::access_for`, `docs/iam.md`).

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_types::DateTime;
use drover_engine::notify::{Event, EventService, SOURCE, arn_region};
use drover_engine::ports::CloudResult;
use drover_engine::{CloudError, ErrorKind};

use crate::AwsCloud;
use crate::errors::{self, classify};

/// The message attribute that carries the event's detail type.
const DETAIL_TYPE_ATTRIBUTE: &str = "detail-type";

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`), if it is one.
fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(3).filter(|a| !a.is_empty())
}

/// The error of a PutEvents entry that failed: its code classified as a service error's is,
/// with its message.
fn entry_error(op: &str, code: Option<&str>, message: Option<&str>) -> CloudError {
    let kind = classify(code, None);
    let code = code.unwrap_or("an unnamed error");
    let message = match message {
        Some(m) => format!("the event was not accepted ({code}: {m})"),
        None => format!("the event was not accepted ({code})"),
    };
    CloudError::new(kind, op, message)
}

#[async_trait]
impl EventService for AwsCloud {
    async fn put_event(&self, region: &str, bus: &str, event: &Event) -> CloudResult<()> {
        const OP: &str = "PutEvents";
        let detail = serde_json::to_string(&event.detail).map_err(|e| {
            CloudError::new(ErrorKind::Fatal, OP, format!("the event's detail is not JSON: {e}"))
        })?;
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(&event.detail_type)
            .detail(detail)
            .time(DateTime::from_millis(event.time))
            .event_bus_name(bus)
            .build();
        let out = self
            .factory
            .notify(region, arn_account(bus))
            .await
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        let failed = out.failed_entry_count();
        let entry = out.entries().first();
        match entry {
            Some(e) if e.error_code().is_some() => {
                Err(entry_error(OP, e.error_code(), e.error_message()))
            }
            _ if failed > 0 => Err(entry_error(OP, None, None)),
            Some(_) => Ok(()),
            None => Err(errors::missing(OP, "Entries")),
        }
    }

    async fn publish(&self, topic_arn: &str, event: &Event) -> CloudResult<()> {
        const OP: &str = "Publish";
        let region = arn_region(topic_arn).ok_or_else(|| {
            CloudError::new(
                ErrorKind::Fatal,
                OP,
                format!(
                    "`{topic_arn}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME): fix \
                     the plan's `notify.sns.topic_arn` or --sns-topic"
                ),
            )
        })?;
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(&event.detail_type)
            .build()
            .map_err(|e| CloudError::new(ErrorKind::Fatal, OP, e.to_string()))?;
        self.factory
            .notify(region, arn_account(topic_arn))
            .await
            .sns
            .publish()
            .topic_arn(topic_arn)
            .message(event.envelope().to_string())
            .subject(event.subject())
            .message_attributes(DETAIL_TYPE_ATTRIBUTE, attribute)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_their_account() {
        assert_eq!(
            arn_account("arn:aws:events:us-east-1:123456789012:event-bus/ops"),
            Some("123456789012")
        );
        assert_eq!(arn_account("arn:aws:sns:eu-west-1:210987654321:alerts"), Some("210987654321"));
        assert_eq!(arn_account("default"), None);
        assert_eq!(arn_account("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn failed_entries_are_errors_of_their_codes_kind() {
        let cases = [
            ("ThrottlingException", ErrorKind::Throttled),
            ("InternalFailure", ErrorKind::Transient),
            ("InternalException", ErrorKind::Transient),
            ("ResourceNotFoundException", ErrorKind::NotFound),
            ("AccessDeniedException", ErrorKind::AccessDenied),
            ("NotAuthorizedForSourceException", ErrorKind::AccessDenied),
            ("MalformedDetail", ErrorKind::Fatal),
            ("InvalidArgument", ErrorKind::Fatal),
        ];
        for (code, kind) in cases {
            let e = entry_error("PutEvents", Some(code), Some("why"));
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.message, format!("the event was not accepted ({code}: why)"));
        }
        assert_eq!(entry_error("PutEvents", None, None).kind, ErrorKind::Fatal);
    }
}
