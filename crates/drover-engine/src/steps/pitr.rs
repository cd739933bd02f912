//! A restore from point-in-time recovery (`drover recover`, `drover drill --pitr`).
//!
//! RestoreTableToPointInTime has no client token. The step journals `job-requested` before it
//! calls it; a step that may have called it (in this attempt before a crash, or in an earlier
//! one) and finds its table name taken re-attaches when the table's `RestoreSummary` names the
//! same source table and the same instant and the table carries no other run's ownership tag,
//! so a table is never restored twice. A name taken by anything else fails the step, as a
//! restore from a backup does.

use std::time::Duration;

use super::{StepResult, finish_restore, restored_name, target, wait_gone};
use crate::context::{Shared, StepError, StepFailure, scope_of};
use crate::error::ErrorKind;
use crate::limits::Class;
use crate::ports::{PointInTimeRestore, TableInfo};
use crate::run::format_time;
use crate::state::{Phase, Pitr, PitrRestored, StepEvent, StepKey, StepOutput};
use crate::steps::RUN_TAG;

/// How long a point-in-time restore may take before the step fails (and `resume` waits
/// again): AWS gives no bound; "at least 20 minutes", hours for large tables.
const RESTORE_DEADLINE: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn restore(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    pitr: &Pitr,
) -> StepResult {
    let ports = &shared.ports;
    let scope = scope_of(&shared.plan, key);
    let src = shared.plan.source.region.to_string();
    let name = restored_name(shared, &key.table, region);
    // The source as it is now: its ARN, and the schema and encryption a point-in-time restore
    // takes from its current settings.
    let src_scope = (src.clone(), Class::TableOps);
    let Some(source) =
        shared.call(key, &src_scope, || ports.tables.describe_table(&src, &key.table)).await?
    else {
        return Err(StepFailure {
            kind: Some(ErrorKind::NotFound),
            message: format!(
                "source table `{}` does not exist in {src}; point-in-time recovery restores existing tables only, and a deleted table can be restored only from its `{}$DeletedTableBackup` system backup (RestoreTableFromBackup)",
                key.table, key.table
            ),
        }
        .into());
    };
    let into_source = region == src;
    // Beside the source, the restore keeps the source's encryption; across regions the
    // override is mandatory: the target's key.
    let (override_key, expected_key) = if into_source {
        (None, source.kms_key_arn.clone())
    } else {
        let k = target(shared, region)?.kms_key_arn.clone();
        (Some(k.clone()), Some(k))
    };
    let restored = PitrRestored {
        source_table_arn: source.arn.clone(),
        restore_time: pitr.at,
        schema: source.schema(),
        kms_key_arn: expected_key,
        size_bytes: Some(source.size_bytes),
    };
    let step = shared.with_state(|s| s.steps.get(key).cloned().unwrap_or_default());
    let may_have_restored = step.jobs_requested > 0;

    let mut existing =
        shared.call(key, &scope, || ports.tables.describe_table(region, &name)).await?;
    if existing.as_ref().is_some_and(|e| e.status == "DELETING") {
        wait_gone(shared, key, region, &name).await?;
        existing = None;
    }
    if let Some(existing) = existing {
        if may_have_restored && restored_from(&existing, &restored) {
            return attach(shared, key, region, &name, restored).await;
        }
        return Err(taken(&name, region));
    }
    if matches!(step.phase, Phase::Attached { .. }) {
        // The service accepted the restore: the table is on its way (reads are eventually
        // consistent), never restored again.
        return attach(shared, key, region, &name, restored).await;
    }
    if !matches!(step.phase, Phase::Requested { .. }) {
        // Durable before the call: after a crash, resume knows it may have restored.
        let token = format!("pitr-{}-{}", shared.run_id, step.attempt);
        shared.record(key, StepEvent::JobRequested { token }).await?;
    }
    let request = PointInTimeRestore {
        region: region.to_owned(),
        source_table_arn: source.arn.clone(),
        table_name: name.clone(),
        restore_time: pitr.at,
        kms_key_arn: override_key,
    };
    let arn = match shared
        .call(key, &scope, || ports.tables.restore_to_point_in_time(&request))
        .await
    {
        Ok(arn) => arn,
        Err(e) => {
            // A call whose answer was lost (a timeout, retried) may have created the table: the
            // retry is then answered TableAlreadyExists, or TableInUse while it is CREATING.
            let lost = matches!(e.kind, ErrorKind::AlreadyExists | ErrorKind::InvalidState);
            let existing = if lost {
                shared.call(key, &scope, || ports.tables.describe_table(region, &name)).await?
            } else {
                None
            };
            match existing {
                Some(t) if restored_from(&t, &restored) => t.arn,
                Some(_) => return Err(taken(&name, region)),
                // The table the first call created may not be seen yet (reads are eventually
                // consistent): wait for it, within `unseen_grace`.
                None if e.kind == ErrorKind::AlreadyExists || is_in_use(&e) => {
                    return attach(shared, key, region, &name, restored).await;
                }
                None => {
                    return Err(StepFailure {
                        kind: Some(e.kind),
                        message: format!(
                            "point-in-time restore of `{}` to {} into `{name}` in {region} failed: {e}; {}",
                            key.table,
                            format_time(pitr.at),
                            fix_for(e.kind)
                        ),
                    }
                    .into());
                }
            }
        }
    };
    shared.record(key, StepEvent::JobStarted { job_id: arn }).await?;
    attach(shared, key, region, &name, restored).await
}

/// Whether the service answered that the name is in use (TableInUseException: a table of
/// that name is being created or deleted).
fn is_in_use(e: &crate::CloudError) -> bool {
    e.kind == ErrorKind::InvalidState && e.message.contains("TableInUse")
}

/// What to do about a failed RestoreTableToPointInTime, by its kind.
fn fix_for(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidState => {
            "check that point-in-time recovery is on and the instant is inside the source table's restorable window (`drover check PLAN --pitr`), then resume or recover to another instant"
        }
        ErrorKind::NotFound => "check the source table's name and region in the plan",
        ErrorKind::AccessDenied => {
            "grant dynamodb:RestoreTableToPointInTime and the item actions on the new table (`drover iam-policy`)"
        }
        _ => "resume retries it",
    }
}

fn taken(name: &str, region: &str) -> StepError {
    StepFailure {
        kind: Some(ErrorKind::AlreadyExists),
        message: format!(
            "table `{name}` already exists in {region} and is not this run's restore; drover never overwrites a table: choose other names (--name-template) or delete it, then resume"
        ),
    }
    .into()
}

/// Whether `t` is a point-in-time restore of `want`'s source to `want`'s instant (to the
/// second: the service may keep the instant to the second).
pub(super) fn restored_from(t: &TableInfo, want: &PitrRestored) -> bool {
    t.restored_from.as_ref().is_some_and(|r| {
        r.source_table_arn.as_deref() == Some(want.source_table_arn.as_str())
            && r.restore_time.div_euclid(1000) == want.restore_time.div_euclid(1000)
    })
}

/// Waits for the restored table, refuses it when another run owns it, then tags it as this
/// run's (`finish_restore`).
async fn attach(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    name: &str,
    restored: PitrRestored,
) -> StepResult {
    let info = wait_restored(shared, key, region, name).await?;
    if !restored_from(&info, &restored) {
        return Err(taken(name, region));
    }
    let scope = (region.to_owned(), Class::TableOps);
    let tags =
        shared.call(key, &scope, || shared.ports.tables.list_tags(region, &info.arn)).await?;
    if tags.get(RUN_TAG).is_some_and(|run| run != &shared.run_id) {
        return Err(taken(name, region));
    }
    match finish_restore(shared, key, region, name).await? {
        StepOutput::Restore { table_name, table_arn, .. } => {
            Ok(StepOutput::Restore { table_name, table_arn, pitr: Some(Box::new(restored)) })
        }
        other => Ok(other),
    }
}

/// Polls DescribeTable until the restored table is ready. A point-in-time restore takes at
/// least 20 minutes and has no job to poll; a table not seen yet (reads just after the call are
/// eventually consistent) is asked for again during `unseen_grace`.
async fn wait_restored(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    name: &str,
) -> Result<TableInfo, StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let poll = shared.settings.poll;
    let clock = &shared.ports.clock;
    let started = clock.monotonic();
    let mut wait = poll.initial;
    let mut logged = Duration::ZERO;
    loop {
        let info =
            shared.call(key, &scope, || shared.ports.tables.describe_table(region, name)).await?;
        let waited = clock.monotonic().saturating_sub(started);
        match info {
            Some(info) if info.is_ready() => return Ok(info),
            Some(info) if waited >= RESTORE_DEADLINE => {
                return Err(StepFailure::new(format!(
                    "`{name}` in {region} is still {} after {}h; resume waits again",
                    info.status,
                    waited.as_secs() / 3600
                ))
                .into());
            }
            None if waited >= poll.unseen_grace => {
                return Err(StepFailure::new(format!(
                    "the point-in-time restore into `{name}` in {region} was accepted, but the table did not appear within {}s; resume waits again",
                    poll.unseen_grace.as_secs()
                ))
                .into());
            }
            Some(info) if waited.saturating_sub(logged) >= Duration::from_secs(600) => {
                logged = waited;
                tracing::debug!(step = %key, table = %name, status = %info.status, waited_s = waited.as_secs(), "point-in-time restore still in progress (it takes at least 20 minutes)");
            }
            _ => {}
        }
        clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
}
