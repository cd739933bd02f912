//! EventBridge and SNS ([`EventService`]) and CloudWatch ([`MetricService`]): the world keeps
//! what it was sent ([`World::sent`](crate::World)), with the faults in force, so that offline runs and tests see
//! a run's events and metrics. Every region has these services.

use async_trait::async_trait;
use drover_engine::ErrorKind;
use drover_engine::metrics::{Datum, MAX_DATA_PER_CALL, MetricService};
use drover_engine::notify::{Event, EventService, arn_region};
use drover_engine::ports::{CloudResult, Millis};

use crate::cloud::SimCloud;
use crate::err;

/// Something the world was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// An event put on an event bus.
    Event {
        /// The bus's region.
        region: String,
        /// The bus, as named.
        bus: String,
        /// The event.
        event: Event,
        /// When.
        at: Millis,
    },
    /// An event published to a topic.
    Message {
        /// The topic's ARN.
        topic_arn: String,
        /// The message's subject.
        subject: String,
        /// The event.
        event: Event,
        /// When.
        at: Millis,
    },
    /// A metric datum.
    Metric {
        /// The region.
        region: String,
        /// The namespace.
        namespace: String,
        /// The datum.
        datum: Datum,
    },
}

#[async_trait]
impl EventService for SimCloud {
    async fn put_event(&self, region: &str, bus: &str, event: &Event) -> CloudResult<()> {
        const OP: &str = "PutEvents";
        self.op_anywhere(OP, region, |w, at| {
            w.sent.push(Sent::Event {
                region: region.to_owned(),
                bus: bus.to_owned(),
                event: event.clone(),
                at,
            });
            Ok(())
        })
        .await
    }

    async fn publish(&self, topic_arn: &str, event: &Event) -> CloudResult<()> {
        const OP: &str = "Publish";
        let Some(region) = arn_region(topic_arn) else {
            return Err(err(
                ErrorKind::Fatal,
                OP,
                format!("InvalidParameter: `{topic_arn}` is not a topic ARN"),
            ));
        };
        self.op_anywhere(OP, region, |w, at| {
            w.sent.push(Sent::Message {
                topic_arn: topic_arn.to_owned(),
                subject: event.subject(),
                event: event.clone(),
                at,
            });
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl MetricService for SimCloud {
    async fn put_metric_data(
        &self,
        region: &str,
        namespace: &str,
        data: &[Datum],
    ) -> CloudResult<()> {
        const OP: &str = "PutMetricData";
        self.op_anywhere(OP, region, |w, _| {
            if data.len() > MAX_DATA_PER_CALL {
                return Err(err(
                    ErrorKind::Fatal,
                    OP,
                    format!(
                        "InvalidParameterValue: The collection MetricData must not have a size greater than {MAX_DATA_PER_CALL}."
                    ),
                ));
            }
            w.sent.extend(data.iter().map(|d| Sent::Metric {
                region: region.to_owned(),
                namespace: namespace.to_owned(),
                datum: d.clone(),
            }));
            Ok(())
        })
        .await
    }
}

impl SimCloud {
    /// What the world was sent so far (events, messages, metric data), in order.
    #[must_use]
    pub fn sent(&self) -> Vec<Sent> {
        self.with(|w| w.sent.clone())
    }
}
