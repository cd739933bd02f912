//! What AWS Backup jobs do: start (idempotency tokens, a duration from the model with seeded
//! noise, a doom decided by the faults, the restore quota, a wait for the job's resource or in
//! the copy queue as the realism layer says), finish in completion order as time advances (a
//! backup adds its recovery point, a copy puts one in the destination vault, a restore
//! creates the table, each refusing what AWS refuses: a copy into another account without the
//! Organization's leave, the vault's policy or a key that can be shared, a backup or copy
//! whose lifecycle a vault's lock forbids; a finished job hands its resource to the next one
//! waiting), and report their status as `Describe*Job` does. The job records themselves
//! ([`Job`], [`Work`]) are part of the world's state in [`crate::world`].

use std::collections::BTreeMap;

use drover_engine::ports::{
    CloudResult, JobState, JobStatus, Millis, RestoreSummary, TableSettings, VaultLock,
};

use crate::model::JobKind;
use crate::policy;
use crate::realism::TableRealism;
use crate::world::{Job, Point, SimTable, Vault, Work, World};

/// The StatusMessages of cross-account copies that fail, as the emulator words them
/// (`tests/emulator/drover_moto.py`, with its sources): accounts not in one organization (the
/// AWS Knowledge Center's wording), cross-account backup off (the emulator's), a destination
/// vault whose access policy does not let the source in (the Knowledge Center's), and a
/// destination vault encrypted with an AWS managed key (the emulator's).
pub(crate) const NOT_SAME_ORGANIZATION: &str = "Access denied: Copy job failed. Both source and \
     destination account must be a member of the same organization";
pub(crate) const CROSS_ACCOUNT_DISABLED: &str = "Access denied: Copy job failed. Cross-account \
     backup is not enabled for the organization (AWS Backup global setting \
     isCrossAccountBackupEnabled).";
pub(crate) const COPY_ACCESS_DENIED: &str = "Access Denied trying to call AWS Backup service";
pub(crate) const AWS_MANAGED_DESTINATION_KEY: &str = "Copy job failed. The destination backup \
     vault is encrypted with an AWS managed key (aws/backup), which cannot be used across \
     accounts: encrypt the destination vault with a customer managed key.";

impl World {
    /// Every job: id to (kind, start, end) in the simulator's time, where start is when its
    /// duration started (later than its creation for a job that sat CREATED) and end is
    /// `Millis::MAX` for one still waiting (benchmarks: true job durations, and when each job
    /// really finished).
    #[must_use]
    pub fn job_times(&self) -> BTreeMap<String, (JobKind, Millis, Millis)> {
        self.jobs
            .iter()
            .map(|(id, j)| {
                (id.clone(), (j.kind, j.began_at.unwrap_or(j.created_at), j.complete_at))
            })
            .collect()
    }

    /// Every job as `(region, kind, start, end)` in the simulator's time, where `region` is
    /// the one whose quota the job counts against (a copy's destination): what ran
    /// concurrently where (tests check concurrency limits against it).
    #[must_use]
    pub fn job_spans(&self) -> Vec<(String, JobKind, Millis, Millis)> {
        self.jobs
            .values()
            .map(|j| {
                let region = match &j.work {
                    Work::Copy { dest_region, .. } => dest_region.clone(),
                    _ => j.region.clone(),
                };
                (region, j.kind, j.created_at, j.complete_at)
            })
            .collect()
    }

    /// How long a job of `kind` on `bytes` takes: the model's expectation, with seeded noise.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn duration(&mut self, kind: JobKind, bytes: u64) -> Millis {
        let base = self.model.expected_ms(kind, bytes) as f64;
        let noise = self.model.noise * (2.0 * self.rng.unit() - 1.0);
        (base * (1.0 + noise)).max(0.0) as Millis
    }

    /// Applies everything that finished by `now`, in time order: jobs (a job that frees its
    /// resource starts the next one waiting for it), and tables' UPDATING and DELETING states
    /// that ended before each job did.
    pub(crate) fn advance(&mut self, now: Millis) {
        if !self.indexed {
            self.index();
        }
        self.time = Some(self.time.map_or(now, |t| t.max(now)));
        while let Some((at, id)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            self.due.pop_first();
            // A table deleted before the job finished is gone when it does.
            self.end_table_updates(at);
            let outcome = self.finish(&id, at);
            self.unfinished.remove(&id);
            let resource = self.jobs.get_mut(&id).and_then(|job| {
                job.outcome = Some(outcome);
                job.resource.clone()
            });
            if let Some(resource) = resource {
                self.release(&resource, at);
            }
        }
        self.end_table_updates(now);
    }

    /// Starts, at `at`, the job that has waited longest for `resource`, if any
    /// ([`crate::Realism::one_job_per_resource`]).
    fn release(&mut self, resource: &str, at: Millis) {
        let next = self
            .unfinished_jobs()
            .filter(|j| j.queued.is_some() && j.resource.as_deref() == Some(resource))
            .min_by_key(|j| (j.created_at, j.id.clone()))
            .map(|j| j.id.clone());
        let Some(job) = next.and_then(|id| self.jobs.get_mut(&id)) else { return };
        let Some((duration, ready_at)) = job.queued.take() else { return };
        let begin = at.max(ready_at);
        job.began_at = Some(begin);
        job.complete_at = begin.saturating_add(duration);
        self.due.insert((job.complete_at, job.id.clone()));
    }

    /// The effect of a job that just finished, at `at`: `(state, message)`.
    fn finish(&mut self, id: &str, at: Millis) -> (String, Option<String>) {
        let Some(job) = self.jobs.get(id).cloned() else {
            return ("FAILED".to_owned(), None);
        };
        if let Some((state, message)) = job.doomed {
            return (state, Some(message));
        }
        let region = job.region.clone();
        match job.work {
            Work::Backup { vault, point, .. } => {
                let arn = point.arn.clone();
                match self.regions.get_mut(&region).and_then(|r| r.vaults.get_mut(&vault)) {
                    Some(v) => {
                        if let Some(refused) =
                            lock_refuses(v.lock, "backup", point.delete_after_days, &vault)
                        {
                            return ("FAILED".to_owned(), Some(refused));
                        }
                        v.points.insert(arn, *point);
                        ("COMPLETED".to_owned(), None)
                    }
                    None => {
                        ("FAILED".to_owned(), Some(format!("Backup vault {vault} does not exist")))
                    }
                }
            }
            Work::Copy {
                source_point,
                source_vault,
                dest_region,
                dest_vault,
                dest_account,
                delete_after_days,
                role,
                ..
            } => {
                let Some(src) = self
                    .regions
                    .get(&region)
                    .and_then(|r| r.vaults.get(&source_vault))
                    .and_then(|v| v.points.get(&source_point))
                    .cloned()
                else {
                    return (
                        "FAILED".to_owned(),
                        Some(format!("Recovery point {source_point} not found")),
                    );
                };
                if !src.advanced {
                    return (
                        "FAILED".to_owned(),
                        Some(
                            "Copy of a DynamoDB backup requires advanced DynamoDB backup"
                                .to_owned(),
                        ),
                    );
                }
                let new_id = self.rng.new_id();
                let account = dest_account.unwrap_or_else(|| self.account.clone());
                let source_account = self.account_of(&region).to_owned();
                let cross = account != source_account;
                // Into another account, the Organization first: AWS looks no further.
                if cross && let Some(refused) = self.organization_refuses(&source_account, &account)
                {
                    return ("FAILED".to_owned(), Some(refused.to_owned()));
                }
                let in_account = self.account_of(&dest_region) == account;
                let Some(vault) = self
                    .regions
                    .get(&dest_region)
                    .filter(|_| in_account)
                    .and_then(|r| r.vaults.get(&dest_vault))
                else {
                    return (
                        "FAILED".to_owned(),
                        Some(format!(
                            "Destination backup vault \
                             arn:aws:backup:{dest_region}:{account}:backup-vault:{dest_vault} does \
                             not exist."
                        )),
                    );
                };
                if cross
                    && let Some(refused) =
                        self.vault_refuses(&source_account, &role, &dest_region, vault)
                {
                    return ("FAILED".to_owned(), Some(refused.to_owned()));
                }
                // A copy given no lifecycle keeps its source's.
                let days = delete_after_days.or(src.delete_after_days);
                if let Some(refused) = lock_refuses(vault.lock, "copy", days, &dest_vault) {
                    return ("FAILED".to_owned(), Some(refused));
                }
                let Some(vault) =
                    self.regions.get_mut(&dest_region).and_then(|r| r.vaults.get_mut(&dest_vault))
                else {
                    return ("FAILED".to_owned(), None);
                };
                let arn = format!("arn:aws:backup:{dest_region}:{account}:recovery-point:{new_id}");
                vault.points.insert(
                    arn.clone(),
                    Point {
                        arn: arn.clone(),
                        vault: dest_vault.clone(),
                        key_arn: vault.key_arn.clone(),
                        deleting_until: None,
                        delete_after_days: days,
                        ..src
                    },
                );
                if let Some(Job { work: Work::Copy { dest_point, .. }, .. }) = self.jobs.get_mut(id)
                {
                    *dest_point = Some(arn);
                }
                ("COMPLETED".to_owned(), None)
            }
            Work::Restore { point, table, kms_key_arn, .. } => {
                let kms_key_arn = self.faults.restore_key(kms_key_arn);
                if table.is_empty()
                    || !table.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                {
                    return ("FAILED".to_owned(), Some(format!("Invalid table name {table}")));
                }
                let account = self.account_of(&region).to_owned();
                let restored = TableRealism::restored(&self.realism, at);
                let Some(r) = self.regions.get_mut(&region) else {
                    return ("FAILED".to_owned(), Some("region unavailable".to_owned()));
                };
                let Some(p) = r.vaults.values().find_map(|v| v.points.get(&point)).cloned() else {
                    return (
                        "FAILED".to_owned(),
                        Some(format!("Recovery point {point} not found")),
                    );
                };
                if let Some(t) = r.tables.get(&table) {
                    if t.deleting_until.is_some() {
                        self.saw("delete_ms");
                    }
                    return ("FAILED".to_owned(), Some(format!("Table already exists: {table}")));
                }
                match r.keys.get(&kms_key_arn) {
                    Some(k) if k.state == "Enabled" => {}
                    Some(k) => {
                        return (
                            "FAILED".to_owned(),
                            Some(format!(
                                "The KMS key {kms_key_arn} is {} and cannot be used",
                                k.state
                            )),
                        );
                    }
                    None => {
                        return (
                            "FAILED".to_owned(),
                            Some(format!(
                                "The specified AWS KMS key ARN does not exist: {kms_key_arn}"
                            )),
                        );
                    }
                }
                let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{table}");
                r.tables.insert(
                    table.clone(),
                    SimTable {
                        name: table.clone(),
                        arn: arn.clone(),
                        schema: p.schema,
                        kms_key_arn: Some(kms_key_arn),
                        settings: TableSettings::default(),
                        tags: BTreeMap::new(),
                        items: p.items,
                        busy_until: None,
                        deleting_until: None,
                        realism: restored,
                        created_at: Some(at),
                        pitr: None,
                        restored_from: Some(RestoreSummary {
                            source_table_arn: Some(p.resource_arn.clone()),
                            source_backup_arn: Some(point.clone()),
                            restore_time: p.created_at,
                        }),
                    },
                );
                *self.tables_restored.or_insert_with(format!("{region}/{table}"), || 0) += 1;
                if let Some(Job { work: Work::Restore { created, .. }, .. }) = self.jobs.get_mut(id)
                {
                    *created = Some(arn);
                }
                ("COMPLETED".to_owned(), None)
            }
        }
    }

    /// Why the Organization stops a copy from `source` into `dest` (another account), if it
    /// does: they are not both in it, or it has not turned cross-account backup on.
    fn organization_refuses(&self, source: &str, dest: &str) -> Option<&'static str> {
        match &self.organization {
            Some(o) if o.has(source) && o.has(dest) => {
                (!o.cross_account_backup).then_some(CROSS_ACCOUNT_DISABLED)
            }
            _ => Some(NOT_SAME_ORGANIZATION),
        }
    }

    /// Why `vault` (in another account than `source`) refuses a copy that `role` of `source`
    /// makes, if it does: its access policy does not let the role copy in, or it is encrypted
    /// with an AWS managed key (which cannot be shared with another account; a vault made
    /// without a key has AWS Backup's own, `aws/backup`).
    fn vault_refuses(
        &self,
        source: &str,
        role: &str,
        dest_region: &str,
        vault: &Vault,
    ) -> Option<&'static str> {
        let org_id = self.organization.as_ref().filter(|o| o.has(source)).map(|o| o.id.as_str());
        let caller = policy::Caller::role(source, role, org_id);
        let let_in = vault
            .access_policy
            .as_deref()
            .is_some_and(|p| policy::allows(p, policy::COPY_INTO_VAULT, &caller));
        if !let_in {
            return Some(COPY_ACCESS_DENIED);
        }
        let aws_managed = vault.key_arn.as_ref().is_none_or(|k| {
            self.regions.get(dest_region).and_then(|r| r.keys.get(k)).is_some_and(|k| k.aws_managed)
        });
        aws_managed.then_some(AWS_MANAGED_DESTINATION_KEY)
    }

    /// The job's status at `now`, as `Describe*Job` reports it: CREATED (PENDING for
    /// restores) while it waits and for the first tenth of its duration, then RUNNING.
    pub(crate) fn status(&self, job: &Job, now: Millis) -> JobStatus {
        let begin = job.began_at.unwrap_or(job.created_at);
        let (state, raw, message) = match &job.outcome {
            Some((raw, msg)) => {
                let state = if raw == "COMPLETED" { JobState::Completed } else { JobState::Failed };
                (state, raw.clone(), msg.clone())
            }
            None if job.queued.is_some() || now < begin + (job.complete_at - begin) / 10 => {
                let raw = if job.kind == JobKind::Restore { "PENDING" } else { "CREATED" };
                (JobState::Created, raw.to_owned(), None)
            }
            None => (JobState::Running, "RUNNING".to_owned(), None),
        };
        #[allow(clippy::cast_precision_loss)]
        let percent = if job.queued.is_some() {
            0.0
        } else if job.complete_at > begin {
            ((now - begin) as f64 / (job.complete_at - begin) as f64 * 100.0).clamp(0.0, 100.0)
        } else {
            100.0
        };
        let (recovery_point_arn, created_resource_arn) = match &job.work {
            Work::Backup { point, .. } => (Some(point.arn.clone()), None),
            Work::Copy { dest_point, .. } => (dest_point.clone(), None),
            Work::Restore { created, .. } => (None, created.clone()),
        };
        JobStatus {
            state,
            raw_state: raw,
            message,
            // As in the AWS Backup API, copy jobs report no progress.
            percent_done: (job.kind != JobKind::Copy).then_some(percent),
            recovery_point_arn: if state == JobState::Completed {
                recovery_point_arn
            } else {
                None
            },
            created_resource_arn,
            created_at: Some(job.created_at),
            completed_at: job.outcome.as_ref().map(|_| job.complete_at),
        }
    }

    /// Starts a job (or, for a token seen before, answers the job it started) and returns
    /// its id. `resource` is the table a backup or copy job works on (its slot under
    /// [`crate::Realism::one_job_per_resource`]). A restore beyond the region's quota is
    /// refused ([`crate::Realism::max_restores`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_job(
        &mut self,
        op: &str,
        region: &str,
        token: &str,
        bytes: u64,
        now: Millis,
        resource: Option<String>,
        work: Work,
    ) -> CloudResult<String> {
        let kind = match work {
            Work::Backup { .. } => JobKind::Backup,
            Work::Copy { .. } => JobKind::Copy,
            Work::Restore { .. } => JobKind::Restore,
        };
        let token_key = format!("{region}/{op}/{token}");
        if let Some(id) = self.tokens.get(&token_key) {
            return Ok(id.clone());
        }
        if kind == JobKind::Restore {
            // Any type of restore: point-in-time restores in progress count too.
            let unfinished = self
                .unfinished_jobs()
                .filter(|j| j.kind == JobKind::Restore && j.region == region)
                .count()
                + self.pitr_restores_in_progress(region, now);
            if let Err(e) = self.realism.restore_quota(op, unfinished) {
                self.saw("max_restores");
                return Err(e);
            }
        }
        let id = self.rng.new_id();
        let duration = self.duration(kind, bytes);
        let delay = self.realism.start_delay(kind, &mut self.rng);
        let restore_table = match &work {
            Work::Restore { table, .. } => Some(table.as_str()),
            _ => None,
        };
        let doomed = self.faults.doom(kind, restore_table);
        let resource = resource.filter(|_| self.realism.queues(kind));
        let busy = resource
            .as_ref()
            .is_some_and(|r| self.unfinished_jobs().any(|j| j.resource.as_ref() == Some(r)));
        if delay > 0 {
            self.saw("copy_queue_ms");
        }
        if busy {
            self.saw("one_job_per_resource");
        }
        let ready_at = now.saturating_add(delay);
        let (began_at, complete_at, queued) = if busy {
            (None, Millis::MAX, Some((duration, ready_at)))
        } else {
            self.due.insert((ready_at + duration, id.clone()));
            ((delay > 0).then_some(ready_at), ready_at + duration, None)
        };
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                kind,
                region: region.to_owned(),
                created_at: now,
                complete_at,
                outcome: None,
                doomed,
                work,
                began_at,
                resource,
                queued,
            },
        );
        self.unfinished.insert(id.clone());
        self.tokens.insert(token_key, id.clone());
        *self.jobs_started.entry(kind).or_default() += 1;
        Ok(id)
    }
}

/// Why a vault under `lock` refuses a `kind` (`backup`, `copy`) job whose point is kept
/// `days` (`None`: no lifecycle, kept for ever), if it does: "any backup or copy job to the
/// vault must have a lifecycle policy with a retention period equal to or longer than the
/// minimum retention period ... the vault fails that backup or copy job", and likewise "equal to
/// or shorter than the maximum" (AWS Backup, PutBackupVaultLockConfiguration). As the emulator
/// reads it (and words it): a job without a lifecycle fails a minimum and a maximum both.
fn lock_refuses(
    lock: Option<VaultLock>,
    kind: &str,
    days: Option<u32>,
    vault: &str,
) -> Option<String> {
    let lock = lock?;
    let short = lock.min_retention_days.is_some_and(|min| days.is_none_or(|d| d < min));
    let long = lock.max_retention_days.is_some_and(|max| days.is_none_or(|d| d > max));
    (short || long).then(|| {
        let kept = days.map_or_else(
            || "no retention period (no Lifecycle DeleteAfterDays)".to_owned(),
            |d| format!("a retention period of {d} days"),
        );
        let bounds: Vec<String> = [
            ("MinRetentionDays", lock.min_retention_days),
            ("MaxRetentionDays", lock.max_retention_days),
        ]
        .into_iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
        .collect();
        format!(
            "The {kind} job's recovery point has {kept}, outside what the Vault Lock of backup \
             vault {vault} allows ({}): the vault fails the {kind} job.",
            bounds.join(", ")
        )
    })
}
