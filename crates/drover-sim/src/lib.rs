//! drover's simulated cloud: a strict, deterministic, multi-region fake of DynamoDB, AWS
//! Backup and KMS that implements the engine's ports.
//!
//! It is the embedded default for offline runs, estimates and fast tests; it never replaces
//! the emulator tests of the AWS adapter. Like jj's test backend it is *strict*: it refuses
//! what AWS refuses (restoring over an existing table, copying a non-advanced recovery point,
//! restoring with a disabled key, updating a table that is not ACTIVE, deleting a protected
//! table) so that engine bugs show up here first.
//!
//! - **Time.** Jobs take time from a [`DurationModel`] by table size, measured on the clock
//!   the simulator is given (virtual time in tests, accelerated in the CLI). State advances
//!   lazily: every call first applies whatever finished by "now".
//! - **Determinism.** Ids, noise and fault decisions come from a seeded generator.
//! - **Faults.** Throttling, failing jobs, disabled keys, regions that are down, latency
//!   ([`Faults`]).
//! - **Persistence.** With [`SimCloud::persist_to`] the whole world is written (atomically)
//!   after every change, so a killed process resumes against the same cloud.
//! - **Items** are stored compactly: `N` generated items (`pk = "ITEM#<i>"`) plus explicit
//!   ones (canaries, markers), so large tables cost nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use drover_engine::ports::{
    BackupRequest, BackupService, CloudResult, CopyRequest, Item, JobState, JobStatus,
    KeyAttribute, KeyInfo, KeyService, KeyType, Millis, RecoveryPoint, RestoreRequest, TableDigest,
    TableInfo, TableService, TableSettings, canonical_item,
};
use drover_engine::{Clock, CloudError, ErrorKind};
use serde::{Deserialize, Serialize};

pub mod estimate;

/// Bytes per simulated item.
pub const ITEM_BYTES: u64 = 200;
/// How long UpdateTable (stream, deletion protection) keeps a table UPDATING, and a delete
/// keeps it DELETING.
const TABLE_UPDATE_MS: Millis = 5_000;

/// Job durations: `base + size / rate`, times a noise factor in `[1 - noise, 1 + noise]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DurationModel {
    /// Fixed part of a backup job, seconds.
    pub backup_base_s: f64,
    /// Backup throughput, MB/s.
    pub backup_mb_s: f64,
    /// Fixed part of a copy job, seconds.
    pub copy_base_s: f64,
    /// Copy throughput, MB/s.
    pub copy_mb_s: f64,
    /// Fixed part of a restore job, seconds.
    pub restore_base_s: f64,
    /// Restore throughput, MB/s.
    pub restore_mb_s: f64,
    /// Relative noise (0.1 = ±10%).
    pub noise: f64,
    /// Scan throughput per segment, MB/s (validation's counts and digests).
    #[serde(default = "default_scan_mb_s")]
    pub scan_mb_s: f64,
}

fn default_scan_mb_s() -> f64 {
    25.0
}

impl Default for DurationModel {
    /// Defaults in the range AWS documents and users report: restores take at least several
    /// minutes even for small tables; copies of large tables take hours.
    fn default() -> Self {
        DurationModel {
            backup_base_s: 60.0,
            backup_mb_s: 100.0,
            copy_base_s: 180.0,
            copy_mb_s: 50.0,
            restore_base_s: 300.0,
            restore_mb_s: 25.0,
            noise: 0.1,
            scan_mb_s: default_scan_mb_s(),
        }
    }
}

impl DurationModel {
    /// Every job takes no time (overhead benchmarks).
    #[must_use]
    pub fn instant() -> DurationModel {
        DurationModel {
            backup_base_s: 0.0,
            backup_mb_s: f64::INFINITY,
            copy_base_s: 0.0,
            copy_mb_s: f64::INFINITY,
            restore_base_s: 0.0,
            restore_mb_s: f64::INFINITY,
            noise: 0.0,
            scan_mb_s: f64::INFINITY,
        }
    }

    /// Expected duration of a parallel scan of `bytes` in `segments` segments, in milliseconds.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn scan_ms(&self, bytes: u64, segments: u32) -> Millis {
        let secs = bytes as f64 / 1e6 / (self.scan_mb_s * f64::from(segments.max(1)));
        if secs.is_finite() { (secs * 1000.0) as Millis } else { 0 }
    }

    /// Expected duration of a job of `kind` on `bytes` (without noise), in milliseconds.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn expected_ms(&self, kind: JobKind, bytes: u64) -> Millis {
        let (base, rate) = match kind {
            JobKind::Backup => (self.backup_base_s, self.backup_mb_s),
            JobKind::Copy => (self.copy_base_s, self.copy_mb_s),
            JobKind::Restore => (self.restore_base_s, self.restore_mb_s),
        };
        let secs = base + bytes as f64 / 1e6 / rate;
        (secs * 1000.0) as Millis
    }
}

/// Kinds of AWS Backup jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// StartBackupJob.
    Backup,
    /// StartCopyJob.
    Copy,
    /// StartRestoreJob.
    Restore,
}

impl JobKind {
    /// The unsuccessful terminal states of the kind's jobs, per AWS Backup's API model
    /// (`BackupJobState`, `CopyJobState`, `RestoreJobStatus`).
    #[must_use]
    pub fn failure_states(self) -> &'static [&'static str] {
        match self {
            JobKind::Backup => &["FAILED", "ABORTED", "EXPIRED", "PARTIAL"],
            JobKind::Copy => &["FAILED", "PARTIAL"],
            JobKind::Restore => &["FAILED", "ABORTED"],
        }
    }
}

/// Faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability that any call is throttled.
    pub throttle_rate: f64,
    /// Throttle the next N calls (any operation).
    pub throttle_next: u64,
    /// Operations (e.g. `StartRestoreJob`) throttled every time while listed.
    pub throttle_ops: BTreeSet<String>,
    /// The next N jobs of a kind end in [`Faults::fail_state`].
    pub fail_next: BTreeMap<JobKind, u32>,
    /// Terminal state of the jobs `fail_next` dooms, when not `FAILED`: one the kind's API
    /// model allows ([`JobKind::failure_states`]), e.g. `ABORTED`, `EXPIRED`, `PARTIAL`.
    pub fail_state: Option<String>,
    /// Probability that any call fails with a passing fault (HTTP 500, 503, or a timeout).
    pub error_rate: f64,
    /// Fail the next N calls (any operation) with a passing fault.
    pub error_next: u64,
    /// Restore jobs into these table names end FAILED.
    pub fail_restores_of: BTreeSet<String>,
    /// Latency added to every call, milliseconds of the simulator's clock.
    pub latency_ms: u64,
    /// Restores ignore the requested key and encrypt with this one (a misconfigured or
    /// misbehaving service: validation must notice).
    pub restore_with_key: Option<String>,
    /// `Describe*Job` answers not-found for a job this many milliseconds (simulator clock)
    /// after it started: an eventually consistent read.
    pub unseen_jobs_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Items {
    /// `pk = ITEM#0 .. ITEM#<generated-1>` (and `sk = META` for tables with a sort key).
    generated: u64,
    /// Other items, by canonical key.
    explicit: BTreeMap<String, Item>,
}

impl Items {
    fn canonical(key: &Item) -> String {
        key.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\u{1f}")
    }

    fn generated_index(&self, t: &Schema, key: &Item) -> Option<u64> {
        let pk = key.get(&t.partition_key.name)?;
        let i: u64 = pk.strip_prefix("ITEM#")?.parse().ok()?;
        let sk_ok = match &t.sort_key {
            Some(sk) => key.get(&sk.name).map(String::as_str) == Some("META") && key.len() == 2,
            None => key.len() == 1,
        };
        (sk_ok && i < self.generated).then_some(i)
    }

    fn count(&self, t: &Schema) -> u64 {
        let extra = self
            .explicit
            .values()
            .filter(|item| self.generated_index(t, &key_part(t, item)).is_none())
            .count();
        self.generated + extra as u64
    }

    fn digest(&self, t: &Schema) -> TableDigest {
        let mut d = TableDigest::default();
        for i in 0..self.generated {
            let mut key = Item::from([(t.partition_key.name.clone(), format!("ITEM#{i}"))]);
            if let Some(sk) = &t.sort_key {
                key.insert(sk.name.clone(), "META".to_owned());
            }
            if let Some(item) = self.get(t, &key) {
                d.add(&canonical_item(&item));
            }
        }
        for item in self.explicit.values() {
            if self.generated_index(t, &key_part(t, item)).is_none() {
                d.add(&canonical_item(item));
            }
        }
        d
    }

    fn get(&self, t: &Schema, key: &Item) -> Option<Item> {
        if let Some(item) = self.explicit.get(&Items::canonical(key)) {
            return Some(item.clone());
        }
        self.generated_index(t, key).map(|i| {
            let mut item = key.clone();
            item.insert("payload".to_owned(), format!("generated item {i}"));
            item
        })
    }
}

fn key_part(t: &Schema, item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| {
            *k == &t.partition_key.name || t.sort_key.as_ref().is_some_and(|s| &s.name == *k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Schema {
    partition_key: KeyAttribute,
    sort_key: Option<KeyAttribute>,
    global_indexes: Vec<String>,
    local_indexes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimTable {
    name: String,
    arn: String,
    schema: Schema,
    kms_key_arn: Option<String>,
    settings: TableSettings,
    tags: BTreeMap<String, String>,
    items: Items,
    busy_until: Option<Millis>,
    deleting_until: Option<Millis>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    arn: String,
    vault: String,
    resource_arn: String,
    created_at: Millis,
    key_arn: Option<String>,
    advanced: bool,
    size: u64,
    schema: Schema,
    items: Items,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Vault {
    arn: String,
    key_arn: Option<String>,
    points: BTreeMap<String, Point>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Key {
    state: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RegionState {
    tables: BTreeMap<String, SimTable>,
    vaults: BTreeMap<String, Vault>,
    keys: BTreeMap<String, Key>,
    advanced_backup: bool,
    down: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Work {
    Backup {
        table: String,
        vault: String,
        point: Point,
    },
    Copy {
        source_point: String,
        source_vault: String,
        dest_region: String,
        dest_vault: String,
        dest_point: Option<String>,
    },
    Restore {
        point: String,
        table: String,
        kms_key_arn: String,
        created: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    id: String,
    kind: JobKind,
    region: String,
    created_at: Millis,
    complete_at: Millis,
    /// Terminal state once finished: `COMPLETED`, `FAILED`, ...
    outcome: Option<(String, Option<String>)>,
    /// A failure decided at start (fault injection), applied at completion: the terminal
    /// state and the status message.
    doomed: Option<(String, String)>,
    work: Work,
}

/// The whole simulated world. Serializable, so that it can persist across processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    account: String,
    rng: u64,
    regions: BTreeMap<String, RegionState>,
    jobs: BTreeMap<String, Job>,
    tokens: BTreeMap<String, String>,
    model: DurationModel,
    /// Faults in force.
    pub faults: Faults,
    /// Calls made, by operation.
    pub calls: BTreeMap<String, u64>,
    /// Jobs started, by kind.
    pub jobs_started: BTreeMap<JobKind, u64>,
    /// Tables created by restores, by (region, name): how often each name was restored.
    pub tables_restored: BTreeMap<String, u64>,
    /// Unfinished jobs by completion time (an index of `jobs`, rebuilt after loading).
    #[serde(skip)]
    due: BTreeSet<(Millis, String)>,
    /// The earliest time a table stops being UPDATING or DELETING, if any.
    #[serde(skip)]
    next_table_event: Option<Millis>,
    /// Whether the indexes above are built.
    #[serde(skip)]
    indexed: bool,
}

fn err(kind: ErrorKind, op: &str, message: impl Into<String>) -> CloudError {
    CloudError::new(kind, op, message)
}

impl World {
    /// Deletes a table at once (test set-up).
    pub fn drop_table(&mut self, region: &str, name: &str) {
        if let Some(r) = self.regions.get_mut(region) {
            r.tables.remove(name);
        }
    }

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

    /// Sets the number of generated items of a table (sizes for estimates and benchmarks).
    pub fn set_generated_items(&mut self, region: &str, table: &str, items: u64) {
        if let Some(t) = self.regions.get_mut(region).and_then(|r| r.tables.get_mut(table)) {
            t.items.generated = items;
        }
    }

    /// Removes a tag from a table (test set-up: a table that lost its ownership tag).
    pub fn untag(&mut self, region: &str, table: &str, key: &str) {
        if let Some(t) = self.regions.get_mut(region).and_then(|r| r.tables.get_mut(table)) {
            t.tags.remove(key);
        }
    }

    /// Deletes a vault and its recovery points (test set-up).
    pub fn drop_vault(&mut self, region: &str, name: &str) {
        if let Some(r) = self.regions.get_mut(region) {
            r.vaults.remove(name);
        }
    }

    fn next_rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[allow(clippy::cast_precision_loss)]
    fn unit(&mut self) -> f64 {
        (self.next_rand() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn new_id(&mut self) -> String {
        let a = self.next_rand();
        let b = self.next_rand();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn region(&mut self, op: &str, region: &str) -> CloudResult<&mut RegionState> {
        self.regions.get_mut(region).ok_or_else(|| {
            err(
                ErrorKind::Transient,
                op,
                format!("could not connect to the endpoint for region {region}"),
            )
        })
    }

    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn duration(&mut self, kind: JobKind, bytes: u64) -> Millis {
        let base = self.model.expected_ms(kind, bytes) as f64;
        let noise = self.model.noise * (2.0 * self.unit() - 1.0);
        (base * (1.0 + noise)).max(0.0) as Millis
    }

    /// Applies everything that finished by `now`, in completion order.
    fn advance(&mut self, now: Millis) {
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
        if self.next_table_event.is_some_and(|at| at <= now) {
            let mut next: Option<Millis> = None;
            for region in self.regions.values_mut() {
                region.tables.retain(|_, t| t.deleting_until.is_none_or(|until| until > now));
                for t in region.tables.values_mut() {
                    if t.busy_until.is_some_and(|until| until <= now) {
                        t.busy_until = None;
                    }
                    for until in [t.busy_until, t.deleting_until].into_iter().flatten() {
                        next = Some(next.map_or(until, |n| n.min(until)));
                    }
                }
            }
            self.next_table_event = next;
        }
    }

    /// Notes that a table changes state at `at` (UPDATING or DELETING ends).
    fn table_event(&mut self, at: Millis) {
        self.next_table_event = Some(self.next_table_event.map_or(at, |n| n.min(at)));
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
                let new_id = self.new_id();
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
                let kms_key_arn = self.faults.restore_with_key.clone().unwrap_or(kms_key_arn);
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

    fn status(&self, job: &Job, now: Millis) -> JobStatus {
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

    fn start_job(
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
        let id = self.new_id();
        let duration = self.duration(kind, bytes);
        let doomed = match self.faults.fail_next.get_mut(&kind) {
            Some(n) if *n > 0 => {
                *n -= 1;
                let state = self
                    .faults
                    .fail_state
                    .clone()
                    .filter(|s| kind.failure_states().contains(&s.as_str()))
                    .unwrap_or_else(|| "FAILED".to_owned());
                let message = format!("Injected {} (simulator fault)", state.to_lowercase());
                Some((state, message))
            }
            _ => match &work {
                Work::Restore { table, .. } if self.faults.fail_restores_of.contains(table) => {
                    let message = format!("Injected failure restoring {table} (simulator fault)");
                    Some(("FAILED".to_owned(), message))
                }
                _ => None,
            },
        };
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

    fn table(&mut self, op: &str, region: &str, name: &str) -> CloudResult<&mut SimTable> {
        self.region(op, region)?.tables.get_mut(name).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                op,
                format!("Requested resource not found: Table: {name} not found"),
            )
        })
    }

    fn active_table(&mut self, op: &str, region: &str, name: &str) -> CloudResult<&mut SimTable> {
        let t = self.table(op, region, name)?;
        if t.busy_until.is_some() || t.deleting_until.is_some() {
            return Err(err(
                ErrorKind::InvalidState,
                op,
                format!("Table {name} is being updated (ResourceInUseException)"),
            ));
        }
        Ok(t)
    }
}

/// The simulated cloud: a [`World`] behind a lock, a clock, and optional persistence.
#[derive(Clone)]
pub struct SimCloud {
    world: Arc<Mutex<World>>,
    clock: Arc<dyn Clock>,
    persist: Option<PathBuf>,
}

/// Errors loading or saving a simulator state file.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing failed.
    #[error("simulator state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a simulator state.
    #[error("simulator state {path} is unreadable: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl SimCloud {
    /// An empty world for `account`, deterministic under `seed`.
    #[must_use]
    pub fn new(account: &str, seed: u64, clock: Arc<dyn Clock>) -> SimCloud {
        let world = World {
            account: account.to_owned(),
            rng: seed,
            regions: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tokens: BTreeMap::new(),
            model: DurationModel::default(),
            faults: Faults::default(),
            calls: BTreeMap::new(),
            jobs_started: BTreeMap::new(),
            tables_restored: BTreeMap::new(),
            due: BTreeSet::new(),
            next_table_event: None,
            indexed: true,
        };
        SimCloud { world: Arc::new(Mutex::new(world)), clock, persist: None }
    }

    /// Loads a world saved by [`SimCloud::persist_to`].
    ///
    /// # Errors
    /// The file is missing or not a simulator state.
    pub fn load(path: &Path, clock: Arc<dyn Clock>) -> Result<SimCloud, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SimError::Io { path: path.to_owned(), source })?;
        let world: World = serde_json::from_str(&text)
            .map_err(|e| SimError::Format { path: path.to_owned(), message: e.to_string() })?;
        Ok(SimCloud { world: Arc::new(Mutex::new(world)), clock, persist: Some(path.to_owned()) })
    }

    /// Saves the world to `path` now and after every change from here on.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn persist_to(mut self, path: &Path) -> Result<SimCloud, SimError> {
        self.persist = Some(path.to_owned());
        let world = self.lock().clone();
        save(path, &world)?;
        Ok(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads or changes the world directly (test set-up, assertions, fault injection).
    pub fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self.lock();
        let now = self.clock.now();
        w.advance(now);
        let out = f(&mut w);
        if let Some(path) = &self.persist
            && let Err(e) = save(path, &w)
        {
            tracing::warn!(error = %e, "simulator could not persist its state");
        }
        out
    }

    /// Sets the duration model.
    pub fn set_model(&self, model: DurationModel) {
        self.with(|w| w.model = model);
    }

    /// Sets the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.with(|w| w.faults = faults);
    }

    /// Adds a region (with advanced DynamoDB backup on).
    pub fn add_region(&self, region: &str) {
        self.with(|w| {
            w.regions
                .entry(region.to_owned())
                .or_insert_with(|| RegionState { advanced_backup: true, ..RegionState::default() });
        });
    }

    /// Turns advanced DynamoDB backup on or off in a region (off: backups are not copyable).
    pub fn set_advanced_backup(&self, region: &str, on: bool) {
        self.with(|w| {
            if let Some(r) = w.regions.get_mut(region) {
                r.advanced_backup = on;
            }
        });
    }

    /// Makes a region unreachable (or reachable again).
    pub fn set_region_down(&self, region: &str, down: bool) {
        self.with(|w| {
            if let Some(r) = w.regions.get_mut(region) {
                r.down = down;
            }
        });
    }

    /// Adds a backup vault, encrypted with `key_arn`.
    pub fn add_vault(&self, region: &str, name: &str, key_arn: Option<&str>) {
        self.with(|w| {
            let account = w.account.clone();
            let r = w.regions.entry(region.to_owned()).or_default();
            r.vaults.entry(name.to_owned()).or_insert_with(|| Vault {
                arn: format!("arn:aws:backup:{region}:{account}:backup-vault:{name}"),
                key_arn: key_arn.map(str::to_owned),
                points: BTreeMap::new(),
            });
        });
    }

    /// Adds a KMS key (`Enabled`).
    pub fn add_key(&self, region: &str, key_arn: &str) {
        self.with(|w| {
            w.regions
                .entry(region.to_owned())
                .or_default()
                .keys
                .insert(key_arn.to_owned(), Key { state: "Enabled".to_owned() });
        });
    }

    /// Sets a key's state (`Enabled`, `Disabled`, `PendingDeletion`).
    pub fn set_key_state(&self, region: &str, key_arn: &str, state: &str) {
        self.with(|w| {
            if let Some(k) = w.regions.get_mut(region).and_then(|r| r.keys.get_mut(key_arn)) {
                state.clone_into(&mut k.state);
            }
        });
    }

    /// Adds a table with `items` generated items and the given explicit items. The key
    /// schema is `partition_key` (a string), plus `sort_key` (a string) when given.
    pub fn add_table(
        &self,
        region: &str,
        name: &str,
        partition_key: &str,
        sort_key: Option<&str>,
        items: u64,
        explicit: &[Item],
    ) {
        self.with(|w| {
            let account = w.account.clone();
            let schema = Schema {
                partition_key: KeyAttribute { name: partition_key.to_owned(), kind: KeyType::S },
                sort_key: sort_key.map(|s| KeyAttribute { name: s.to_owned(), kind: KeyType::S }),
                global_indexes: Vec::new(),
                local_indexes: Vec::new(),
            };
            let explicit = explicit
                .iter()
                .map(|i| (Items::canonical(&key_part(&schema, i)), i.clone()))
                .collect();
            w.regions.entry(region.to_owned()).or_default().tables.insert(
                name.to_owned(),
                SimTable {
                    name: name.to_owned(),
                    arn: format!("arn:aws:dynamodb:{region}:{account}:table/{name}"),
                    schema,
                    kms_key_arn: None,
                    settings: TableSettings::default(),
                    tags: BTreeMap::new(),
                    items: Items { generated: items, explicit },
                    busy_until: None,
                    deleting_until: None,
                },
            );
        });
    }

    /// Sets up the world a plan expects: its regions, vaults and keys, and its source tables
    /// with `items` generated items each plus every canary item. A table's key attributes
    /// are those its canary keys name (`pk`, and `sk` for two-attribute keys, otherwise).
    pub fn seed_from_plan(&self, plan: &drover_plan::Plan, items: u64) {
        let src = plan.source.region.as_str();
        self.add_region(src);
        self.add_vault(src, &plan.source.backup_vault, None);
        for t in &plan.targets {
            self.add_region(t.region.as_str());
            self.add_key(t.region.as_str(), &t.kms_key_arn);
            self.add_vault(t.region.as_str(), &t.backup_vault, Some(&t.kms_key_arn));
        }
        for t in &plan.tables {
            let names: Vec<&str> = t
                .validate
                .canary_keys
                .iter()
                .max_by_key(|k| k.len())
                .map(|k| k.keys().map(String::as_str).collect())
                .unwrap_or_else(|| vec!["pk"]);
            let canaries: Vec<Item> = t
                .validate
                .canary_keys
                .iter()
                .map(|k| {
                    let mut item = k.clone();
                    item.insert("canary".to_owned(), "true".to_owned());
                    item
                })
                .collect();
            self.add_table(src, &t.name, names[0], names.get(1).copied(), items, &canaries);
        }
    }

    /// Puts, in every target vault, a completed copy of each of the plan's source tables as
    /// it was `age_ms` ago: what an account with a backup schedule and copy rules holds, and
    /// what a failover restores from.
    pub fn seed_copies(&self, plan: &drover_plan::Plan, age_ms: Millis) {
        for t in &plan.tables {
            self.seed_copy(plan, &t.name, age_ms);
        }
    }

    /// Puts, in every target vault of `table`, a completed copy of it as it is now, dated
    /// `age_ms` ago.
    pub fn seed_copy(&self, plan: &drover_plan::Plan, table: &str, age_ms: Millis) {
        let now = self.clock.now();
        let Some((_, t)) = plan.table_by_name(table) else { return };
        self.with(|w| {
            let account = w.account.clone();
            let src = plan.source.region.to_string();
            let Some(source) = w.regions.get(&src).and_then(|r| r.tables.get(table)).cloned()
            else {
                return;
            };
            for region in &t.targets {
                let Some(target) = plan.target(region) else { continue };
                let id = w.new_id();
                let Some(vault) = w
                    .regions
                    .get_mut(region.as_str())
                    .and_then(|r| r.vaults.get_mut(&target.backup_vault))
                else {
                    continue;
                };
                let arn = format!("arn:aws:backup:{region}:{account}:recovery-point:{id}");
                vault.points.insert(
                    arn.clone(),
                    Point {
                        arn,
                        vault: target.backup_vault.clone(),
                        resource_arn: source.arn.clone(),
                        created_at: now - age_ms,
                        key_arn: vault.key_arn.clone(),
                        advanced: true,
                        size: source.items.count(&source.schema) * ITEM_BYTES,
                        schema: source.schema.clone(),
                        items: source.items.clone(),
                    },
                );
            }
        });
    }

    /// Names of the tables in a region.
    #[must_use]
    pub fn table_names(&self, region: &str) -> Vec<String> {
        self.with(|w| {
            w.regions.get(region).map(|r| r.tables.keys().cloned().collect()).unwrap_or_default()
        })
    }

    /// Item count of a table (all items, generated and explicit).
    #[must_use]
    pub fn item_count(&self, region: &str, name: &str) -> Option<u64> {
        self.with(|w| w.regions.get(region)?.tables.get(name).map(|t| t.items.count(&t.schema)))
    }

    async fn op<T>(
        &self,
        op: &str,
        region: &str,
        f: impl FnOnce(&mut World, Millis) -> CloudResult<T>,
    ) -> CloudResult<T> {
        let latency = self.lock().faults.latency_ms;
        if latency > 0 {
            self.clock.sleep(Duration::from_millis(latency)).await;
        }
        let now = self.clock.now();
        let mut w = self.lock();
        w.advance(now);
        *w.calls.entry(op.to_owned()).or_default() += 1;
        let result = (|| {
            let r = w.regions.get(region).ok_or_else(|| {
                err(
                    ErrorKind::Transient,
                    op,
                    format!("could not connect to the endpoint for region {region}"),
                )
            })?;
            if r.down {
                return Err(err(
                    ErrorKind::Transient,
                    op,
                    format!("could not connect to the endpoint for region {region} (region down)"),
                ));
            }
            if w.faults.throttle_next > 0 {
                w.faults.throttle_next -= 1;
                return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
            }
            if w.faults.throttle_ops.contains(op) {
                return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
            }
            if w.faults.throttle_rate > 0.0 && w.unit() < w.faults.throttle_rate {
                return Err(err(ErrorKind::Throttled, op, "ThrottlingException: Rate exceeded"));
            }
            let passing = if w.faults.error_next > 0 {
                w.faults.error_next -= 1;
                true
            } else {
                w.faults.error_rate > 0.0 && w.unit() < w.faults.error_rate
            };
            if passing {
                const PASSING: [&str; 3] = [
                    "InternalServerError (HTTP 500): We encountered an internal error",
                    "ServiceUnavailableException (HTTP 503): Service unavailable",
                    "timed out waiting for the response",
                ];
                #[allow(clippy::cast_possible_truncation)]
                let message = PASSING[(w.next_rand() % 3) as usize];
                return Err(err(ErrorKind::Transient, op, message));
            }
            f(&mut w, now)
        })();
        if let Some(path) = &self.persist
            && let Err(e) = save(path, &w)
        {
            return Err(err(
                ErrorKind::Fatal,
                op,
                format!("simulator could not persist its state: {e}"),
            ));
        }
        result
    }
}

fn save(path: &Path, world: &World) -> Result<(), SimError> {
    let io = |source| SimError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec(world)
        .map_err(|e| SimError::Format { path: path.to_owned(), message: e.to_string() })?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_data().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

fn table_info(t: &SimTable, now: Millis) -> TableInfo {
    let status = if t.deleting_until.is_some() {
        "DELETING"
    } else if t.busy_until.is_some_and(|u| u > now) {
        "UPDATING"
    } else {
        "ACTIVE"
    };
    TableInfo {
        name: t.name.clone(),
        arn: t.arn.clone(),
        status: status.to_owned(),
        partition_key: t.schema.partition_key.clone(),
        sort_key: t.schema.sort_key.clone(),
        global_indexes: t
            .schema
            .global_indexes
            .iter()
            .map(|g| (g.clone(), "ACTIVE".to_owned()))
            .collect(),
        local_indexes: t.schema.local_indexes.clone(),
        restore_in_progress: false,
        kms_key_arn: t.kms_key_arn.clone(),
        item_count: t.items.count(&t.schema),
        size_bytes: t.items.count(&t.schema) * ITEM_BYTES,
        settings: t.settings.clone(),
        tags: t.tags.clone(),
    }
}

#[async_trait]
impl BackupService for SimCloud {
    async fn start_backup_job(&self, req: &BackupRequest) -> CloudResult<String> {
        const OP: &str = "StartBackupJob";
        self.op(OP, &req.region, |w, now| {
            let account = w.account.clone();
            let point_id = w.new_id();
            let r = w.region(OP, &req.region)?;
            let advanced = r.advanced_backup;
            let Some(vault) = r.vaults.get(&req.vault) else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Backup vault {} does not exist", req.vault),
                ));
            };
            let key_arn = vault.key_arn.clone();
            let name = req.table_arn.rsplit('/').next().unwrap_or_default().to_owned();
            let Some(t) = r.tables.get(&name).filter(|t| t.arn == req.table_arn) else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Resource {} not found", req.table_arn),
                ));
            };
            let size = t.items.count(&t.schema) * ITEM_BYTES;
            let arn = if advanced {
                format!("arn:aws:backup:{}:{account}:recovery-point:{point_id}", req.region)
            } else {
                format!("{}/backup/{:014}-{}", t.arn, now, &point_id[..8])
            };
            let point = Point {
                arn,
                vault: req.vault.clone(),
                resource_arn: t.arn.clone(),
                created_at: now,
                key_arn: if advanced { key_arn } else { t.kms_key_arn.clone() },
                advanced,
                size,
                schema: t.schema.clone(),
                items: t.items.clone(),
            };
            let work = Work::Backup { table: name, vault: req.vault.clone(), point };
            Ok(w.start_job(OP, &req.region, &req.idempotency_token, size, now, work))
        })
        .await
    }

    async fn describe_backup_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeBackupJob", region, job_id, JobKind::Backup).await
    }

    async fn start_copy_job(&self, req: &CopyRequest) -> CloudResult<String> {
        const OP: &str = "StartCopyJob";
        self.op(OP, &req.region, |w, now| {
            let (dest_region, dest_vault) = parse_vault_arn(&req.destination_vault_arn)
                .ok_or_else(|| {
                    err(
                        ErrorKind::Fatal,
                        OP,
                        format!("Invalid destination vault ARN {}", req.destination_vault_arn),
                    )
                })?;
            let r = w.region(OP, &req.region)?;
            let Some(point) =
                r.vaults.get(&req.source_vault).and_then(|v| v.points.get(&req.recovery_point_arn))
            else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Recovery point {} not found", req.recovery_point_arn),
                ));
            };
            let size = point.size;
            if !w.regions.get(&dest_region).is_some_and(|r| r.vaults.contains_key(&dest_vault)) {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Backup vault {} does not exist", req.destination_vault_arn),
                ));
            }
            let work = Work::Copy {
                source_point: req.recovery_point_arn.clone(),
                source_vault: req.source_vault.clone(),
                dest_region,
                dest_vault,
                dest_point: None,
            };
            Ok(w.start_job(OP, &req.region, &req.idempotency_token, size, now, work))
        })
        .await
    }

    async fn describe_copy_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeCopyJob", region, job_id, JobKind::Copy).await
    }

    async fn start_restore_job(&self, req: &RestoreRequest) -> CloudResult<String> {
        const OP: &str = "StartRestoreJob";
        self.op(OP, &req.region, |w, now| {
            let r = w.region(OP, &req.region)?;
            let Some(point) = r.vaults.values().find_map(|v| v.points.get(&req.recovery_point_arn))
            else {
                return Err(err(
                    ErrorKind::NotFound,
                    OP,
                    format!("Recovery point {} not found", req.recovery_point_arn),
                ));
            };
            let size = point.size;
            let work = Work::Restore {
                point: req.recovery_point_arn.clone(),
                table: req.table_name.clone(),
                kms_key_arn: req.kms_key_arn.clone(),
                created: None,
            };
            Ok(w.start_job(OP, &req.region, &req.idempotency_token, size, now, work))
        })
        .await
    }

    async fn describe_restore_job(&self, region: &str, job_id: &str) -> CloudResult<JobStatus> {
        self.describe("DescribeRestoreJob", region, job_id, JobKind::Restore).await
    }

    async fn list_recovery_points(
        &self,
        region: &str,
        vault: &str,
        source_region: &str,
        table_name: &str,
    ) -> CloudResult<Vec<RecoveryPoint>> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let v = r.vaults.get(vault).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })?;
            let suffix = format!(":table/{table_name}");
            let mut points: Vec<RecoveryPoint> = v
                .points
                .values()
                .filter(|p| {
                    p.resource_arn.ends_with(&suffix)
                        && p.resource_arn.contains(&format!(":dynamodb:{source_region}:"))
                })
                .map(|p| RecoveryPoint {
                    arn: p.arn.clone(),
                    vault: vault.to_owned(),
                    resource_arn: p.resource_arn.clone(),
                    created_at: p.created_at,
                    status: "COMPLETED".to_owned(),
                    size_bytes: Some(p.size),
                    encryption_key_arn: p.key_arn.clone(),
                })
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.created_at));
            Ok(points)
        })
        .await
    }

    async fn advanced_dynamodb_backup(&self, region: &str) -> CloudResult<bool> {
        self.describe_settings(region).await
    }

    async fn vault_arn(&self, region: &str, vault: &str) -> CloudResult<String> {
        const OP: &str = "DescribeBackupVault";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            r.vaults.get(vault).map(|v| v.arn.clone()).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Backup vault {vault} does not exist"))
            })
        })
        .await
    }
}

impl SimCloud {
    /// Waits as long as a parallel scan of `items` items in `segments` segments takes.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    async fn scan_time(&self, items: u64, segments: u32) {
        let rate = self.lock().model.scan_mb_s * f64::from(segments.max(1));
        let secs = (items * ITEM_BYTES) as f64 / 1e6 / rate;
        if secs.is_finite() && secs > 0.0 {
            self.clock.sleep(Duration::from_secs_f64(secs)).await;
        }
    }

    async fn describe_settings(&self, region: &str) -> CloudResult<bool> {
        const OP: &str = "DescribeRegionSettings";
        self.op(OP, region, |w, _| Ok(w.region(OP, region)?.advanced_backup)).await
    }

    async fn describe(
        &self,
        op: &str,
        region: &str,
        job_id: &str,
        kind: JobKind,
    ) -> CloudResult<JobStatus> {
        self.op(op, region, |w, now| {
            let job = w
                .jobs
                .get(job_id)
                .filter(|j| j.region == region && j.kind == kind)
                .filter(|j| {
                    let unseen = i64::try_from(w.faults.unseen_jobs_ms).unwrap_or(i64::MAX);
                    now >= j.created_at.saturating_add(unseen)
                })
                .ok_or_else(|| err(ErrorKind::NotFound, op, format!("Job {job_id} not found")))?;
            Ok(w.status(job, now))
        })
        .await
    }
}

fn parse_vault_arn(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    (parts.len() == 7 && parts[2] == "backup" && parts[5] == "backup-vault")
        .then(|| (parts[3].to_owned(), parts[6].to_owned()))
}

#[async_trait]
impl TableService for SimCloud {
    async fn describe_table(&self, region: &str, name: &str) -> CloudResult<Option<TableInfo>> {
        self.op("DescribeTable", region, |w, now| {
            let r = w.region("DescribeTable", region)?;
            Ok(r.tables.get(name).map(|t| table_info(t, now)))
        })
        .await
    }

    async fn set_point_in_time_recovery(
        &self,
        region: &str,
        name: &str,
        on: bool,
    ) -> CloudResult<()> {
        self.op("UpdateContinuousBackups", region, |w, _| {
            w.table("UpdateContinuousBackups", region, name)?.settings.point_in_time_recovery = on;
            Ok(())
        })
        .await
    }

    async fn enable_ttl(&self, region: &str, name: &str, attribute: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTimeToLive";
        self.op(OP, region, |w, _| {
            let t = w.active_table(OP, region, name)?;
            if t.settings.ttl_attribute.as_deref() == Some(attribute) {
                return Err(err(ErrorKind::InvalidState, OP, "TimeToLive is already enabled"));
            }
            t.settings.ttl_attribute = Some(attribute.to_owned());
            Ok(())
        })
        .await
    }

    async fn enable_stream(&self, region: &str, name: &str, view: &str) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            if t.settings.stream.is_some() {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("Table {name} already has an enabled stream"),
                ));
            }
            t.settings.stream = Some(view.to_owned());
            t.busy_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn set_deletion_protection(&self, region: &str, name: &str, on: bool) -> CloudResult<()> {
        const OP: &str = "UpdateTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            t.settings.deletion_protection = on;
            t.busy_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn tag_table(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
        const OP: &str = "TagResource";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let t = r.tables.values_mut().find(|t| t.arn == arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Requested resource not found: {arn}"))
            })?;
            t.tags.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if t.tags.len() > 50 {
                return Err(err(ErrorKind::Fatal, OP, "Too many tags (50 allowed)"));
            }
            Ok(())
        })
        .await
    }

    async fn delete_table(&self, region: &str, name: &str) -> CloudResult<()> {
        const OP: &str = "DeleteTable";
        self.op(OP, region, |w, now| {
            let t = w.active_table(OP, region, name)?;
            if t.settings.deletion_protection {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("Table {name} has deletion protection enabled"),
                ));
            }
            t.deleting_until = Some(now + TABLE_UPDATE_MS);
            w.table_event(now + TABLE_UPDATE_MS);
            Ok(())
        })
        .await
    }

    async fn count_items(&self, region: &str, name: &str, segments: u32) -> CloudResult<u64> {
        let count = self
            .op("Scan", region, |w, _| {
                let t = w.table("Scan", region, name)?;
                Ok(t.items.count(&t.schema))
            })
            .await?;
        self.scan_time(count, segments).await;
        Ok(count)
    }

    async fn digest_items(
        &self,
        region: &str,
        name: &str,
        segments: u32,
    ) -> CloudResult<TableDigest> {
        let digest = self
            .op("Scan", region, |w, _| {
                let t = w.table("Scan", region, name)?;
                Ok(t.items.digest(&t.schema))
            })
            .await?;
        self.scan_time(digest.items, segments).await;
        Ok(digest)
    }

    async fn get_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<Option<Item>> {
        self.op("GetItem", region, |w, _| {
            let t = w.table("GetItem", region, name)?;
            Ok(t.items.get(&t.schema, key))
        })
        .await
    }

    async fn put_item(&self, region: &str, name: &str, item: &Item) -> CloudResult<()> {
        self.op("PutItem", region, |w, _| {
            let t = w.table("PutItem", region, name)?;
            let key = key_part(&t.schema, item);
            if !key.contains_key(&t.schema.partition_key.name) {
                return Err(err(
                    ErrorKind::Fatal,
                    "PutItem",
                    "The item is missing the partition key",
                ));
            }
            t.items.explicit.insert(Items::canonical(&key), item.clone());
            Ok(())
        })
        .await
    }

    async fn delete_item(&self, region: &str, name: &str, key: &Item) -> CloudResult<()> {
        self.op("DeleteItem", region, |w, _| {
            let t = w.table("DeleteItem", region, name)?;
            t.items.explicit.remove(&Items::canonical(key));
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl KeyService for SimCloud {
    async fn describe_key(&self, region: &str, key_arn: &str) -> CloudResult<KeyInfo> {
        const OP: &str = "DescribeKey";
        self.op(OP, region, |w, _| {
            let r = w.region(OP, region)?;
            let k = r.keys.get(key_arn).ok_or_else(|| {
                err(ErrorKind::NotFound, OP, format!("Key '{key_arn}' does not exist"))
            })?;
            Ok(KeyInfo {
                arn: key_arn.to_owned(),
                state: k.state.clone(),
                region: region.to_owned(),
            })
        })
        .await
    }
}
