//! DynamoDB point-in-time recovery, as the emulator models it (`tests/emulator/pitr.py`): while
//! PITR is on, a table keeps the history of its item writes (when, the item's storage key, the
//! explicit item it replaced); its items at an instant `T` of the restorable window are its
//! current items with every later write undone, newest first. Disabling PITR drops the
//! history; enabling it again starts a new one (and the window starts again).
//! RestoreTableToPointInTime ([`World::restore_to_point_in_time`]) checks what the emulator
//! checks, in its order, and creates the table at once, CREATING for as long as the
//! [`DurationModel`](crate::DurationModel) says a point-in-time restore takes (at least 20
//! minutes on AWS), then settling as any restored table ([`crate::Realism::restore_settle_ms`]).
//!
//! Sources: \[BC-d\] is botocore's `dynamodb/2012-08-10` `service-2.json`.

use std::collections::BTreeMap;

use drover_engine::ErrorKind;
use drover_engine::ports::{
    CloudResult, ContinuousBackups, Item, Millis, PointInTimeRestore, RestoreSummary, TableSettings,
};
use serde::{Deserialize, Serialize};

use crate::err;
use crate::items::{ITEM_BYTES, Items};
use crate::model::JobKind;
use crate::realism::{Status, TableRealism};
use crate::world::{SimTable, World};

/// A day, in milliseconds.
pub(crate) const DAY_MS: Millis = 86_400_000;

/// DynamoDB's default (and largest) recovery period (`RecoveryPeriodInDays`).
pub(crate) const RECOVERY_PERIOD_DAYS: u32 = 35;

/// The emulator's messages (`pitr.py`), which follow \[BC-d\]'s errors of
/// RestoreTableToPointInTime.
const MSG_INVALID_TIME: &str =
    "RestoreDateTime must be between EarliestRestorableDateTime and LatestRestorableDateTime.";
const MSG_LIMIT: &str =
    "Too many concurrent restores for this account in this Region. Try again later.";

/// One item write kept for point-in-time recovery: when, the item's storage key, and the
/// explicit item it replaced (`None`: there was none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PitrWrite {
    at: Millis,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<Item>,
}

/// A table's point-in-time recovery while it is on: since when, for how many days back, and
/// the writes of that period, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PitrState {
    /// When PITR was enabled (the window never starts before).
    pub(crate) enabled_at: Millis,
    /// `RecoveryPeriodInDays`.
    #[serde(default = "default_period")]
    pub(crate) period_days: u32,
    /// The item writes of the recovery period, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    writes: Vec<PitrWrite>,
}

fn default_period() -> u32 {
    RECOVERY_PERIOD_DAYS
}

impl PitrState {
    /// PITR enabled at `at`, with the default recovery period and no writes yet.
    pub(crate) fn enabled(at: Millis) -> PitrState {
        PitrState { enabled_at: at, period_days: RECOVERY_PERIOD_DAYS, writes: Vec::new() }
    }

    fn period_ms(&self) -> Millis {
        Millis::from(self.period_days).saturating_mul(DAY_MS)
    }

    /// Notes a write at `now` to the item stored under `key`, which was `before`; forgets the
    /// writes older than the recovery period (never undone again). Amortised O(1): only the
    /// oldest writes are looked at.
    pub(crate) fn wrote(&mut self, key: String, before: Option<Item>, now: Millis) {
        self.writes.push(PitrWrite { at: now, key, before });
        let oldest = now.saturating_sub(self.period_ms());
        let old = self.writes.iter().take_while(|w| w.at < oldest).count();
        if old > 0 {
            self.writes.drain(..old);
        }
    }

    /// `(EarliestRestorableDateTime, LatestRestorableDateTime)` at `now`: the earliest is the
    /// later of the enabling and the start of the recovery period, the latest `lag` before now
    /// but never before the earliest.
    pub(crate) fn window(&self, now: Millis, lag: Millis) -> (Millis, Millis) {
        let earliest = self.enabled_at.max(now.saturating_sub(self.period_ms()));
        (earliest, earliest.max(now.saturating_sub(lag)))
    }

    /// `items` (a table's current ones) as they were at `at`: every write made after it
    /// undone, newest first. Costs the writes after `at`, not the table.
    pub(crate) fn items_at(&self, items: &Items, at: Millis) -> Items {
        let mut out = items.clone();
        for w in self.writes.iter().rev().take_while(|w| w.at > at) {
            match &w.before {
                Some(item) => out.explicit.insert(w.key.clone(), item.clone()),
                None => out.explicit.remove(&w.key),
            };
        }
        out
    }
}

/// Whether `name` is a valid table name for a restore target (3 to 255 of `[a-zA-Z0-9_.-]`).
fn valid_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `arn:aws:dynamodb:<region>:<account>:table/<name>` as (region, account, name).
fn parse_table_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:dynamodb:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, rest) = rest.split_once(':')?;
    let name = rest.strip_prefix("table/")?;
    let region_ok = !region.is_empty()
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    (region_ok && account_ok && valid_name(name)).then_some((region, account, name))
}

fn ms(v: u64) -> Millis {
    Millis::try_from(v).unwrap_or(Millis::MAX)
}

impl World {
    /// A table's PITR state, made (enabled now) for a table whose PITR is on without one (a
    /// world saved before the simulator kept it: the history starts now, as the emulator's
    /// does for an older state file).
    fn pitr_of(t: &mut SimTable, now: Millis) -> Option<&PitrState> {
        if !t.settings.point_in_time_recovery {
            t.pitr = None;
            return None;
        }
        Some(t.pitr.get_or_insert_with(|| PitrState::enabled(now)))
    }

    /// DescribeContinuousBackups of a table at `now`.
    pub(crate) fn continuous_backups(
        &mut self,
        op: &str,
        region: &str,
        name: &str,
        now: Millis,
    ) -> CloudResult<ContinuousBackups> {
        let lag = ms(self.realism.pitr_latest_lag_ms);
        let t = self.table(op, region, name)?;
        Ok(match World::pitr_of(t, now) {
            Some(p) => {
                let (earliest, latest) = p.window(now, lag);
                ContinuousBackups {
                    enabled: true,
                    earliest: Some(earliest),
                    latest: Some(latest),
                    recovery_period_days: Some(p.period_days),
                }
            }
            None => ContinuousBackups::default(),
        })
    }

    /// Point-in-time restores in `region` still in progress at `now` (their table not
    /// settled yet): what they share of the restore quota with restore jobs. Costs the
    /// restores in progress, not the world.
    pub(crate) fn pitr_restores_in_progress(&mut self, region: &str, now: Millis) -> usize {
        while self.pitr_restoring.first().is_some_and(|(at, _, _)| *at <= now) {
            self.pitr_restoring.pop_first();
        }
        self.pitr_restoring
            .iter()
            .filter(|(at, r, name)| {
                r == region
                    && self
                        .regions
                        .get(r)
                        .and_then(|rs| rs.tables.get(name))
                        .is_some_and(|t| t.realism.settled_at() == Some(*at))
            })
            .count()
    }

    /// RestoreTableToPointInTime, called in `req.region` at `now`: the checks of the
    /// emulator's `pitr.py`, in its order, then the new table (CREATING); returns its ARN.
    pub(crate) fn restore_to_point_in_time(
        &mut self,
        op: &str,
        req: &PointInTimeRestore,
        now: Millis,
    ) -> CloudResult<String> {
        let region = req.region.as_str();
        let target = req.table_name.as_str();
        // 1. Parameters (ValidationException).
        if !valid_name(target) {
            return Err(err(
                ErrorKind::Fatal,
                op,
                "ValidationException: TargetTableName must be 3-255 characters of [a-zA-Z0-9_.-].",
            ));
        }
        let Some((src_region, src_account, src_name)) = parse_table_arn(&req.source_table_arn)
        else {
            return Err(err(
                ErrorKind::Fatal,
                op,
                format!("ValidationException: Invalid SourceTableArn: {}", req.source_table_arn),
            ));
        };
        if src_region != region && req.kms_key_arn.is_none() {
            return Err(err(
                ErrorKind::Fatal,
                op,
                format!(
                    "ValidationException: SSESpecificationOverride is mandatory for cross-Region \
                     restores (the source table is in {src_region}, the restore is called in \
                     {region})."
                ),
            ));
        }
        // 2. The source, within the calling account only.
        let account = self.account_of(region).to_owned();
        let not_found = || {
            err(
                ErrorKind::NotFound,
                op,
                format!("TableNotFoundException: Table not found: {}", req.source_table_arn),
            )
        };
        if src_account != account || self.account_of(src_region) != src_account {
            return Err(not_found());
        }
        let source = self
            .regions
            .get(src_region)
            .and_then(|r| r.tables.get(src_name))
            .map(|t| (t.settings.point_in_time_recovery, t.arn.clone()))
            .ok_or_else(not_found)?;
        // 3. The target's name.
        if let Some(existing) = self.regions.get(region).and_then(|r| r.tables.get(target)) {
            return Err(match existing.status(now) {
                Status::Creating | Status::Deleting => {
                    if existing.deleting_until.is_some() {
                        self.saw("delete_ms");
                    }
                    err(
                        ErrorKind::InvalidState,
                        op,
                        format!("TableInUseException: Table is being created or deleted: {target}"),
                    )
                }
                _ => err(
                    ErrorKind::AlreadyExists,
                    op,
                    format!("TableAlreadyExistsException: Table already exists: {target}"),
                ),
            });
        }
        // 4. PITR on, and the instant in its window.
        let (pitr_on, source_arn) = source;
        if !pitr_on {
            return Err(err(
                ErrorKind::InvalidState,
                op,
                format!(
                    "PointInTimeRecoveryUnavailableException: Point in time recovery is not \
                     enabled for table '{src_name}'"
                ),
            ));
        }
        let lag = ms(self.realism.pitr_latest_lag_ms);
        let Some(t) = self.regions.get_mut(src_region).and_then(|r| r.tables.get_mut(src_name))
        else {
            return Err(not_found());
        };
        let (earliest, latest) = match World::pitr_of(t, now) {
            Some(p) => p.window(now, lag),
            None => return Err(not_found()),
        };
        if !(earliest..=latest).contains(&req.restore_time) {
            if req.restore_time > now.saturating_sub(lag) && req.restore_time <= now {
                self.saw("pitr_latest_lag_ms");
            }
            return Err(err(
                ErrorKind::InvalidState,
                op,
                format!("InvalidRestoreTimeException: {MSG_INVALID_TIME}"),
            ));
        }
        // 5. The restore quota, shared with restore jobs.
        let jobs = self
            .unfinished_jobs()
            .filter(|j| j.kind == JobKind::Restore && j.region == region)
            .count();
        let in_progress = jobs + self.pitr_restores_in_progress(region, now);
        let limit = self.realism.max_restores as usize;
        if limit > 0 && in_progress >= limit {
            self.saw("max_restores");
            return Err(err(
                ErrorKind::Throttled,
                op,
                format!("LimitExceededException: {MSG_LIMIT}"),
            ));
        }
        if !self.regions.contains_key(region) {
            return Err(err(
                ErrorKind::Transient,
                op,
                format!("could not connect to the endpoint for region {region}"),
            ));
        }
        // The new table: the source's current schema, its items as at the instant, the given
        // key (or the source's), nothing else of its settings.
        let Some(src) = self.regions.get(src_region).and_then(|r| r.tables.get(src_name)) else {
            return Err(not_found());
        };
        let items = match &src.pitr {
            Some(p) => p.items_at(&src.items, req.restore_time),
            None => src.items.clone(),
        };
        let schema = src.schema.clone();
        // `Faults::restore_with_key` overrides the key as it does for restore jobs.
        let kms_key_arn = self
            .faults
            .restore_with_key
            .clone()
            .or_else(|| req.kms_key_arn.clone())
            .or_else(|| src.kms_key_arn.clone());
        let bytes = items.count(&schema).saturating_mul(ITEM_BYTES);
        let done = now.saturating_add(self.pitr_duration(bytes));
        let realism = TableRealism::restoring_until(&self.realism, now, done);
        let settled = realism.settled_at();
        let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{target}");
        let table = SimTable {
            name: target.to_owned(),
            arn: arn.clone(),
            schema,
            kms_key_arn,
            settings: TableSettings::default(),
            tags: BTreeMap::new(),
            items,
            busy_until: None,
            deleting_until: None,
            realism,
            created_at: Some(now),
            pitr: None,
            restored_from: Some(RestoreSummary {
                source_table_arn: Some(source_arn),
                source_backup_arn: None,
                restore_time: req.restore_time,
            }),
        };
        self.regions.entry(region.to_owned()).or_default().tables.insert(target.to_owned(), table);
        if let Some(at) = settled.filter(|at| *at > now) {
            self.pitr_restoring.insert((at, region.to_owned(), target.to_owned()));
        }
        *self.tables_restored.or_insert_with(format!("{region}/{target}"), || 0) += 1;
        Ok(arn)
    }

    /// How long a point-in-time restore of `bytes` takes: the model's expectation, with seeded
    /// noise (a draw only when the model has noise).
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss, clippy::cast_sign_loss)]
    fn pitr_duration(&mut self, bytes: u64) -> Millis {
        let base = self.model.pitr_restore_ms(bytes) as f64;
        if self.model.noise == 0.0 {
            return base as Millis;
        }
        let noise = self.model.noise * (2.0 * self.rng.unit() - 1.0);
        (base * (1.0 + noise)).max(0.0) as Millis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_arns_parse_as_the_emulator_matches_them() {
        assert_eq!(
            parse_table_arn("arn:aws:dynamodb:us-east-1:123456789012:table/orders"),
            Some(("us-east-1", "123456789012", "orders"))
        );
        assert_eq!(parse_table_arn("arn:aws:dynamodb:us-east-1:1234:table/orders"), None);
        assert_eq!(parse_table_arn("arn:aws:dynamodb:us-east-1:123456789012:table/ab"), None);
        assert_eq!(parse_table_arn("orders"), None);
    }

    #[test]
    fn the_window_starts_at_the_enabling_and_lags_now() {
        let p = PitrState::enabled(1_000_000);
        assert_eq!(p.window(1_000_000, 300_000), (1_000_000, 1_000_000), "never before earliest");
        assert_eq!(p.window(2_000_000, 300_000), (1_000_000, 1_700_000));
        let later = 1_000_000 + 40 * DAY_MS;
        assert_eq!(p.window(later, 0), (later - 35 * DAY_MS, later), "the recovery period");
    }
}
