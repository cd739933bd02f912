//! What `drover check` tells the tools around it: an event when readiness fails, and its
//! findings as CloudWatch metrics (`--publish-metrics`). Runs send their own, from the engine.

use std::time::Duration;

use drover_engine::metrics::{self, PointAge};
use drover_engine::notify::{self, Channels, FailedFinding, Notifier};
use drover_engine::preflight::{Finding, Status};
use drover_plan::Plan;

use crate::args::NotifyArgs;
use crate::cloud::Cloud;
use crate::output;

/// A failed check sends one `Drover Readiness Check Failure` event to the plan's and the
/// flags' channels (a passing check sends nothing); a delivery that fails is said on stderr,
/// never changes the check's result.
pub(crate) async fn check_failed(
    plan: &Plan,
    pitr: bool,
    findings: &[Finding],
    args: &NotifyArgs,
    cloud: &Cloud,
) {
    let failed: Vec<FailedFinding> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| FailedFinding {
            check: f.check.to_owned(),
            subject: f.subject.clone(),
            detail: f.detail.clone(),
            fix: f.fix.clone(),
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    let channels = Channels::of(plan, &args.channels());
    let Some(notifier) =
        Notifier::start(channels, cloud.ports.events.clone(), notify::default_retry())
    else {
        return;
    };
    notifier.send(notify::check_failed(plan, pitr, failed, cloud.ports.clock.now()));
    let delivery = notifier.close(Duration::from_secs(150)).await;
    if delivery.failed > 0 {
        output::stderr(&format!(
            "warning: the failure event was not delivered to {} of its {} channels; see the log",
            delivery.failed,
            delivery.failed + delivery.delivered
        ));
    }
}

/// Puts the readiness metrics; `false` (said on stderr) when some could not be put.
pub(crate) async fn publish_readiness(plan: &Plan, points: &[PointAge], cloud: &Cloud) -> bool {
    let data = metrics::readiness(plan, points, cloud.ports.clock.now());
    let published = metrics::publish(cloud.ports.metrics.as_ref(), &data).await;
    for e in &published.errors {
        output::error(&format!(
            "metrics were not put: {e}; allow cloudwatch:PutMetricData (`drover iam-policy PLAN --publish-metrics`)"
        ));
    }
    if published.errors.is_empty() {
        output::stderr(&format!(
            "put {} metric data in namespace {} ({} calls)",
            published.data,
            metrics::NAMESPACE,
            published.calls
        ));
    }
    published.errors.is_empty()
}
