//! Events: a run says when it starts, when a step fails and when it ends (and `drover check`
//! when readiness fails) to Amazon EventBridge and SNS, as the plan's `notify:` and the run's
//! flags ask.
//!
//! Delivery never decides a run: events are queued, sent by a task of their own with retries,
//! and a failure to deliver is logged (`tracing`) and counted, never returned. The detail is a
//! stable, versioned schema ([`Detail`], documented in `docs/events.md`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_plan::{Mode, Plan};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::CloudError;
use crate::observer::Observer;
use crate::policy::RetryPolicy;
use crate::ports::{CloudResult, Millis};
use crate::report::RunReport;
use crate::run::format_time;
use crate::state::{Phase, RunState, StepEvent, StepKey};

/// The `source` of every event drover sends.
pub const SOURCE: &str = "drover";
/// Detail type of a run's start and end.
pub const RUN_STATE_CHANGE: &str = "Drover Run State Change";
/// Detail type of a step that failed (its dependents are blocked).
pub const STEP_FAILURE: &str = "Drover Step Failure";
/// Detail type of a failed readiness check (`drover check`).
pub const CHECK_FAILURE: &str = "Drover Readiness Check Failure";
/// Version of [`Detail`]'s schema: raised only when a field changes meaning or goes away.
pub const DETAIL_VERSION: u32 = 1;

/// One event: what EventBridge calls an entry, and the body of an SNS message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// One of [`RUN_STATE_CHANGE`], [`STEP_FAILURE`], [`CHECK_FAILURE`].
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// When it happened (the run's clock), ms since the epoch.
    pub time: Millis,
    /// What happened.
    pub detail: Detail,
}

impl Event {
    /// The event as EventBridge delivers it (`source`, `detail-type`, `time`, `detail`): the
    /// body of an SNS message, so that one consumer reads both.
    #[must_use]
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::json!({
            "version": "0",
            "source": SOURCE,
            "detail-type": self.detail_type,
            "time": format_time(self.time),
            "detail": self.detail,
        })
    }

    /// A one-line subject (SNS: at most 100 printable ASCII characters).
    #[must_use]
    pub fn subject(&self) -> String {
        let d = &self.detail;
        let what = match d.state.as_str() {
            "STARTED" => "started".to_owned(),
            "RESUMED" => "resumed".to_owned(),
            "STEP_FAILED" => match d.failed_tables.first() {
                Some(f) => format!("{} {} failed in {}", f.table, f.step, f.target),
                None => "a step failed".to_owned(),
            },
            "CHECK_FAILED" => format!("readiness check failed ({} findings)", d.findings.len()),
            other => other.to_ascii_lowercase(),
        };
        let mode = d.mode.as_deref().unwrap_or("check");
        let s = format!("drover {mode} of {}: {what}", d.plan);
        let s: String = s.chars().map(|c| if c.is_ascii_graphic() { c } else { ' ' }).collect();
        match s.char_indices().nth(100) {
            Some((i, _)) => s[..i].to_owned(),
            None => s,
        }
    }
}

/// An event's detail (schema version [`DETAIL_VERSION`]; `docs/events.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detail {
    /// Schema version.
    pub version: u32,
    /// `STARTED`, `RESUMED`, `STEP_FAILED`, `SUCCEEDED`, `FAILED`, `INTERRUPTED` or
    /// `CHECK_FAILED`.
    pub state: String,
    /// The run (absent for `drover check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The plan's name.
    pub plan: String,
    /// `drill`, `failover`, `backup`, `recover` (absent for `drover check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `succeeded`, `failed` or `interrupted`, at the run's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// When the run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RTO achieved against the objective, at the run's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rto: Option<Objective>,
    /// RPO achieved against the objective, at the run's end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpo: Option<Objective>,
    /// Tables with a failed step (a step failure: that one step).
    pub failed_tables: Vec<FailedTable>,
    /// A readiness check's failed findings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FailedFinding>,
}

/// An objective and what a run achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Achieved, in seconds (absent when the run did not get that far).
    pub achieved_seconds: Option<f64>,
    /// The plan's objective, in seconds (absent when the plan sets none).
    pub objective_seconds: Option<f64>,
    /// Whether achieved is within the objective (absent when either is).
    pub met: Option<bool>,
}

impl Objective {
    fn new(achieved_ms: Option<Millis>, objective_ms: Option<Millis>) -> Option<Objective> {
        if achieved_ms.is_none() && objective_ms.is_none() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let s = |ms: Millis| ms as f64 / 1000.0;
        Some(Objective {
            achieved_seconds: achieved_ms.map(s),
            objective_seconds: objective_ms.map(s),
            met: achieved_ms.zip(objective_ms).map(|(a, o)| a <= o),
        })
    }
}

/// A table whose step failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTable {
    /// The table (`*` for a target's `after_target` hooks).
    pub table: String,
    /// The target region (or the source region, for source steps).
    pub target: String,
    /// The step (`restore`, `validate`, ...).
    pub step: String,
    /// Why, in a sentence.
    pub error: String,
}

/// A failed readiness finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedFinding {
    /// The check (`recovery-point`, `pitr`, ...).
    pub check: String,
    /// What it is about (`orders in us-west-2`).
    pub subject: String,
    /// What was found.
    pub detail: String,
    /// What to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Where events go: the plan's `notify:` and the run's flags, together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    /// EventBridge buses: (region, name or ARN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_buses: Vec<(String, String)>,
    /// SNS topic ARNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sns_topics: Vec<String>,
}

impl Channels {
    /// The plan's `notify:` plus `extra` (flags), without duplicates.
    #[must_use]
    pub fn of(plan: &Plan, extra: &Channels) -> Channels {
        let mut out = Channels::default();
        if let Some(eb) = &plan.notify.eventbridge {
            out.event_buses.push((eb.region.to_string(), eb.event_bus.clone()));
        }
        if let Some(sns) = &plan.notify.sns {
            out.sns_topics.push(sns.topic_arn.clone());
        }
        for bus in &extra.event_buses {
            if !out.event_buses.contains(bus) {
                out.event_buses.push(bus.clone());
            }
        }
        for topic in &extra.sns_topics {
            if !out.sns_topics.contains(topic) {
                out.sns_topics.push(topic.clone());
            }
        }
        out
    }

    /// Whether events go anywhere.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.event_buses.is_empty() && self.sns_topics.is_empty()
    }
}

/// The region of an SNS topic or EventBridge bus ARN (`arn:PARTITION:SERVICE:REGION:...`).
#[must_use]
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// EventBridge and SNS.
#[async_trait]
pub trait EventService: Send + Sync {
    /// EventBridge PutEvents of one entry (source [`SOURCE`], the event's detail type and
    /// detail as JSON) to `bus` (name or ARN) in `region`. An entry the service answers with
    /// an error code (`FailedEntryCount` > 0) is an error of its kind.
    async fn put_event(&self, region: &str, bus: &str, event: &Event) -> CloudResult<()>;
    /// SNS Publish of the event's [`Event::envelope`] to `topic_arn`, with its
    /// [`Event::subject`] and a `detail-type` message attribute (for subscription filters).
    async fn publish(&self, topic_arn: &str, event: &Event) -> CloudResult<()>;
}

/// How a notifier's deliveries went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Deliveries that succeeded (one per event and channel).
    pub delivered: u32,
    /// Deliveries given up on, each logged.
    pub failed: u32,
}

/// Sends events in the background, in order, with retries; never blocks nor fails its caller.
pub struct Notifier {
    tx: mpsc::UnboundedSender<Queued>,
    task: tokio::task::JoinHandle<Delivery>,
}

impl Notifier {
    /// Starts a notifier for `channels` (`None` when there are none). Each delivery is retried
    /// on faults that may pass (throttling, 5xx, timeouts) with `retry`'s backoff until its
    /// `give_up_after`; any other error gives up at once. Both are logged.
    #[must_use]
    pub fn start(
        channels: Channels,
        events: Arc<dyn EventService>,
        retry: RetryPolicy,
    ) -> Option<Notifier> {
        if channels.is_empty() {
            return None;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
        let task = tokio::spawn(async move {
            let mut delivery = Delivery::default();
            while let Some(Queued::Event(event)) = rx.recv().await {
                let event = *event;
                for (region, bus) in &channels.event_buses {
                    let to = format!("event bus {bus} in {region}");
                    let ok = deliver(&to, &event, &retry, || events.put_event(region, bus, &event))
                        .await;
                    count(&mut delivery, ok);
                }
                for topic in &channels.sns_topics {
                    let to = format!("SNS topic {topic}");
                    let ok = deliver(&to, &event, &retry, || events.publish(topic, &event)).await;
                    count(&mut delivery, ok);
                }
            }
            delivery
        });
        Some(Notifier { tx, task })
    }

    /// Queues an event.
    pub fn send(&self, event: Event) {
        // The task ends only at `close`: this cannot fail while `self` lives.
        let _ = self.tx.send(Queued::Event(Box::new(event)));
    }

    /// A sender for an observer.
    fn sender(&self) -> mpsc::UnboundedSender<Queued> {
        self.tx.clone()
    }

    /// Waits up to `within` for the queued events to be delivered; what is still queued then is
    /// logged as not delivered.
    pub async fn close(self, within: Duration) -> Delivery {
        let Notifier { tx, mut task } = self;
        // Observers may still hold senders: the task stops at this mark, after what is queued
        // before it. Events sent after it are dropped.
        let _ = tx.send(Queued::Close);
        match tokio::time::timeout(within, &mut task).await {
            Ok(Ok(delivery)) => delivery,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "event delivery stopped");
                Delivery::default()
            }
            Err(_) => {
                task.abort();
                tracing::warn!(
                    seconds = within.as_secs(),
                    "events not delivered in time were dropped; the journal and report have \
                     everything they said"
                );
                Delivery::default()
            }
        }
    }
}

/// What the notifier's task reads: an event to deliver, or the end.
enum Queued {
    Event(Box<Event>),
    Close,
}

fn count(delivery: &mut Delivery, ok: bool) {
    if ok {
        delivery.delivered += 1;
    } else {
        delivery.failed += 1;
    }
}

/// Delivers one event to one channel, retrying what may pass; logs the outcome.
async fn deliver<F, Fut>(to: &str, event: &Event, retry: &RetryPolicy, call: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = CloudResult<()>>,
{
    let mut wait = retry.initial;
    let mut waited = Duration::ZERO;
    loop {
        match call().await {
            Ok(()) => {
                tracing::debug!(to, detail_type = %event.detail_type, "event delivered");
                return true;
            }
            Err(e) if e.kind.is_retryable() && waited < retry.give_up_after => {
                tracing::warn!(to, error = %e, retry_in_ms = wait.as_millis(), "event not delivered yet");
                tokio::time::sleep(wait).await;
                waited += wait;
                wait = (wait * 2).min(retry.max);
            }
            Err(e) => {
                tracing::warn!(
                    to,
                    detail_type = %event.detail_type,
                    error = %e,
                    "event not delivered; the run goes on (the journal and report have it)"
                );
                return false;
            }
        }
    }
}

/// The default retries of a delivery: from 1 s, doubling to 30 s, for up to 2 minutes.
#[must_use]
pub fn default_retry() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(30),
        give_up_after: Duration::from_secs(120),
    }
}

fn run_detail(state: &RunState, what: &str) -> Detail {
    let h = &state.header;
    Detail {
        version: DETAIL_VERSION,
        state: what.to_owned(),
        run_id: Some(h.run_id.clone()),
        plan: h.plan_name.clone(),
        mode: Some(h.mode.as_str().to_owned()),
        outcome: None,
        started_at: Some(format_time(state.started_at)),
        rto: None,
        rpo: None,
        failed_tables: Vec::new(),
        findings: Vec::new(),
    }
}

/// A run started (`resumed`: continued from its journal).
#[must_use]
pub fn run_started(state: &RunState, resumed: bool, at: Millis) -> Event {
    Event {
        detail_type: RUN_STATE_CHANGE.to_owned(),
        time: at,
        detail: run_detail(state, if resumed { "RESUMED" } else { "STARTED" }),
    }
}

/// A run ended: its outcome, RTO/RPO achieved against the objectives, the failed tables.
#[must_use]
pub fn run_finished(plan: &Plan, state: &RunState, at: Millis) -> Event {
    let report = RunReport::new(plan, state);
    let mut detail = run_detail(state, &report.outcome.to_ascii_uppercase());
    detail.outcome = Some(report.outcome.clone());
    detail.rto = Objective::new(report.recovery_time_ms, report.rto_objective_ms);
    detail.rpo = Objective::new(report.rpo_achieved_ms, report.rpo_objective_ms);
    detail.failed_tables = state
        .steps
        .iter()
        .filter_map(|(key, s)| match &s.phase {
            Phase::Failed { message } => Some(failed_table(plan, key, message)),
            _ => None,
        })
        .collect();
    Event { detail_type: RUN_STATE_CHANGE.to_owned(), time: at, detail }
}

fn failed_table(plan: &Plan, key: &StepKey, error: &str) -> FailedTable {
    FailedTable {
        table: key.table.clone(),
        target: key.target.clone().unwrap_or_else(|| plan.source.region.to_string()),
        step: key.kind.as_str().to_owned(),
        error: error.to_owned(),
    }
}

/// A readiness check (`drover check`) failed.
#[must_use]
pub fn check_failed(plan: &Plan, pitr: bool, findings: Vec<FailedFinding>, at: Millis) -> Event {
    Event {
        detail_type: CHECK_FAILURE.to_owned(),
        time: at,
        detail: Detail {
            version: DETAIL_VERSION,
            state: "CHECK_FAILED".to_owned(),
            run_id: None,
            plan: plan.name.clone(),
            mode: pitr.then(|| Mode::Recover.as_str().to_owned()),
            outcome: Some("failed".to_owned()),
            started_at: None,
            rto: None,
            rpo: None,
            failed_tables: Vec::new(),
            findings,
        },
    }
}

/// An observer that also sends an event for each failed step.
pub(crate) struct Notifying {
    pub(crate) inner: Arc<dyn Observer>,
    pub(crate) plan: Plan,
    tx: mpsc::UnboundedSender<Queued>,
}

impl Notifying {
    pub(crate) fn new(inner: Arc<dyn Observer>, plan: Plan, notifier: &Notifier) -> Notifying {
        Notifying { inner, plan, tx: notifier.sender() }
    }
}

impl Observer for Notifying {
    fn step(&self, key: &StepKey, event: &StepEvent, state: &RunState) {
        self.inner.step(key, event, state);
        if let StepEvent::Failed { message, .. } = event {
            let mut detail = run_detail(state, "STEP_FAILED");
            detail.failed_tables.push(failed_table(&self.plan, key, message));
            let _ = self.tx.send(Queued::Event(Box::new(Event {
                detail_type: STEP_FAILURE.to_owned(),
                time: state.last_at,
                detail,
            })));
        }
    }

    fn retry(&self, key: &StepKey, error: &CloudError, wait: Duration) {
        self.inner.retry(key, error, wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Accepting;

    #[async_trait]
    impl EventService for Accepting {
        async fn put_event(&self, _: &str, _: &str, _: &Event) -> CloudResult<()> {
            Ok(())
        }
        async fn publish(&self, _: &str, _: &Event) -> CloudResult<()> {
            Ok(())
        }
    }

    /// The run's observer still holds a sender when the run closes its notifier: closing
    /// must not wait for it (it did, for the whole timeout).
    #[tokio::test]
    async fn close_does_not_wait_for_the_observers_senders() {
        let channels = Channels {
            event_buses: vec![("us-east-1".into(), "default".into())],
            ..Channels::default()
        };
        let n = Notifier::start(channels, Arc::new(Accepting), default_retry()).unwrap();
        let held = n.sender();
        let e = Event { detail_type: RUN_STATE_CHANGE.to_owned(), time: 0, detail: sample() };
        n.send(e.clone());
        let _ = held.send(Queued::Event(Box::new(e)));
        let delivery =
            tokio::time::timeout(Duration::from_secs(5), n.close(Duration::from_secs(60)))
                .await
                .expect("close returns once the queue is delivered");
        assert_eq!(delivery, Delivery { delivered: 2, failed: 0 });
    }

    fn sample() -> Detail {
        Detail {
            version: 1,
            state: "STARTED".to_owned(),
            run_id: None,
            plan: "p".to_owned(),
            mode: None,
            outcome: None,
            started_at: None,
            rto: None,
            rpo: None,
            failed_tables: Vec::new(),
            findings: Vec::new(),
        }
    }

    #[test]
    fn arn_regions() {
        assert_eq!(arn_region("arn:aws:sns:us-east-1:123456789012:dr"), Some("us-east-1"));
        assert_eq!(
            arn_region("arn:aws:events:eu-west-1:123456789012:event-bus/default"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("default"), None);
        assert_eq!(arn_region("arn:aws:sns::1:x"), None);
    }

    #[test]
    fn subjects_are_short_printable_ascii() {
        let detail = Detail {
            version: 1,
            state: "STEP_FAILED".to_owned(),
            run_id: None,
            plan: "p".repeat(200),
            mode: Some("drill".to_owned()),
            outcome: None,
            started_at: None,
            rto: None,
            rpo: None,
            failed_tables: vec![FailedTable {
                table: "orders\n".to_owned(),
                target: "us-west-2".to_owned(),
                step: "validate".to_owned(),
                error: "x".to_owned(),
            }],
            findings: Vec::new(),
        };
        let e = Event { detail_type: STEP_FAILURE.to_owned(), time: 0, detail };
        let s = e.subject();
        assert_eq!(s.chars().count(), 100);
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        assert!(s.starts_with("drover drill of ppp"));
    }

    #[test]
    fn objectives_say_whether_they_were_met() {
        let o = Objective::new(Some(90_000), Some(60_000)).unwrap();
        assert_eq!(o.achieved_seconds, Some(90.0));
        assert_eq!(o.met, Some(false));
        assert_eq!(Objective::new(None, None), None);
        assert_eq!(Objective::new(None, Some(1000)).unwrap().met, None);
    }
}
