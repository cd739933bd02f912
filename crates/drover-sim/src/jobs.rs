//! What AWS Backup jobs do: start (idempotency tokens, a duration from the model with seeded
//! noise, a doom decided by the faults), finish in completion order as time advances (a
//! backup adds its recovery point, a copy puts one in the destination vault, a restore
//! creates the table, each refusing what AWS refuses), and report their status as
//! `Describe*Job` does. The job records themselves ([`Job`], [`Work`]) are part of the
//! world's state in [`crate::world`].

use std::collections::BTreeMap;

use drover_engine::ports::{JobState, JobStatus, Millis, TableSettings};

use crate::model::JobKind;
use crate::world::{Job, Point, SimTable, Work, World};

impl World {
    /// Every job: id to (kind, start, end) in the simulator's time (benchmarks: true job
    /// durations, and when each job really finished).
    #[must_use]
    pub fn job_times(&self) -> BTreeMap<String, (JobKind, Millis, Millis)> {
        self.jobs
            .iter()
            .map(|(id, j)| (id.clone(), (j.kind, j.created_at, j.complete_at)))
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

    /// Applies everything that finished by `now`, in completion order: jobs, then tables'
    /// UPDATING and DELETING states.
    pub(crate) fn advance(&mut self, now: Millis) {
        if !self.indexed {
            self.due = self
                .jobs
                .values()
                .filter(|j| j.outcome.is_none())
                .map(|j| (j.complete_at, j.id.clone()))
                .collect();
            self.next_table_event = Some(Millis::MIN);
            self.indexed = true;
        }
        while let Some((at, id)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            self.due.pop_first();
            let outcome = self.finish(&id);
            if let Some(job) = self.jobs.get_mut(&id) {
                job.outcome = Some(outcome);
            }
        }
        self.end_table_updates(now);
    }

    /// The effect of a job that just finished: `(state, message)`.
    fn finish(&mut self, id: &str) -> (String, Option<String>) {
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
                        v.points.insert(arn, point);
                        ("COMPLETED".to_owned(), None)
                    }
                    None => {
                        ("FAILED".to_owned(), Some(format!("Backup vault {vault} does not exist")))
                    }
                }
            }
            Work::Copy { source_point, source_vault, dest_region, dest_vault, .. } => {
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
                let account = self.account.clone();
                let Some(vault) =
                    self.regions.get_mut(&dest_region).and_then(|r| r.vaults.get_mut(&dest_vault))
                else {
                    return (
                        "FAILED".to_owned(),
                        Some(format!("Destination vault {dest_vault} not found")),
                    );
                };
                let arn = format!("arn:aws:backup:{dest_region}:{account}:recovery-point:{new_id}");
                vault.points.insert(
                    arn.clone(),
                    Point {
                        arn: arn.clone(),
                        vault: dest_vault.clone(),
                        key_arn: vault.key_arn.clone(),
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
                let account = self.account.clone();
                let Some(r) = self.regions.get_mut(&region) else {
                    return ("FAILED".to_owned(), Some("region unavailable".to_owned()));
                };
                let Some(p) = r.vaults.values().find_map(|v| v.points.get(&point)).cloned() else {
                    return (
                        "FAILED".to_owned(),
                        Some(format!("Recovery point {point} not found")),
                    );
                };
                if r.tables.contains_key(&table) {
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
                    },
                );
                *self.tables_restored.entry(format!("{region}/{table}")).or_default() += 1;
                if let Some(Job { work: Work::Restore { created, .. }, .. }) = self.jobs.get_mut(id)
                {
                    *created = Some(arn);
                }
                ("COMPLETED".to_owned(), None)
            }
        }
    }

    /// The job's status at `now`, as `Describe*Job` reports it.
    pub(crate) fn status(&self, job: &Job, now: Millis) -> JobStatus {
        let (state, raw, message) = match &job.outcome {
            Some((raw, msg)) => {
                let state = if raw == "COMPLETED" { JobState::Completed } else { JobState::Failed };
                (state, raw.clone(), msg.clone())
            }
            None if now < job.created_at + (job.complete_at - job.created_at) / 10 => {
                let raw = if job.kind == JobKind::Restore { "PENDING" } else { "CREATED" };
                (JobState::Created, raw.to_owned(), None)
            }
            None => (JobState::Running, "RUNNING".to_owned(), None),
        };
        #[allow(clippy::cast_precision_loss)]
        let percent = if job.complete_at > job.created_at {
            ((now - job.created_at) as f64 / (job.complete_at - job.created_at) as f64 * 100.0)
                .clamp(0.0, 100.0)
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
    /// its id.
    pub(crate) fn start_job(
        &mut self,
        op: &str,
        region: &str,
        token: &str,
        bytes: u64,
        now: Millis,
        work: Work,
    ) -> String {
        let kind = match work {
            Work::Backup { .. } => JobKind::Backup,
            Work::Copy { .. } => JobKind::Copy,
            Work::Restore { .. } => JobKind::Restore,
        };
        let token_key = format!("{region}/{op}/{token}");
        if let Some(id) = self.tokens.get(&token_key) {
            return id.clone();
        }
        let id = self.rng.new_id();
        let duration = self.duration(kind, bytes);
        let restore_table = match &work {
            Work::Restore { table, .. } => Some(table.as_str()),
            _ => None,
        };
        let doomed = self.faults.doom(kind, restore_table);
        self.due.insert((now + duration, id.clone()));
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                kind,
                region: region.to_owned(),
                created_at: now,
                complete_at: now + duration,
                outcome: None,
                doomed,
                work,
            },
        );
        self.tokens.insert(token_key, id.clone());
        *self.jobs_started.entry(kind).or_default() += 1;
        id
    }
}
