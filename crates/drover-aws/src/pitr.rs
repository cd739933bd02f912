//! DynamoDB point-in-time recovery: a table's restorable window (DescribeContinuousBackups)
//! and restores to an instant into a new table (RestoreTableToPointInTime), also into another
//! region, where the call is made.
//!
//! A cross-region restore must name the source by `SourceTableArn` and must override the new
//! table's encryption (`SSESpecificationOverride`: "mandatory for cross-Region restores",
//! DynamoDB Developer Guide, PointInTimeRecovery.Tutorial); the engine then gives the target's
//! key. The instant is sent to the millisecond (`RestoreDateTime` is a timestamp; DynamoDB
//! restores to the second).

use aws_sdk_dynamodb::types::{
    PointInTimeRecoveryDescription, RestoreSummary as DdbRestoreSummary, SseSpecification, SseType,
};
use aws_smithy_types::DateTime;
use drover_engine::ports::{
    CloudResult, ContinuousBackups, Millis, PointInTimeRestore, RestoreSummary,
};

use crate::AwsCloud;
use crate::errors::{self, missing};

impl AwsCloud {
    /// DescribeContinuousBackups of `name` in `region`.
    pub(crate) async fn describe_continuous_backups(
        &self,
        region: &str,
        name: &str,
    ) -> CloudResult<ContinuousBackups> {
        const OP: &str = "DescribeContinuousBackups";
        let out = self
            .clients(region)
            .await
            .dynamodb
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        Ok(continuous_backups(
            out.continuous_backups_description()
                .and_then(|d| d.point_in_time_recovery_description()),
        ))
    }

    /// RestoreTableToPointInTime in `req.region`: the new table's ARN.
    pub(crate) async fn restore_table_to_point_in_time(
        &self,
        req: &PointInTimeRestore,
    ) -> CloudResult<String> {
        const OP: &str = "RestoreTableToPointInTime";
        let sse = req.kms_key_arn.as_ref().map(|key| {
            SseSpecification::builder()
                .enabled(true)
                .sse_type(SseType::Kms)
                .kms_master_key_id(key)
                .build()
        });
        let out = self
            .clients(&req.region)
            .await
            .dynamodb
            .restore_table_to_point_in_time()
            .source_table_arn(&req.source_table_arn)
            .target_table_name(&req.table_name)
            .restore_date_time(DateTime::from_millis(req.restore_time))
            .set_sse_specification_override(sse)
            .send()
            .await
            .map_err(|e| errors::map(OP, &e))?;
        out.table_description()
            .and_then(|t| t.table_arn())
            .map(str::to_owned)
            .ok_or_else(|| missing(OP, "TableDescription.TableArn"))
    }
}

/// A `PointInTimeRecoveryDescription` (absent: disabled) as the engine's
/// [`ContinuousBackups`]; the window only while enabled.
fn continuous_backups(d: Option<&PointInTimeRecoveryDescription>) -> ContinuousBackups {
    let Some(d) = d else {
        return ContinuousBackups::default();
    };
    let enabled = d.point_in_time_recovery_status().is_some_and(|s| s.as_str() == "ENABLED");
    let when = |t: Option<&DateTime>| t.filter(|_| enabled).and_then(|t| t.to_millis().ok());
    ContinuousBackups {
        enabled,
        earliest: when(d.earliest_restorable_date_time()),
        latest: when(d.latest_restorable_date_time()),
        recovery_period_days: d.recovery_period_in_days().and_then(|n| u32::try_from(n).ok()),
    }
}

/// DescribeTable's `RestoreSummary` as the engine's; `None` when its instant cannot be read.
pub(crate) fn restore_summary(r: &DdbRestoreSummary) -> Option<RestoreSummary> {
    let restore_time: Millis = r.restore_date_time().to_millis().ok()?;
    Some(RestoreSummary {
        source_table_arn: r.source_table_arn().map(str::to_owned),
        source_backup_arn: r.source_backup_arn().map(str::to_owned),
        restore_time,
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::PointInTimeRecoveryStatus;

    use super::*;

    #[test]
    fn the_window_is_read_only_while_enabled() {
        let on = PointInTimeRecoveryDescription::builder()
            .point_in_time_recovery_status(PointInTimeRecoveryStatus::Enabled)
            .earliest_restorable_date_time(DateTime::from_millis(1_000_123))
            .latest_restorable_date_time(DateTime::from_millis(2_000_456))
            .recovery_period_in_days(35)
            .build();
        assert_eq!(
            continuous_backups(Some(&on)),
            ContinuousBackups {
                enabled: true,
                earliest: Some(1_000_123),
                latest: Some(2_000_456),
                recovery_period_days: Some(35),
            }
        );
        let off = PointInTimeRecoveryDescription::builder()
            .point_in_time_recovery_status(PointInTimeRecoveryStatus::Disabled)
            .earliest_restorable_date_time(DateTime::from_millis(1_000))
            .build();
        let off = continuous_backups(Some(&off));
        assert!(!off.enabled && off.earliest.is_none() && off.latest.is_none(), "{off:?}");
        assert_eq!(continuous_backups(None), ContinuousBackups::default());
    }

    #[test]
    fn a_restore_summary_keeps_its_sources_and_the_instant_to_the_millisecond() {
        let r = DdbRestoreSummary::builder()
            .source_table_arn("arn:aws:dynamodb:us-east-1:123456789012:table/orders")
            .restore_date_time(DateTime::from_millis(1_764_000_000_123))
            .restore_in_progress(false)
            .build()
            .unwrap();
        assert_eq!(
            restore_summary(&r),
            Some(RestoreSummary {
                source_table_arn: Some(
                    "arn:aws:dynamodb:us-east-1:123456789012:table/orders".to_owned()
                ),
                source_backup_arn: None,
                restore_time: 1_764_000_000_123,
            })
        );
    }
}
