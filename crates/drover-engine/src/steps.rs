//! What each kind of step does. Every driver is written to be re-entered: after a crash it
//! runs again from the step's journaled phase and converges on the same result without
//! repeating an effect (jobs are re-attached by id or token; settings are compared before
//! they are changed).

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_plan::{Mode, StepKind, Table, Target};

use crate::context::{Shared, StepError, StepFailure, scope_of};
use crate::error::{EngineError, ErrorKind};
use crate::limits::Class;
use crate::ports::{
    BackupRequest, CopyRequest, Item, JobState, KeyType, RestoreRequest, ScanOptions, TableInfo,
    TableSettings, Value, VaultLock,
};
use crate::state::{Cut, CutPoint, Phase, RunEvent, StepEvent, StepKey, StepOutput};

/// Tag naming the plan that created a table.
pub const PLAN_TAG: &str = "drover:plan";
/// Tag naming the run that created a table; teardown deletes only tables that carry it.
pub const RUN_TAG: &str = "drover:run";
/// Tag naming the kind of run (`drill`, `backup`) that created a recovery point: `drover sweep`
/// deletes only drill points.
pub const MODE_TAG: &str = "drover:mode";
/// Attribute that marks a drill's marker item.
pub const MARKER_ATTRIBUTE: &str = "drover_marker";

type StepResult = Result<StepOutput, StepError>;

mod hooks;
mod pitr;

pub(crate) use hooks::after_run;

/// Drives one step from its journaled phase to a terminal phase.
pub(crate) async fn drive(shared: &Shared, key: &StepKey) -> Result<(), EngineError> {
    if matches!(shared.phase(key), Phase::Pending) {
        shared.record(key, StepEvent::Began).await?;
    }
    let result = match (key.kind, &key.target) {
        (StepKind::RecoveryPoint, None) => take_recovery_point(shared, key).await,
        (StepKind::RecoveryPoint, Some(r)) => pick_recovery_point(shared, key, r).await,
        (StepKind::Copy, Some(r)) => copy(shared, key, r).await,
        (StepKind::Restore, Some(r)) => restore(shared, key, r).await,
        (StepKind::Configure, Some(r)) => configure(shared, key, r).await,
        (StepKind::Validate, Some(r)) => validate(shared, key, r).await,
        (StepKind::Teardown, Some(r)) => teardown(shared, key, r).await,
        (StepKind::Hooks, Some(r)) => hooks::after_target(shared, key, r).await,
        (kind, None) => Err(StepFailure::new(format!(
            "internal error: {} step without a target",
            kind.as_str()
        ))
        .into()),
    };
    match result {
        Ok(output) => shared.record(key, StepEvent::Succeeded(output)).await,
        Err(StepError::Failed(f)) => {
            tracing::warn!(step = %key, error = %f.message, "step failed");
            shared.record(key, StepEvent::Failed { kind: f.kind, message: f.message }).await
        }
        Err(StepError::Engine(e)) => Err(e),
    }
}

fn table<'a>(shared: &'a Shared, key: &StepKey) -> Result<&'a Table, StepError> {
    shared
        .plan
        .table_by_name(&key.table)
        .map(|(_, t)| t)
        .ok_or_else(|| StepFailure::new(format!("table `{}` is not in the plan", key.table)).into())
}

fn target<'a>(shared: &'a Shared, region: &str) -> Result<&'a Target, StepError> {
    shared
        .plan
        .targets
        .iter()
        .find(|t| t.region.as_str() == region)
        .ok_or_else(|| StepFailure::new(format!("`{region}` is not a target of the plan")).into())
}

/// The name a table is restored under in `region`: its own on failover, the drill template's
/// in a drill, the recover's template (or its own) in a recover.
pub(crate) fn restored_name(shared: &Shared, table: &str, region: &str) -> String {
    crate::run::restored_name(
        &shared.plan,
        shared.mode(),
        shared.pitr.as_ref(),
        table,
        region,
        &shared.short_id,
    )
}

fn other(key: &StepKey, kind: StepKind, target: Option<&str>) -> StepKey {
    StepKey { table: key.table.clone(), target: target.map(str::to_owned), kind }
}

fn ownership_tags(shared: &Shared) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PLAN_TAG.to_owned(), shared.plan.name.clone()),
        (RUN_TAG.to_owned(), shared.run_id.clone()),
    ])
}

/// How a drill scans a production table: within its read budget (`--source-read-units`, else
/// the plan's `drill.source_reads`: a share of its provisioned read capacity, a fixed rate on
/// demand), so that the drill takes little of the application's capacity.
fn source_scan(shared: &Shared, info: &TableInfo) -> ScanOptions {
    let units = shared.settings.source_read_units.map_or_else(
        || shared.plan.drill.source_reads.units_per_second(info.read_capacity_units),
        f64::from,
    );
    ScanOptions {
        segments: shared.settings.scan_segments.max(1),
        read_units_per_second: Some(units),
        item_bytes: (info.item_count > 0).then(|| (info.size_bytes / info.item_count).max(1)),
    }
}

/// The tags of the recovery points a run creates: the plan, the run and its mode.
fn point_tags(shared: &Shared) -> BTreeMap<String, String> {
    let mut tags = ownership_tags(shared);
    tags.insert(MODE_TAG.to_owned(), shared.mode().as_str().to_owned());
    tags
}

/// When the step's current attempt began: any job it started was created after that.
fn attempt_began(shared: &Shared, key: &StepKey) -> Option<crate::ports::Millis> {
    shared.with_state(|s| s.steps.get(key).and_then(|s| s.began_at))
}

fn job_failed(what: &str, job_id: &str, status: &crate::ports::JobStatus) -> StepError {
    StepFailure {
        kind: None,
        message: format!(
            "{what} job {job_id} ended {}: {}",
            status.raw_state,
            status.message.as_deref().unwrap_or("no message from the service")
        ),
    }
    .into()
}

/// The marker item for this run, keyed for the table's key schema: a string key carries
/// `drover-marker#<run>`, a number key a number derived from the run id, a binary key the
/// bytes of the string form. The sort key, if any, is `drover-marker` in its type.
fn marker_item(shared: &Shared, info: &TableInfo) -> Item {
    let value = |kind: KeyType, text: String| match kind {
        KeyType::S => Value::S(text),
        // A number no application key is likely to use: 38 digits from the run id's hash.
        KeyType::N => Value::N(marker_number(&text)),
        KeyType::B => Value::B(text.into_bytes()),
    };
    let mut item = Item::new();
    item.insert(
        info.partition_key.name.clone(),
        value(info.partition_key.kind, format!("drover-marker#{}", shared.run_id)),
    );
    if let Some(sk) = &info.sort_key {
        item.insert(sk.name.clone(), value(sk.kind, "drover-marker".to_owned()));
    }
    item.insert(MARKER_ATTRIBUTE.to_owned(), Value::S(shared.run_id.clone()));
    item
}

/// A negative 38-digit number derived from `text` (DynamoDB keeps 38 significant digits).
fn marker_number(text: &str) -> String {
    use sha2::Digest as _;
    let h = sha2::Sha256::digest(text.as_bytes());
    let digits: String = h
        .iter()
        .flat_map(|b| [b / 16, b % 16])
        .map(|d| char::from(b'0' + d % 10))
        .take(37)
        .collect();
    format!("-9{digits}")
}

fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| k.as_str() != MARKER_ATTRIBUTE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn take_recovery_point(shared: &Shared, key: &StepKey) -> StepResult {
    let plan = &shared.plan;
    let ports = &shared.ports;
    let src = plan.source.region.to_string();
    let scope = scope_of(plan, key);
    let t = table(shared, key)?;
    let info = shared
        .call(key, &scope, || ports.tables.describe_table(&src, &t.name))
        .await?
        .ok_or_else(|| StepFailure {
            kind: Some(ErrorKind::NotFound),
            message: format!("source table `{}` does not exist in {src}", t.name),
        })?;
    // The marker and the source's digest just before the backup, by a fresh attempt only
    // (after a crash the job may already have taken its snapshot). A backup is not a point in
    // time: it holds every write committed a minute before it was requested, and may or may
    // not hold later ones, so the job starts only once the marker and the digest are older
    // than `backup_settle`.
    let fresh = matches!(shared.phase(key), Phase::Running);
    let marker = (plan.drill.write_marker && shared.mode() == Mode::Drill)
        .then(|| marker_item(shared, &info));
    let scan = source_scan(shared, &info);
    let mut before = None;
    if fresh {
        if let Some(item) = &marker {
            shared.call(key, &scope, || ports.tables.put_item(&src, &t.name, item)).await?;
        }
        // From when the marker is committed (its call returned, retries included) and the
        // digest's scan begins.
        let started = ports.clock.monotonic();
        // Only a drill validates against the source's digest.
        if t.validate.digest && shared.mode() == Mode::Drill {
            before = Some(
                shared
                    .call(key, &scope, || ports.tables.digest_items(&src, &t.name, &scan))
                    .await?,
            );
        }
        if marker.is_some() || before.is_some() {
            let waited = ports.clock.monotonic().saturating_sub(started);
            ports.clock.sleep(shared.settings.backup_settle.saturating_sub(waited)).await;
        }
    }
    let backup = Arc::clone(&ports.backup);
    let drill = shared.mode() == Mode::Drill;
    let request = BackupRequest {
        region: src.clone(),
        table_arn: info.arn.clone(),
        vault: plan.source.backup_vault.clone(),
        iam_role_arn: plan.iam_role_arn.clone(),
        idempotency_token: String::new(),
        requested_after: attempt_began(shared, key),
        start_window_minutes: Some(plan.backup_jobs.start_window_minutes()),
        complete_window_minutes: Some(plan.backup_jobs.complete_window_minutes()),
        delete_after_days: drill.then_some(plan.drill.recovery_point_retention_days),
        tags: point_tags(shared),
    };
    let job_id = shared
        .job(key, &scope, |token| {
            let backup = Arc::clone(&backup);
            let request = BackupRequest { idempotency_token: token, ..request.clone() };
            async move { backup.start_backup_job(&request).await }
        })
        .await?;
    let status =
        shared.poll_job(key, &scope, || ports.backup.describe_backup_job(&src, &job_id)).await?;
    if status.state != JobState::Completed {
        return Err(job_failed("backup", &job_id, &status));
    }
    let arn = status.recovery_point_arn.clone().ok_or_else(|| {
        StepFailure::new(format!("backup job {job_id} completed without a recovery point ARN"))
    })?;
    let source_digest = match before {
        Some(before) => {
            let after = shared
                .call(key, &scope, || ports.tables.digest_items(&src, &t.name, &scan))
                .await?;
            Some(Box::new((before, after)))
        }
        None => None,
    };
    Ok(StepOutput::RecoveryPoint {
        arn,
        vault: plan.source.backup_vault.clone(),
        created_at: status.created_at.unwrap_or_else(|| ports.clock.now()),
        size_bytes: Some(info.size_bytes),
        marker,
        schema: Some(Box::new(info.schema())),
        source_digest,
    })
}

/// Chooses a failover's consistent cut in `region`, once: every table's newest completed
/// point at or before the newest time at which every table has one (or at or before the time
/// asked for). Recorded in the journal before any table of the target is restored.
pub(crate) async fn choose_cut(shared: &Shared, region: &str) -> Result<(), EngineError> {
    if shared.with_state(|s| s.cuts.contains_key(region)) {
        return Ok(());
    }
    let plan = &shared.plan;
    let Some(target) = plan.targets.iter().find(|t| t.region.as_str() == region) else {
        return Ok(());
    };
    let src = plan.source.region.to_string();
    let requested = shared.with_state(|s| s.header.options.cut_at);
    let mut newest: BTreeMap<String, Vec<crate::ports::RecoveryPoint>> = BTreeMap::new();
    let mut missing = BTreeMap::new();
    for id in plan.tables_in(&target.region) {
        let name = plan.table(id).name.clone();
        let key = StepKey {
            table: name.clone(),
            target: Some(region.to_owned()),
            kind: StepKind::RecoveryPoint,
        };
        let scope = scope_of(plan, &key);
        match shared
            .call(&key, &scope, || {
                shared.ports.backup.list_recovery_points(region, &target.backup_vault, &src, &name)
            })
            .await
        {
            Ok(points) => {
                let points: Vec<_> =
                    points.into_iter().filter(crate::ports::RecoveryPoint::is_completed).collect();
                if points.is_empty() {
                    missing.insert(
                        name,
                        format!(
                            "no completed recovery point in vault `{}` ({region})",
                            target.backup_vault
                        ),
                    );
                } else {
                    newest.insert(name, points);
                }
            }
            Err(e) => {
                missing.insert(name, e.to_string());
            }
        }
    }
    let time = requested.unwrap_or_else(|| {
        newest.values().filter_map(|ps| ps.iter().map(|p| p.created_at).max()).min().unwrap_or(0)
    });
    let mut points = BTreeMap::new();
    let mut late = std::collections::BTreeSet::new();
    for (name, ps) in newest {
        let before = ps.iter().filter(|p| p.created_at <= time).max_by_key(|p| p.created_at);
        let chosen = match before {
            Some(p) => p,
            None if requested.is_some() => {
                missing.insert(
                    name,
                    format!("no recovery point at or before {}", crate::run::format_time(time)),
                );
                continue;
            }
            None => {
                late.insert(name.clone());
                match ps.iter().min_by_key(|p| p.created_at) {
                    Some(p) => p,
                    None => continue,
                }
            }
        };
        points.insert(
            name,
            CutPoint {
                arn: chosen.arn.clone(),
                created_at: chosen.created_at,
                size_bytes: chosen.size_bytes,
            },
        );
    }
    let cut = Cut {
        target: region.to_owned(),
        time,
        requested: requested.is_some(),
        points,
        missing,
        late,
        chosen_at: shared.ports.clock.now(),
    };
    tracing::info!(target = region, at = %crate::run::format_time(time), skew_ms = cut.skew(), "consistent cut chosen");
    shared.record_run(RunEvent::Cut(cut)).await
}

async fn pick_recovery_point(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let plan = &shared.plan;
    let cut = shared.with_state(|s| s.cuts.get(region).cloned());
    let Some(cut) = cut else {
        return Err(StepFailure::new(format!("internal error: no cut chosen for {region}")).into());
    };
    if let Some(why) = cut.missing.get(&key.table) {
        return Err(StepFailure {
            kind: Some(ErrorKind::NotFound),
            message: format!("`{}`: {why}", key.table),
        }
        .into());
    }
    let Some(point) = cut.points.get(&key.table) else {
        return Err(StepFailure::new(format!(
            "internal error: `{}` is not in the cut for {region}",
            key.table
        ))
        .into());
    };
    let age_ms = (cut.chosen_at - point.created_at).max(0);
    if let Some(rpo) = plan.objectives.rpo {
        let age = std::time::Duration::from_millis(u64::try_from(age_ms).unwrap_or(0));
        if age > rpo && !cut.requested {
            return Err(StepFailure::new(format!(
                "the consistent recovery point of `{}` in {region} is {} old, beyond the RPO of {}",
                key.table,
                drover_plan::format_duration(age),
                drover_plan::format_duration(rpo)
            ))
            .into());
        }
    }
    let vault = target(shared, region)?.backup_vault.clone();
    Ok(StepOutput::RecoveryPoint {
        arn: point.arn.clone(),
        vault,
        created_at: point.created_at,
        size_bytes: point.size_bytes,
        marker: None,
        schema: None,
        source_digest: None,
    })
}

async fn copy(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let plan = &shared.plan;
    let ports = &shared.ports;
    let scope = scope_of(plan, key);
    let target = target(shared, region)?;
    let src = plan.source.region.to_string();
    let rp_key = other(key, StepKind::RecoveryPoint, None);
    let Some(StepOutput::RecoveryPoint { arn: point, .. }) =
        shared.with_state(|s| s.output(&rp_key).cloned())
    else {
        return Err(StepFailure::new(format!("internal error: no recovery point for {key}")).into());
    };
    let vault = shared
        .call(key, &scope, || ports.backup.describe_vault(region, &target.backup_vault))
        .await?;
    let requested =
        (shared.mode() == Mode::Drill).then_some(plan.drill.recovery_point_retention_days);
    let delete_after_days = copy_retention(requested, vault.lock.as_ref());
    if delete_after_days != requested {
        tracing::info!(step = %key, vault = %target.backup_vault, days = ?delete_after_days, "the destination vault is locked: the copy is kept as long as its lock requires");
    }
    let backup = Arc::clone(&ports.backup);
    let request = CopyRequest {
        region: src.clone(),
        recovery_point_arn: point,
        source_vault: plan.source.backup_vault.clone(),
        destination_vault_arn: vault.arn.clone(),
        iam_role_arn: plan.iam_role_arn.clone(),
        idempotency_token: String::new(),
        requested_after: attempt_began(shared, key),
        delete_after_days,
    };
    let job_id = shared
        .job(key, &scope, |token| {
            let backup = Arc::clone(&backup);
            let request = CopyRequest { idempotency_token: token, ..request.clone() };
            async move { backup.start_copy_job(&request).await }
        })
        .await?;
    let status =
        shared.poll_job(key, &scope, || ports.backup.describe_copy_job(&src, &job_id)).await?;
    if status.state != JobState::Completed {
        return Err(job_failed("copy", &job_id, &status));
    }
    let arn = status.recovery_point_arn.clone().ok_or_else(|| {
        StepFailure::new(format!(
            "copy job {job_id} completed without a destination recovery point ARN"
        ))
    })?;
    Ok(StepOutput::Copy { arn, locked: vault.lock, delete_after_days })
}

/// How long a copy into a vault with `lock` is kept, for a `requested` retention (`None`: as
/// long as the source point): within the lock's minimum and maximum retention, since AWS
/// Backup fails a copy job into a locked vault whose lifecycle is outside them.
fn copy_retention(requested: Option<u32>, lock: Option<&VaultLock>) -> Option<u32> {
    let Some(lock) = lock else { return requested };
    match requested {
        Some(days) => {
            let days = lock.min_retention_days.map_or(days, |min| days.max(min));
            Some(lock.max_retention_days.map_or(days, |max| days.min(max)))
        }
        None => lock.max_retention_days,
    }
}

/// Polls DescribeTable alone (one call per poll) until the table exists and is ready:
/// ACTIVE, no restore in progress, every index ACTIVE. A restored table may be ACTIVE while
/// its restore is still in progress or its indexes are still being created.
async fn wait_ready(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    name: &str,
) -> Result<TableInfo, StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let poll = shared.settings.poll;
    let mut wait = poll.initial;
    let mut last = None;
    for _ in 0..poll.table_polls {
        match shared.call(key, &scope, || shared.ports.tables.describe_table(region, name)).await? {
            Some(info) if info.is_ready() => return Ok(info),
            Some(info) => last = Some(info.status),
            None => last = None,
        }
        shared.ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
    Err(StepFailure::new(match last {
        Some(status) => {
            format!("table `{name}` in {region} is still {status}, not ready; resume waits again")
        }
        None => format!("table `{name}` in {region} did not appear; resume waits again"),
    })
    .into())
}

/// Polls DescribeTable until the table is gone (a deleted table stays DELETING for a while).
async fn wait_gone(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    name: &str,
) -> Result<(), StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let poll = shared.settings.poll;
    let mut wait = poll.initial;
    for _ in 0..poll.table_polls {
        if shared
            .call(key, &scope, || shared.ports.tables.describe_table(region, name))
            .await?
            .is_none()
        {
            return Ok(());
        }
        shared.ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
    Err(StepFailure::new(format!(
        "`{name}` in {region} was not deleted in time; resume waits again"
    ))
    .into())
}

/// The settings a restore drops, as in effect now: the stream and deletion protection from
/// `info` (DescribeTable), PITR and TTL from their own reads.
async fn settings_of(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    info: &TableInfo,
) -> Result<TableSettings, StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let tables = &shared.ports.tables;
    let pitr =
        shared.call(key, &scope, || tables.point_in_time_recovery(region, &info.name)).await?;
    let ttl = shared.call(key, &scope, || tables.time_to_live(region, &info.name)).await?;
    Ok(TableSettings {
        point_in_time_recovery: pitr,
        ttl_attribute: ttl.enabled_attribute().map(str::to_owned),
        stream: info.stream.clone(),
        deletion_protection: info.deletion_protection,
    })
}

/// What a table has in effect: its settings and its tags.
struct InEffect {
    info: TableInfo,
    settings: TableSettings,
    tags: BTreeMap<String, String>,
}

/// Reads what is in effect until the plan's settings and `tags` all are, or until
/// `PollPolicy::settle` has passed: tags are applied asynchronously (TagResource: "DynamoDB
/// might return your previous tag set ... Wait for a few seconds"), and reads right after a
/// change are eventually consistent. Returns the last read and what is still not in effect.
async fn settled(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    name: &str,
    t: &Table,
    tags: &BTreeMap<String, String>,
) -> Result<(InEffect, Vec<String>), StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let poll = shared.settings.poll;
    let started = shared.ports.clock.monotonic();
    let mut wait = poll.initial;
    loop {
        let info = wait_ready(shared, key, region, name).await?;
        let settings = settings_of(shared, key, region, &info).await?;
        let have =
            shared.call(key, &scope, || shared.ports.tables.list_tags(region, &info.arn)).await?;
        let now = InEffect { info, settings, tags: have };
        let wrong = not_in_effect(t, &now, tags);
        if wrong.is_empty() || shared.ports.clock.monotonic().saturating_sub(started) >= poll.settle
        {
            return Ok((now, wrong));
        }
        tracing::debug!(step = %key, missing = %wrong.join(", "), "not in effect yet; reading again");
        shared.ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
}

/// Reads a table's tags until `want` are all there or `PollPolicy::settle` has passed (tags
/// are applied asynchronously). Whether they all are.
async fn has_tags(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    arn: &str,
    want: &BTreeMap<String, String>,
) -> Result<bool, StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    let poll = shared.settings.poll;
    let started = shared.ports.clock.monotonic();
    let mut wait = poll.initial;
    loop {
        let have = shared.call(key, &scope, || shared.ports.tables.list_tags(region, arn)).await?;
        if want.iter().all(|(k, v)| have.get(k) == Some(v)) {
            return Ok(true);
        }
        if shared.ports.clock.monotonic().saturating_sub(started) >= poll.settle {
            return Ok(false);
        }
        shared.ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
}

async fn restore(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    if let Some(pitr) = &shared.pitr {
        return pitr::restore(shared, key, region, pitr).await;
    }
    let plan = &shared.plan;
    let ports = &shared.ports;
    let scope = scope_of(plan, key);
    let target = target(shared, region)?;
    let name = restored_name(shared, &key.table, region);
    let source = match shared.mode() {
        Mode::Drill | Mode::Backup => other(key, StepKind::Copy, Some(region)),
        Mode::Failover | Mode::Recover => other(key, StepKind::RecoveryPoint, Some(region)),
    };
    let point = match shared.with_state(|s| s.output(&source).cloned()) {
        Some(StepOutput::Copy { arn, .. } | StepOutput::RecoveryPoint { arn, .. }) => arn,
        _ => {
            return Err(
                StepFailure::new(format!("internal error: no recovery point for {key}")).into()
            );
        }
    };
    let step = shared.with_state(|s| s.steps.get(key).cloned().unwrap_or_default());
    if matches!(step.phase, Phase::Running) {
        // A fresh attempt: the name must be free, unless an earlier attempt of this very
        // step created the table: its job is in the journal, and the table carries our tag or
        // is the one that job reports it created (an attempt that failed before tagging).
        let mut existing =
            shared.call(key, &scope, || ports.tables.describe_table(region, &name)).await?;
        if existing.as_ref().is_some_and(|e| e.status == "DELETING") {
            // A name being deleted cannot be restored into: wait until it is free.
            wait_gone(shared, key, region, &name).await?;
            existing = None;
        }
        if let Some(existing) = existing {
            let mut ours = false;
            if !step.job_ids.is_empty() {
                let tags = shared
                    .call(key, &scope, || ports.tables.list_tags(region, &existing.arn))
                    .await?;
                ours = tags.get(RUN_TAG) == Some(&shared.run_id);
            }
            if !ours && let Some(job_id) = step.job_ids.last() {
                let status = shared
                    .call(key, &scope, || ports.backup.describe_restore_job(region, job_id))
                    .await?;
                ours = status.state == JobState::Completed
                    && status.created_resource_arn.as_deref() == Some(existing.arn.as_str());
            }
            if !ours {
                return Err(StepFailure {
                    kind: Some(ErrorKind::AlreadyExists),
                    message: format!(
                        "table `{name}` already exists in {region}; drover never overwrites a table"
                    ),
                }
                .into());
            }
            return finish_restore(shared, key, region, &name).await;
        }
    }
    let backup = Arc::clone(&ports.backup);
    let request = RestoreRequest {
        region: region.to_owned(),
        recovery_point_arn: point,
        table_name: name.clone(),
        kms_key_arn: target.kms_key_arn.clone(),
        iam_role_arn: plan.restore_role(target).to_owned(),
        idempotency_token: String::new(),
        requested_after: attempt_began(shared, key),
    };
    let job_id = shared
        .job(key, &scope, |token| {
            let backup = Arc::clone(&backup);
            let request = RestoreRequest { idempotency_token: token, ..request.clone() };
            async move { backup.start_restore_job(&request).await }
        })
        .await?;
    let status =
        shared.poll_job(key, &scope, || ports.backup.describe_restore_job(region, &job_id)).await?;
    if status.state != JobState::Completed {
        return Err(job_failed("restore", &job_id, &status));
    }
    finish_restore(shared, key, region, &name).await
}

/// Waits for the restored table, then tags it as this run's before anything else happens to
/// it, so that teardown can prove ownership.
async fn finish_restore(shared: &Shared, key: &StepKey, region: &str, name: &str) -> StepResult {
    let info = wait_ready(shared, key, region, name).await?;
    let scope = (region.to_owned(), Class::TableOps);
    let tags = ownership_tags(shared);
    let have =
        shared.call(key, &scope, || shared.ports.tables.list_tags(region, &info.arn)).await?;
    if tags.iter().any(|(k, v)| have.get(k) != Some(v)) {
        shared
            .call(key, &scope, || shared.ports.tables.tag_table(region, &info.arn, &tags))
            .await?;
    }
    Ok(StepOutput::Restore { table_name: name.to_owned(), table_arn: info.arn, pitr: None })
}

async fn configure(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let ports = &shared.ports;
    let t = table(shared, key)?;
    let name = restored_name(shared, &key.table, region);
    let scope = scope_of(&shared.plan, key);
    let info = wait_ready(shared, key, region, &name).await?;
    let have = settings_of(shared, key, region, &info).await?;
    let mut applied = Vec::new();
    if have.point_in_time_recovery != t.point_in_time_recovery {
        // Right after a table is created or restored, UpdateContinuousBackups may answer
        // ContinuousBackupsUnavailableException ("Backups are being enabled"): a passing
        // fault, retried by `call`.
        shared
            .call(key, &scope, || {
                ports.tables.set_point_in_time_recovery(region, &name, t.point_in_time_recovery)
            })
            .await?;
        applied.push(format!("point-in-time recovery {}", on_off(t.point_in_time_recovery)));
    }
    if let Some(attr) = &t.ttl_attribute
        && have.ttl_attribute.as_ref() != Some(attr)
    {
        if let Some(other) = &have.ttl_attribute {
            // Changing the attribute means disabling TTL first, and DynamoDB refuses a second
            // TTL change within an hour: that is a decision for a person.
            return Err(StepFailure::new(format!(
                "`{name}` has TTL on `{other}`, the plan says `{attr}`: disable TTL on the table (DynamoDB allows one TTL change per hour), then resume"
            ))
            .into());
        }
        shared.call(key, &scope, || ports.tables.enable_ttl(region, &name, attr)).await?;
        applied.push(format!("TTL on `{attr}`"));
    }
    if let Some(view) = t.stream
        && have.stream.as_deref() != Some(view.as_str())
    {
        if have.stream.is_some() {
            // A stream cannot be re-enabled with another view type (ValidationException):
            // disable it, wait for the update to finish, then enable it.
            shared.call(key, &scope, || ports.tables.set_stream(region, &name, None)).await?;
            wait_ready(shared, key, region, &name).await?;
        }
        shared
            .call(key, &scope, || ports.tables.set_stream(region, &name, Some(view.as_str())))
            .await?;
        // UpdateTable leaves the table UPDATING; the next update would be refused.
        wait_ready(shared, key, region, &name).await?;
        applied.push(format!("stream {}", view.as_str()));
    }
    if have.deletion_protection != t.deletion_protection {
        shared
            .call(key, &scope, || {
                ports.tables.set_deletion_protection(region, &name, t.deletion_protection)
            })
            .await?;
        wait_ready(shared, key, region, &name).await?;
        applied.push(format!("deletion protection {}", on_off(t.deletion_protection)));
    }
    let tags = wanted_tags(shared, t);
    let have_tags = shared.call(key, &scope, || ports.tables.list_tags(region, &info.arn)).await?;
    let missing: BTreeMap<String, String> = tags
        .iter()
        .filter(|(k, v)| have_tags.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !missing.is_empty() {
        shared.call(key, &scope, || ports.tables.tag_table(region, &info.arn, &missing)).await?;
        applied.push(format!("{} tag{}", missing.len(), if missing.len() == 1 { "" } else { "s" }));
    }
    // Read back: what is in effect, not what was asked for (given time to settle).
    let (_, wrong) = settled(shared, key, region, &name, t, &tags).await?;
    if !wrong.is_empty() {
        return Err(StepFailure::new(format!(
            "not in effect {}s after configuring `{name}`: {}",
            shared.settings.poll.settle.as_secs(),
            wrong.join(", ")
        ))
        .into());
    }
    Ok(StepOutput::Configure { applied })
}

/// The tags a restored table must carry: the plan's and drover's ownership tags.
fn wanted_tags(shared: &Shared, t: &Table) -> BTreeMap<String, String> {
    let mut tags = t.tags.clone();
    tags.extend(ownership_tags(shared));
    tags
}

/// The plan's settings (and `tags`) that a table does not have in effect.
fn not_in_effect(t: &Table, now: &InEffect, tags: &BTreeMap<String, String>) -> Vec<String> {
    let mut wrong = Vec::new();
    let have = &now.settings;
    if have.point_in_time_recovery != t.point_in_time_recovery {
        wrong.push("point-in-time recovery".to_owned());
    }
    if t.ttl_attribute.is_some() && have.ttl_attribute != t.ttl_attribute {
        wrong.push("TTL".to_owned());
    }
    if t.stream.is_some() && have.stream.as_deref() != t.stream.map(|v| v.as_str()) {
        wrong.push("stream".to_owned());
    }
    if have.deletion_protection != t.deletion_protection {
        wrong.push("deletion protection".to_owned());
    }
    if let Some((k, _)) = tags.iter().find(|(k, v)| now.tags.get(*k) != Some(v)) {
        wrong.push(format!("tag `{k}`"));
    }
    wrong
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Validation in tiers, every result recorded: structure (status, key schema and indexes as
/// at backup time, the target's key, settings in effect), counts, content (canaries, the
/// drill marker), and the opt-in digest.
async fn validate(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let ports = &shared.ports;
    let t = table(shared, key)?;
    let name = restored_name(shared, &key.table, region);
    let scope = scope_of(&shared.plan, key);
    let pitr = match shared
        .with_state(|s| s.output(&other(key, StepKind::Restore, Some(region))).cloned())
    {
        Some(StepOutput::Restore { pitr: Some(p), .. }) => Some(*p),
        _ => None,
    };
    // The key the table must be encrypted with: the target's, or the source table's when a
    // point-in-time restore put it beside the source.
    let want_key = match &pitr {
        Some(p) => p.kms_key_arn.clone(),
        None => Some(target(shared, region)?.kms_key_arn.clone()),
    };
    let rp_key = match shared.mode() {
        Mode::Failover => other(key, StepKind::RecoveryPoint, Some(region)),
        _ => other(key, StepKind::RecoveryPoint, None),
    };
    let (schema, marker, source_digest, point_arn) =
        match shared.with_state(|s| s.output(&rp_key).cloned()) {
            Some(StepOutput::RecoveryPoint { schema, marker, source_digest, arn, .. }) => {
                (schema.clone(), marker.clone(), source_digest.as_deref().copied(), arn.clone())
            }
            _ => (pitr.as_ref().map(|p| Box::new(p.schema.clone())), None, None, String::new()),
        };
    let tags = wanted_tags(shared, t);
    let (now, wrong) = settled(shared, key, region, &name, t, &tags).await?;
    let info = now.info;
    let mut checks =
        vec![format!("structure: `{name}` is ACTIVE, no restore in progress, every index ACTIVE")];
    let mut problems = Vec::new();

    // 1. Structure.
    let at = if pitr.is_some() { "the source's" } else { "at backup time" };
    match &schema {
        Some(schema) if **schema == info.schema() => checks.push(format!(
            "structure: key schema and {} index(es) as {at}",
            schema.global_indexes.len() + schema.local_indexes.len()
        )),
        Some(schema) => problems.push(format!(
            "key schema or indexes differ from {}: {schema:?} vs {:?}",
            if pitr.is_some() { "the source's" } else { "the backup's" },
            info.schema()
        )),
        None => checks.push(
            "structure: key schema not compared (the source is not read during a failover)"
                .to_owned(),
        ),
    }
    let whose = if pitr.is_some() && region == shared.plan.source.region.as_str() {
        "the source table's"
    } else {
        "the target's"
    };
    if info.kms_key_arn == want_key {
        checks.push(match &want_key {
            Some(_) => format!("structure: encrypted with {whose} KMS key"),
            None => format!("structure: encrypted as {whose}, with an AWS-owned key"),
        });
    } else {
        problems.push(format!(
            "encrypted with {} instead of {whose} key {}",
            info.kms_key_arn.as_deref().unwrap_or("an AWS-owned key"),
            want_key.as_deref().unwrap_or("(AWS-owned)")
        ));
    }
    if let Some(p) = &pitr {
        if pitr::restored_from(&info, p) {
            checks.push(format!(
                "content: restored from `{}` as it was at {} (RestoreSummary)",
                p.source_table_arn,
                crate::run::format_time(p.restore_time)
            ));
        } else {
            problems.push(format!(
                "its RestoreSummary does not name `{}` at {}",
                p.source_table_arn,
                crate::run::format_time(p.restore_time)
            ));
        }
    }
    if wrong.is_empty() {
        checks.push("structure: the plan's settings and tags are in effect".to_owned());
    } else {
        problems.push(format!("not in effect: {}", wrong.join(", ")));
    }

    // 2. Counts.
    // Restored tables belong to the run: scanned as fast as the segments go.
    let segments = shared.settings.scan_segments.max(1);
    let scan = ScanOptions::unpaced(segments);
    // With a digest to take, its scan counts the items too: one scan of the table, not two.
    let restored_digest = if t.validate.digest {
        Some(shared.call(key, &scope, || ports.tables.digest_items(region, &name, &scan)).await?)
    } else {
        None
    };
    let count = match restored_digest {
        Some(d) => d.items,
        None => shared.call(key, &scope, || ports.tables.count_items(region, &name, &scan)).await?,
    };
    checks.push(format!("count: {count} items (parallel scan, {segments} segments)"));
    if let Some(min) = t.validate.min_items {
        if count < min {
            problems.push(format!("{count} items, fewer than the {min} required"));
        } else {
            checks.push(format!("count: at least the {min} required"));
        }
    }
    let unchanged =
        source_digest.filter(|(before, after)| before == after).map(|(before, _)| before);
    if let Some(before) = unchanged {
        if count == before.items {
            checks.push(format!("count: equal to the recovery point's {} items", before.items));
        } else {
            problems.push(format!("{count} items, but the recovery point holds {}", before.items));
        }
    }

    // 3. Content.
    for canary in &t.validate.canary_keys {
        let found =
            shared.call(key, &scope, || ports.tables.get_item(region, &name, canary)).await?;
        if found.is_some() {
            checks.push(format!("content: canary {} present", show_key(canary)));
        } else {
            problems.push(format!("canary item {} is missing", show_key(canary)));
        }
    }
    if let Some(marker) = marker {
        let k = key_of(&marker);
        let found = shared.call(key, &scope, || ports.tables.get_item(region, &name, &k)).await?;
        if found.is_some_and(|item| {
            item.get(MARKER_ATTRIBUTE) == Some(&Value::S(shared.run_id.clone()))
        }) {
            checks.push(
                "content: drill marker present (backup -> copy -> restore proven)".to_owned(),
            );
        } else {
            problems.push("the drill marker written before the backup is missing".to_owned());
        }
    }

    // 4. Digest.
    let mut digest = None;
    if let Some(restored) = restored_digest {
        let state = shared.state();
        digest = Some(restored);
        match (source_digest, unchanged) {
            (_, Some(before)) if before == restored => {
                checks.push(format!("digest: {} equals the source's, taken just before the backup", restored.to_hex()));
            }
            (_, Some(before)) => problems.push(format!(
                "digest {} differs from the source's {} taken just before the backup (the source did not change during it)",
                restored.to_hex(),
                before.to_hex()
            )),
            (Some(_), None) => checks.push(format!(
                "digest: {} (the source changed during the backup: compared across targets only)",
                restored.to_hex()
            )),
            (None, None) => checks.push(format!("digest: {} (no source digest: compared across targets only)", restored.to_hex())),
        }
        // Every target restored from the same recovery point must hold the same items.
        for (other_key, step) in &state.steps {
            let same_table = other_key.table == key.table
                && other_key.kind == StepKind::Validate
                && other_key.target != key.target;
            let Phase::Succeeded { output: StepOutput::Validate { digest: Some(theirs), .. } } =
                &step.phase
            else {
                continue;
            };
            if !same_table
                || !same_point(
                    &state,
                    shared.mode(),
                    &key.table,
                    other_key.target.as_deref(),
                    &point_arn,
                )
            {
                continue;
            }
            let there = other_key.target.as_deref().unwrap_or_default();
            if *theirs == restored {
                checks.push(format!("digest: equal to {there}'s"));
            } else {
                problems.push(format!(
                    "digest {} differs from {there}'s {}",
                    restored.to_hex(),
                    theirs.to_hex()
                ));
            }
        }
    }
    if problems.is_empty() {
        // The plan's own checks, once drover's pass.
        checks.extend(hooks::run_for_step(shared, key, region, &t.validate.hooks).await?);
        Ok(StepOutput::Validate { checks, digest })
    } else {
        Err(StepFailure::new(format!("validation of `{name}` failed: {}", problems.join("; ")))
            .into())
    }
}

/// Whether `table` in `target` was restored from the same recovery point as the one `point`
/// names: in a drill every target restores a copy of the one source point; in a failover
/// copies of one backup keep its creation time.
fn same_point(
    state: &crate::state::RunState,
    mode: Mode,
    table: &str,
    target: Option<&str>,
    point: &str,
) -> bool {
    if mode != Mode::Failover {
        return true;
    }
    let rp = |t: Option<&str>| match state.output(&StepKey {
        table: table.to_owned(),
        target: t.map(str::to_owned),
        kind: StepKind::RecoveryPoint,
    }) {
        Some(StepOutput::RecoveryPoint { created_at, .. }) => Some(*created_at),
        _ => None,
    };
    let mine = state.steps.iter().find_map(|(k, s)| match &s.phase {
        Phase::Succeeded { output: StepOutput::RecoveryPoint { arn, created_at, .. } }
            if k.table == table && arn == point =>
        {
            Some(*created_at)
        }
        _ => None,
    });
    mine.is_some() && mine == rp(target)
}

fn show_key(key: &Item) -> String {
    let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

async fn teardown(shared: &Shared, key: &StepKey, region: &str) -> StepResult {
    let (deleted, note) = teardown_table(shared, key, region).await?;
    let (points_deleted, points_kept) = teardown_copy(shared, key, region).await?;
    Ok(StepOutput::Teardown { deleted, note, points_deleted, points_kept })
}

/// Deletes the drill's table in `region`, if this run restored it and it carries the run's tag.
async fn teardown_table(
    shared: &Shared,
    key: &StepKey,
    region: &str,
) -> Result<(bool, String), StepError> {
    let ports = &shared.ports;
    let scope = scope_of(&shared.plan, key);
    let name = restored_name(shared, &key.table, region);
    let restore_key = other(key, StepKind::Restore, Some(region));
    let requested =
        shared.with_state(|s| s.steps.get(&restore_key).is_some_and(|s| s.jobs_requested > 0));
    let Some(info) =
        shared.call(key, &scope, || ports.tables.describe_table(region, &name)).await?
    else {
        let note =
            if requested { format!("`{name}` is gone") } else { "nothing was restored".to_owned() };
        return Ok((false, note));
    };
    if !requested {
        return Ok((false, format!("kept `{name}`: this run did not restore it")));
    }
    // A previous process may have deleted it already: a DELETING table has no tags to read,
    // and only needs waiting for.
    if info.status != "DELETING" {
        let ownership = BTreeMap::from([(RUN_TAG.to_owned(), shared.run_id.clone())]);
        if !has_tags(shared, key, region, &info.arn, &ownership).await? {
            return Ok((
                false,
                format!("kept `{name}`: it lacks the ownership tag {RUN_TAG}={}", shared.run_id),
            ));
        }
        let info = wait_ready(shared, key, region, &name).await?;
        if info.deletion_protection {
            shared
                .call(key, &scope, || ports.tables.set_deletion_protection(region, &name, false))
                .await?;
            wait_ready(shared, key, region, &name).await?;
        }
        shared.call(key, &scope, || ports.tables.delete_table(region, &name)).await?;
    }
    wait_gone(shared, key, region, &name).await?;
    Ok((true, format!("deleted `{name}`")))
}

/// Deletes the drill's copy in the target's vault once nothing of this run can need it: its
/// restore succeeded (a failed or blocked restore is retried by `resume`, from that copy; the
/// copy's lifecycle deletes it if nobody resumes). A copy in a locked vault is kept without
/// asking (AWS Backup Vault Lock refuses every deletion): its lifecycle deletes it. Returns the
/// points deleted and those kept, with why.
async fn teardown_copy(
    shared: &Shared,
    key: &StepKey,
    region: &str,
) -> Result<(Vec<String>, BTreeMap<String, String>), StepError> {
    let copy_key = other(key, StepKind::Copy, Some(region));
    let restore_key = other(key, StepKind::Restore, Some(region));
    let (copy, restored) = shared.with_state(|s| {
        let copy = match s.output(&copy_key) {
            Some(StepOutput::Copy { arn, locked, delete_after_days }) => {
                Some((arn.clone(), locked.is_some(), *delete_after_days))
            }
            _ => None,
        };
        (copy, matches!(s.phase(&restore_key), Phase::Succeeded { .. }))
    });
    let (Some((arn, locked, days)), true) = (copy, restored) else {
        return Ok((Vec::new(), BTreeMap::new()));
    };
    let vault = target(shared, region)?.backup_vault.clone();
    let expires = days.map_or_else(
        || "its lifecycle deletes it".to_owned(),
        |d| format!("its lifecycle deletes it {d} days after the backup"),
    );
    if locked {
        let why = format!("vault `{vault}` is locked (AWS Backup Vault Lock): {expires}");
        tracing::info!(step = %key, point = %arn, reason = %why, "kept the drill's copy");
        return Ok((Vec::new(), BTreeMap::from([(arn, why)])));
    }
    match delete_point(shared, key, region, &vault, &arn).await? {
        Ok(()) => Ok((vec![arn], BTreeMap::new())),
        Err(why) => {
            tracing::warn!(step = %key, point = %arn, reason = %why, "kept the drill's copy; its lifecycle deletes it");
            Ok((Vec::new(), BTreeMap::from([(arn, format!("{why}; {expires}"))])))
        }
    }
}

/// Deletes a recovery point: `Ok(Ok(()))` when it is gone (or already was), `Ok(Err(why))`
/// when the service keeps it (a locked vault, a refusal): the point's lifecycle deletes it.
async fn delete_point(
    shared: &Shared,
    key: &StepKey,
    region: &str,
    vault: &str,
    arn: &str,
) -> Result<Result<(), String>, StepError> {
    let scope = (region.to_owned(), Class::TableOps);
    match shared
        .call(key, &scope, || shared.ports.backup.delete_recovery_point(region, vault, arn))
        .await
    {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(Ok(())),
        Err(e) if e.kind.is_retryable() => Err(StepError::Failed(e.into())),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Deletes the drill's recovery points in the source vault (once the drill is over), each
/// once every copy of it succeeded (a failed copy is retried by `resume`, from that point);
/// points kept are listed with why, and their lifecycle deletes them.
pub(crate) async fn delete_source_points(shared: &Shared) -> Result<(), EngineError> {
    let state = shared.state();
    if state.source_points.is_some() {
        return Ok(());
    }
    let src = shared.plan.source.region.to_string();
    let vault = shared.plan.source.backup_vault.clone();
    let mut deleted = Vec::new();
    let mut kept = BTreeMap::new();
    // Tables with a copy that did not succeed (one pass over the steps).
    let copies_failed: std::collections::BTreeSet<&str> = state
        .steps
        .iter()
        .filter(|(k, s)| k.kind == StepKind::Copy && !matches!(s.phase, Phase::Succeeded { .. }))
        .map(|(k, _)| k.table.as_str())
        .collect();
    for (key, step) in &state.steps {
        let Phase::Succeeded { output: StepOutput::RecoveryPoint { arn, .. } } = &step.phase else {
            continue;
        };
        if key.kind != StepKind::RecoveryPoint || key.target.is_some() {
            continue;
        }
        if copies_failed.contains(key.table.as_str()) {
            kept.insert(arn.clone(), "a copy of it did not succeed: resume retries it".to_owned());
            continue;
        }
        match delete_point(shared, key, &src, &vault, arn).await {
            Ok(Ok(())) => deleted.push(arn.clone()),
            Ok(Err(why)) => {
                kept.insert(arn.clone(), why);
            }
            Err(StepError::Failed(f)) => {
                tracing::warn!(point = %arn, error = %f.message, "could not delete the drill's recovery point; resume retries");
                return Ok(());
            }
            Err(StepError::Engine(e)) => return Err(e),
        }
    }
    if !deleted.is_empty() || !kept.is_empty() {
        shared.record_run(RunEvent::SourcePointsDeleted { deleted, kept }).await?;
    }
    Ok(())
}

/// Removes the drill's marker items from the source tables (once the drill is over).
pub(crate) async fn remove_markers(shared: &Shared) -> Result<(), EngineError> {
    let state = shared.state();
    if state.markers_removed {
        return Ok(());
    }
    let src = shared.plan.source.region.to_string();
    let mut any = false;
    for (key, step) in &state.steps {
        let Phase::Succeeded { output: StepOutput::RecoveryPoint { marker: Some(marker), .. } } =
            &step.phase
        else {
            continue;
        };
        any = true;
        let scope = (src.clone(), Class::TableOps);
        let item_key = key_of(marker);
        if let Err(e) = shared
            .call(key, &scope, || shared.ports.tables.delete_item(&src, &key.table, &item_key))
            .await
        {
            tracing::warn!(table = %key.table, error = %e, "could not remove the drill marker; resume retries");
            return Ok(());
        }
    }
    if any {
        shared.record_run(RunEvent::MarkersRemoved).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_into_a_locked_vault_are_kept_within_its_lock() {
        let lock = |min, max| VaultLock { min_retention_days: min, max_retention_days: max };
        assert_eq!(copy_retention(Some(1), None), Some(1));
        assert_eq!(copy_retention(None, None), None);
        assert_eq!(copy_retention(Some(1), Some(&lock(Some(7), None))), Some(7), "the minimum");
        assert_eq!(copy_retention(Some(10), Some(&lock(Some(7), Some(30)))), Some(10));
        assert_eq!(copy_retention(Some(90), Some(&lock(None, Some(30)))), Some(30), "the maximum");
        assert_eq!(copy_retention(None, Some(&lock(Some(7), Some(30)))), Some(30));
        assert_eq!(copy_retention(None, Some(&lock(Some(7), None))), None, "kept for ever");
    }
}
