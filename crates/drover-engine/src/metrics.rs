//! Metrics: readiness (`drover check --publish-metrics`) and runs' results as CloudWatch
//! metrics in the namespace [`NAMESPACE`], so that RPO age is on a dashboard with an alarm.
//!
//! Each target's metrics are put in that target's region: the region a recovery goes to is the
//! one whose dashboards must outlive the source's outage. Dimensions are `Plan`, `Target` and
//! (per table) `Table`; a run's add `Mode`. Calls are batched within PutMetricData's limits
//! ([`MAX_DATA_PER_CALL`], [`MAX_BYTES_PER_CALL`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use drover_plan::{Plan, StepKind};

use crate::ports::{CloudResult, Millis};
use crate::report::RunReport;

/// The namespace of drover's metrics.
pub const NAMESPACE: &str = "Drover";
/// PutMetricData takes at most 1,000 metric data per call.
pub const MAX_DATA_PER_CALL: usize = 1000;
/// PutMetricData takes at most 1 MB per request: batches stay under this estimate.
pub const MAX_BYTES_PER_CALL: usize = 900 * 1024;

/// Age of the newest completed recovery point of a table in a target vault (seconds).
pub const RECOVERY_POINT_AGE: &str = "RecoveryPointAgeSeconds";
/// The plan's RPO objective (seconds), beside the age, for an alarm on their difference.
pub const RPO_OBJECTIVE: &str = "RpoObjectiveSeconds";
/// 1 when a table has no completed recovery point in a target vault (per table), or how many
/// tables have none (per target).
pub const MISSING_RECOVERY_POINTS: &str = "MissingRecoveryPoints";
/// A run's recovery time in a target: from its start to the last validation there (seconds).
pub const RTO_ACHIEVED: &str = "RtoAchievedSeconds";
/// The plan's RTO objective (seconds).
pub const RTO_OBJECTIVE: &str = "RtoObjectiveSeconds";
/// A run's RPO achieved in a target: the oldest data restored there (seconds).
pub const RPO_ACHIEVED: &str = "RpoAchievedSeconds";
/// 1 when a run ended with every step in the target succeeded, else 0.
pub const RUN_SUCCEEDED: &str = "RunSucceeded";
/// How many tables of a run have a failed step in the target.
pub const FAILED_TABLES: &str = "FailedTables";

/// The unit of a datum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds.
    Seconds,
    /// A count.
    Count,
}

impl Unit {
    /// CloudWatch's name of the unit.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
        }
    }
}

/// One metric datum.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The metric's name.
    pub name: &'static str,
    /// Its dimensions, (name, value), in order.
    pub dimensions: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// When it was measured, ms since the epoch.
    pub timestamp: Millis,
}

impl Datum {
    /// An upper estimate of the datum's size in a request.
    fn size(&self) -> usize {
        64 + self.name.len()
            + self.dimensions.iter().map(|(k, v)| 16 + k.len() + v.len()).sum::<usize>()
    }
}

/// CloudWatch.
#[async_trait]
pub trait MetricService: Send + Sync {
    /// PutMetricData of `data` (at most [`MAX_DATA_PER_CALL`]) in `namespace` in `region`.
    async fn put_metric_data(
        &self,
        region: &str,
        namespace: &str,
        data: &[Datum],
    ) -> CloudResult<()>;
}

/// Data to put, by region.
pub type ByRegion = BTreeMap<String, Vec<Datum>>;

/// Splits data into calls within PutMetricData's limits, in order.
#[must_use]
pub fn batches(data: &[Datum]) -> Vec<&[Datum]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, d) in data.iter().enumerate() {
        let size = d.size();
        if i > start && (i - start == MAX_DATA_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            out.push(&data[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

/// What publishing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Data put.
    pub data: usize,
    /// PutMetricData calls that succeeded.
    pub calls: usize,
    /// Calls that failed, each with its region and error.
    pub errors: Vec<String>,
}

/// Puts `data` in [`NAMESPACE`], region by region, in batches; a throttled or passing fault is
/// retried three times, 1 s, 2 s and 4 s apart.
pub async fn publish(metrics: &dyn MetricService, data: &ByRegion) -> Published {
    let mut out = Published::default();
    for (region, data) in data {
        for batch in batches(data) {
            let mut wait = std::time::Duration::from_secs(1);
            let mut tries = 0;
            loop {
                match metrics.put_metric_data(region, NAMESPACE, batch).await {
                    Ok(()) => {
                        out.calls += 1;
                        out.data += batch.len();
                        break;
                    }
                    Err(e) if e.kind.is_retryable() && tries < 3 => {
                        tries += 1;
                        tracing::warn!(region, error = %e, "metrics not put yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => {
                        out.errors.push(format!("{region}: {e}"));
                        break;
                    }
                }
            }
        }
    }
    out
}

/// The newest completed recovery point of a table in a target vault, as `drover check` found
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointAge {
    /// The table.
    pub table: String,
    /// The target region.
    pub target: String,
    /// When the newest completed point was taken (`None`: there is none).
    pub newest_at: Option<Millis>,
}

#[allow(clippy::cast_precision_loss)]
fn seconds(ms: Millis) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// Readiness metrics at `now`: per table and target, the age of the newest recovery point
/// (when there is one), the RPO objective (when the plan sets one) and whether one is missing;
/// per target, the oldest of those ages and how many are missing.
#[must_use]
pub fn readiness(plan: &Plan, points: &[PointAge], now: Millis) -> ByRegion {
    let rpo = plan.objectives.rpo.map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX));
    let mut out = ByRegion::new();
    let datum =
        |name, dimensions, value, unit| Datum { name, dimensions, value, unit, timestamp: now };
    for p in points {
        let dims = vec![
            ("Plan", plan.name.clone()),
            ("Target", p.target.clone()),
            ("Table", p.table.clone()),
        ];
        let data = out.entry(p.target.clone()).or_default();
        if let Some(at) = p.newest_at {
            data.push(datum(RECOVERY_POINT_AGE, dims.clone(), seconds(now - at), Unit::Seconds));
        }
        if let Some(rpo) = rpo {
            data.push(datum(RPO_OBJECTIVE, dims.clone(), seconds(rpo), Unit::Seconds));
        }
        let missing = if p.newest_at.is_none() { 1.0 } else { 0.0 };
        data.push(datum(MISSING_RECOVERY_POINTS, dims, missing, Unit::Count));
    }
    for (target, data) in &mut out {
        let dims = vec![("Plan", plan.name.clone()), ("Target", target.clone())];
        let mine = points.iter().filter(|p| &p.target == target);
        let oldest = mine.clone().filter_map(|p| p.newest_at).min();
        #[allow(clippy::cast_precision_loss)]
        let missing = mine.filter(|p| p.newest_at.is_none()).count() as f64;
        if let Some(at) = oldest {
            data.push(datum(RECOVERY_POINT_AGE, dims.clone(), seconds(now - at), Unit::Seconds));
        }
        if let Some(rpo) = rpo {
            data.push(datum(RPO_OBJECTIVE, dims.clone(), seconds(rpo), Unit::Seconds));
        }
        data.push(datum(MISSING_RECOVERY_POINTS, dims, missing, Unit::Count));
    }
    out
}

/// A finished run's metrics, per target: RTO achieved (when every table there was validated)
/// and its objective, RPO achieved, whether the run succeeded there, and how many tables
/// failed there.
#[must_use]
pub fn run(report: &RunReport) -> ByRegion {
    let mut out = ByRegion::new();
    let mut targets: BTreeMap<&str, Vec<&crate::report::TableReport>> = BTreeMap::new();
    for t in &report.tables {
        targets.entry(t.target.as_str()).or_default().push(t);
    }
    let now = report.ended_at;
    for (target, tables) in targets {
        let dims = vec![
            ("Plan", report.plan.clone()),
            ("Mode", report.mode.as_str().to_owned()),
            ("Target", target.to_owned()),
        ];
        let datum = |name, value, unit| Datum {
            name,
            dimensions: dims.clone(),
            value,
            unit,
            timestamp: now,
        };
        let data = out.entry(target.to_owned()).or_default();
        let validated: Option<Vec<Millis>> = tables
            .iter()
            .map(|t| {
                t.steps
                    .iter()
                    .find(|s| s.step == StepKind::Validate && s.phase == "succeeded")
                    .and_then(|s| s.ended_at)
            })
            .collect();
        if let Some(end) = validated.and_then(|v| v.into_iter().max()) {
            data.push(datum(RTO_ACHIEVED, seconds(end - report.started_at), Unit::Seconds));
        }
        if let Some(rto) = report.rto_objective_ms {
            data.push(datum(RTO_OBJECTIVE, seconds(rto), Unit::Seconds));
        }
        if let Some(rpo) = tables.iter().filter_map(|t| t.rpo_achieved_ms).max() {
            data.push(datum(RPO_ACHIEVED, seconds(rpo), Unit::Seconds));
        }
        let failed = tables.iter().filter(|t| t.steps.iter().any(|s| s.phase == "failed")).count();
        let succeeded = report.outcome == "succeeded" && tables.iter().all(|t| t.ok);
        data.push(datum(RUN_SUCCEEDED, if succeeded { 1.0 } else { 0.0 }, Unit::Count));
        #[allow(clippy::cast_precision_loss)]
        data.push(datum(FAILED_TABLES, failed as f64, Unit::Count));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(name_len: usize) -> Datum {
        Datum {
            name: RECOVERY_POINT_AGE,
            dimensions: vec![("Table", "t".repeat(name_len))],
            value: 1.0,
            unit: Unit::Seconds,
            timestamp: 0,
        }
    }

    #[test]
    fn readiness_per_table_and_per_target() {
        let yaml = "version: 1\nname: p\nsource: {region: us-east-1, account_id: \"123456789012\", backup_vault: vv}\niam_role_arn: arn:aws:iam::123456789012:role/r\nobjectives: {rpo: 1h}\ntargets:\n  - {region: us-west-2, backup_vault: dr, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}\ntables:\n  - name: aaa\n  - name: bbb\n";
        let loaded = drover_plan::load("p.yaml", yaml.as_bytes());
        let plan = loaded.plan.unwrap_or_else(|| panic!("{:?}", loaded.diagnostics.items()));
        let now = 10_000_000;
        let points = [
            PointAge {
                table: "aaa".into(),
                target: "us-west-2".into(),
                newest_at: Some(now - 90_000),
            },
            PointAge { table: "bbb".into(), target: "us-west-2".into(), newest_at: None },
        ];
        let data = readiness(&plan, &points, now);
        let d = &data["us-west-2"];
        let find = |name: &str, table: Option<&str>| {
            d.iter()
                .find(|x| {
                    x.name == name
                        && x.dimensions.iter().find(|(k, _)| *k == "Table").map(|(_, v)| v.as_str())
                            == table
                })
                .map(|x| x.value)
        };
        assert_eq!(find(RECOVERY_POINT_AGE, Some("aaa")), Some(90.0));
        assert_eq!(find(RECOVERY_POINT_AGE, Some("bbb")), None);
        assert_eq!(find(MISSING_RECOVERY_POINTS, Some("aaa")), Some(0.0));
        assert_eq!(find(MISSING_RECOVERY_POINTS, Some("bbb")), Some(1.0));
        assert_eq!(find(RPO_OBJECTIVE, Some("bbb")), Some(3600.0));
        assert_eq!(find(RECOVERY_POINT_AGE, None), Some(90.0));
        assert_eq!(find(MISSING_RECOVERY_POINTS, None), Some(1.0));
        assert!(
            d.iter().all(|x| x.timestamp == now && x.dimensions[0] == ("Plan", "p".to_owned()))
        );
    }

    #[test]
    fn batches_keep_to_the_count_limit() {
        let data: Vec<Datum> = (0..2500).map(|_| datum(10)).collect();
        let sizes: Vec<usize> = batches(&data).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1000, 1000, 500]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn batches_keep_to_the_size_limit() {
        // 1,000 data of ~1.1 KB do not fit one request.
        let data: Vec<Datum> = (0..1000).map(|_| datum(1024)).collect();
        let b = batches(&data);
        assert!(b.len() >= 2, "{}", b.len());
        for batch in &b {
            assert!(batch.iter().map(Datum::size).sum::<usize>() <= MAX_BYTES_PER_CALL);
        }
        assert_eq!(b.iter().map(|x| x.len()).sum::<usize>(), 1000);
    }
}
