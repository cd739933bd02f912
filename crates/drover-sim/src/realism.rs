//! The realism layer: the documented ways in which AWS is not an ideal service, each modelled
//! once, here, named after what AWS does, with its source quoted, and switched by its own field
//! of [`Realism`] (`0` or `false`: off). The same behaviours, under the same names, are in the
//! emulator's `tests/emulator/realism.py`; durations here are AWS's own (the simulator runs in
//! simulated time), where the emulator scales them down to seconds.
//!
//! The service code (`tables`, `backup`, `jobs`) asks this module what AWS would do: what
//! `ListTagsOfResource` shows, what state a table is in, whether a change is refused, what a
//! backup's snapshot holds, when a job starts, whether a call meets a passing fault. Per-table
//! state lives on the table ([`TableRealism`]), per-job state on the job, the knobs on the world.
//! Every random draw comes from the world's seeded generator, and only while its knob is on, so
//! a world with realism off draws exactly what it drew before this layer existed.
//!
//! Sources: \[BC-d\] and \[BC-b\] are botocore's `dynamodb/2012-08-10` and `backup/2018-11-15`
//! `service-2.json` (the API reference's text); page names are docs.aws.amazon.com's.

use std::collections::BTreeMap;

use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, Item, Millis};
use serde::{Deserialize, Serialize};

use crate::err;
use crate::items::Items;
use crate::model::JobKind;
use crate::rng::Rng;

/// The AWS behaviours the simulator models, one field each (`0` or `false`: off). Durations
/// are milliseconds of the simulator's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Realism {
    /// **Tagging is asynchronous.** \[BC-d\] TagResource: "TagResource is an asynchronous
    /// operation. If you issue a ListTagsOfResource request immediately after a TagResource
    /// request, DynamoDB might return your previous tag set, if there was one, or an empty tag
    /// set ... Wait for a few seconds, and then try the ListTagsOfResource request again."
    /// Stricter reading: `list_tags` shows the previous set until this long after each change.
    pub tag_delay_ms: u64,
    /// **Continuous backups are enabled late.** \[BC-d\] UpdateContinuousBackups may answer
    /// ContinuousBackupsUnavailableException ("Backups have not yet been enabled for this
    /// table"); projects wait and retry after creating a table (scalar-labs/scalardb#347,
    /// nasa/cumulus#1116: PITR "fails to be enabled if it is running against newly created
    /// tables"). For this long after a table became ACTIVE (created, or restored and out of
    /// CREATING), `set_point_in_time_recovery` fails `Transient` with that exception.
    pub pitr_unavailable_ms: u64,
    /// **The latest restorable time lags.** \[BC-d\] DescribeContinuousBackups:
    /// "`LatestRestorableDateTime` is typically 5 minutes before the current time." A table's
    /// `continuous_backups` reports its latest restorable time this long before now (never
    /// before its earliest), and a point-in-time restore to a later instant is refused
    /// (InvalidRestoreTimeException). Off: the latest restorable time is now.
    pub pitr_latest_lag_ms: u64,
    /// **UpdateTable is asynchronous.** \[BC-d\] UpdateTable: "while it's executing, the table
    /// status changes from ACTIVE to UPDATING. While it's UPDATING, you can't issue another
    /// UpdateTable request" (ResourceInUseException). After `set_stream` or
    /// `set_deletion_protection` the table is UPDATING this long; an update, a TTL change or a
    /// delete meanwhile is refused (`InvalidState`), a PITR change is not
    /// (UpdateContinuousBackups does not list ResourceInUseException).
    pub update_ms: u64,
    /// **Time to live is enabled slowly.** \[BC-d\] UpdateTimeToLive: "It can take up to one
    /// hour for the change to fully process"; `TimeToLiveStatus` has ENABLING. After
    /// `enable_ttl`, `time_to_live` reports ENABLING this long, then ENABLED.
    pub ttl_enabling_ms: u64,
    /// **One time-to-live change an hour.** \[BC-d\] UpdateTimeToLive: "Any additional
    /// UpdateTimeToLive calls for the same table during this one hour duration result in a
    /// ValidationException." A second `enable_ttl` within this long of a change fails `Fatal`.
    pub ttl_change_window_ms: u64,
    /// **DeleteTable is asynchronous.** \[BC-d\] DeleteTable: "After a DeleteTable request, the
    /// specified table is in the DELETING state until DynamoDB completes the deletion." The
    /// table keeps its name while DELETING (a restore finishing into it fails, "Table already
    /// exists") and is gone this long after the request.
    pub delete_ms: u64,
    /// **DeleteRecoveryPoint is asynchronous.** \[BC-b\] RecoveryPointStatus has DELETING, and
    /// InvalidResourceStateException: "Backup is already performing an action on this recovery
    /// point. It can't perform the action you requested until the first action finishes." A
    /// deleted recovery point is listed DELETING for this long, then gone; meanwhile a second
    /// `delete_recovery_point` fails `Transient` and a copy or restore from it is refused
    /// (InvalidRequestException, `InvalidState`). (The emulator's `delete_seconds` times both
    /// deletions.)
    pub point_delete_ms: u64,
    /// **Restored tables settle.** A restore job's COMPLETED does not mean the table is ready:
    /// \[BC-d\] TableStatus CREATING ("The table is being created"),
    /// `RestoreSummary.RestoreInProgress`, IndexStatus CREATING ("The index is being created");
    /// a table is ready when it is ACTIVE, no restore is in progress and every global secondary
    /// index is ACTIVE (aws-dr-facts.md §5). For the first half of this after its job completes
    /// the table is CREATING, for the second half ACTIVE with `restore_in_progress` and its
    /// indexes CREATING, then ready.
    pub restore_settle_ms: u64,
    /// **Tables that are not ACTIVE are not found.** \[BC-d\] ResourceNotFoundException: "The
    /// operation tried to access a nonexistent table or index. The resource might not be
    /// specified correctly, or its status might not be ACTIVE." Tag reads and changes of a
    /// CREATING or DELETING table, and item reads, writes and scans of a CREATING one, fail
    /// `NotFound` (a DELETING table still serves items: "DynamoDB might continue to accept data
    /// read and write operations ... on a table in the DELETING state", DeleteTable).
    pub inactive_tables_not_found: bool,
    /// **Backups are not a point in time.** \[BC-d\] CreateBackup: "the backup is guaranteed to
    /// contain all data committed to the table up to 14:24:00, and data committed after
    /// 14:26:00 will not be. The backup might contain data modifications made between 14:24:00
    /// and 14:26:00" (a request at 14:25:00); AWS Backup's advanced DynamoDB backups are "not
    /// instantaneous" (UsageNotesAWS). Stricter reading: a backup job's snapshot misses every
    /// item write made in the last this-long before StartBackupJob.
    pub backup_lag_ms: u64,
    /// **Jobs are read eventually consistently.** AWS Backup documents no read-after-write
    /// guarantee for its jobs (and \[BC-d\] DescribeTable "uses an eventually consistent
    /// query"): `Describe*Job` answers not-found for a job younger than this. Works with
    /// [`Faults::unseen_jobs_ms`](crate::Faults::unseen_jobs_ms), the older fault of the same
    /// effect: the longer of the two applies.
    pub unseen_jobs_ms: u64,
    /// **Restores are limited.** \[BC-d\] RestoreTableFromBackup: "Any number of users can
    /// execute up to 50 concurrent restores (any type of restore) in a given account"
    /// (ServiceQuotas: LimitExceededException past it). With this many unfinished restore jobs
    /// in a region, `start_restore_job` fails `Throttled` with LimitExceededException.
    pub max_restores: u32,
    /// **One backup or copy job per resource.** AWS Backup quotas (aws-backup-limits): "Concurrent
    /// backup and copy jobs per resource: 1"; recov-point-create-a-copy: others wait in
    /// CREATED. A backup or copy job of a table (a copy's resource is its recovery point's
    /// table) started while another one runs waits CREATED until it ends, in start order, and
    /// its duration counts from when it starts.
    pub one_job_per_resource: bool,
    /// **Copy jobs wait in CREATED.** recov-point-create-a-copy: "If AWS Backup encounters any
    /// system errors, the copy job enters a retry phase that lasts for 2 hours. During this
    /// time, the copy job status remains in the CREATED state". Each copy job sits CREATED for
    /// a seeded random time in `[0, this)` before its duration starts.
    pub copy_queue_ms: u64,
    /// **Servers fault, and it passes.** \[BC-d\] InternalServerError, \[BC-b\]
    /// ServiceUnavailableException and DependencyFailureException, KMS's KMSInternalException
    /// ("The request can be retried") are all `"fault": true` (HTTP 500), and load balancers
    /// answer plain 503s. This share of every call (any service, seeded) fails `Transient`
    /// before the service acts on it.
    pub fault_rate: f64,
}

impl Default for Realism {
    /// [`Realism::off`].
    fn default() -> Self {
        Realism::off()
    }
}

/// How long UpdateTable keeps a table UPDATING, and DeleteTable DELETING, in [`Realism::off`]:
/// the simulator had these two states before the realism layer.
const LEGACY_STATE_MS: u64 = 5_000;

impl Realism {
    /// The simulator as it was before the realism layer: every behaviour off, except the
    /// UPDATING and DELETING states it always had (5 s each; set [`Realism::update_ms`] and
    /// [`Realism::delete_ms`] to 0 for an ideal service). Worlds saved without realism load
    /// with this.
    #[must_use]
    pub fn off() -> Realism {
        Realism {
            tag_delay_ms: 0,
            pitr_unavailable_ms: 0,
            pitr_latest_lag_ms: 0,
            update_ms: LEGACY_STATE_MS,
            ttl_enabling_ms: 0,
            ttl_change_window_ms: 0,
            delete_ms: LEGACY_STATE_MS,
            point_delete_ms: 0,
            restore_settle_ms: 0,
            inactive_tables_not_found: false,
            backup_lag_ms: 0,
            unseen_jobs_ms: 0,
            max_restores: 0,
            one_job_per_resource: false,
            copy_queue_ms: 0,
            fault_rate: 0.0,
        }
    }

    /// Every behaviour on, with AWS-like durations and quotas: tags visible 5 s after a change;
    /// PITR unavailable for 60 s after a table becomes ACTIVE; the latest restorable time 5
    /// minutes before now; UPDATING 5 s; TTL ENABLING 60 s
    /// and one TTL change an hour; DELETING 5 s; a restored table settling for 60 s after its
    /// job; backups missing the writes of the minute before them; jobs unseen for 5 s; 50
    /// concurrent restores a region; one backup or copy job per table; copy jobs CREATED for up
    /// to 5 minutes; 1% of calls meeting a passing server fault; recovery points DELETING 5 s.
    #[must_use]
    pub fn aws() -> Realism {
        Realism {
            tag_delay_ms: 5_000,
            pitr_unavailable_ms: 60_000,
            pitr_latest_lag_ms: 300_000,
            update_ms: 5_000,
            ttl_enabling_ms: 60_000,
            ttl_change_window_ms: 3_600_000,
            delete_ms: 5_000,
            point_delete_ms: 5_000,
            restore_settle_ms: 60_000,
            inactive_tables_not_found: true,
            backup_lag_ms: 60_000,
            unseen_jobs_ms: 5_000,
            max_restores: 50,
            one_job_per_resource: true,
            copy_queue_ms: 300_000,
            fault_rate: 0.01,
        }
    }

    /// The emulator's `--realism` (`tests/emulator/realism.py`, `KNOBS`): every behaviour on,
    /// with durations scaled down to a second or less and a quota of 4 restores, for tests
    /// that run in real time (the ports' contract). The emulator's two knobs the ports cannot
    /// show (list pages, a `Start*Job` replay answered without its id) are the adapter's
    /// business; its tables that are not ACTIVE are always not found.
    #[must_use]
    pub fn emulator() -> Realism {
        Realism {
            tag_delay_ms: 1_000,
            pitr_unavailable_ms: 1_000,
            pitr_latest_lag_ms: 2_000,
            update_ms: 500,
            ttl_enabling_ms: 500,
            ttl_change_window_ms: 3_000,
            delete_ms: 1_000,
            point_delete_ms: 1_000,
            restore_settle_ms: 1_000,
            inactive_tables_not_found: true,
            backup_lag_ms: 1_000,
            unseen_jobs_ms: 500,
            max_restores: 4,
            one_job_per_resource: true,
            copy_queue_ms: 1_000,
            fault_rate: 0.02,
        }
    }

    /// Without the behaviours that only add noise to a run's timing and calls: passing server
    /// faults ([`Realism::fault_rate`]) and the copy queue ([`Realism::copy_queue_ms`]). What
    /// the CLI's simulated cloud and estimates run with: every delay, state, quota and lag,
    /// nothing random.
    #[must_use]
    pub fn without_noise(self) -> Realism {
        Realism { fault_rate: 0.0, copy_queue_ms: 0, ..self }
    }

    /// Until when a recovery point deleted at `now` is DELETING, if it lingers
    /// ([`Realism::point_delete_ms`]).
    pub(crate) fn point_lingers(&self, now: Millis) -> Option<Millis> {
        (self.point_delete_ms > 0).then(|| now.saturating_add(ms(self.point_delete_ms)))
    }

    /// Whether the behaviours that keep a job waiting for its resource apply to `kind`.
    pub(crate) fn queues(&self, kind: JobKind) -> bool {
        self.one_job_per_resource && matches!(kind, JobKind::Backup | JobKind::Copy)
    }

    /// How long a new job of `kind` sits CREATED before its duration starts (copy jobs,
    /// [`Realism::copy_queue_ms`]); draws from `rng` only while the knob is on.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub(crate) fn start_delay(&self, kind: JobKind, rng: &mut Rng) -> Millis {
        if kind != JobKind::Copy || self.copy_queue_ms == 0 {
            return 0;
        }
        (rng.unit() * self.copy_queue_ms as f64) as Millis
    }

    /// Refuses a restore when `unfinished` restore jobs already run in the region
    /// ([`Realism::max_restores`]).
    pub(crate) fn restore_quota(&self, op: &str, unfinished: usize) -> CloudResult<()> {
        if self.max_restores > 0 && unfinished >= self.max_restores as usize {
            return Err(err(
                ErrorKind::Throttled,
                op,
                "LimitExceededException: Too many concurrent restore jobs for this account in \
                 this Region. Try again later.",
            ));
        }
        Ok(())
    }

    /// Whether `Describe*Job` sees, at `now`, a job that started at `created_at`
    /// ([`Realism::unseen_jobs_ms`]).
    pub(crate) fn job_visible(&self, created_at: Millis, now: Millis) -> bool {
        now >= created_at.saturating_add(ms(self.unseen_jobs_ms))
    }

    /// The passing server fault a call to `op` meets, if any ([`Realism::fault_rate`]): one
    /// draw decides whether, a second which of the faults `op`'s service answers with.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn passing_fault(&self, op: &str, rng: &mut Rng) -> CloudResult<()> {
        if self.fault_rate <= 0.0 || rng.unit() >= self.fault_rate {
            return Ok(());
        }
        const PLAIN_503: &str = "HTTP 503 Service Unavailable (empty body)";
        let faults: &[&str] = match service_of(op) {
            Service::DynamoDb => &["InternalServerError (HTTP 500): Internal server error"],
            Service::Backup => &[
                "ServiceUnavailableException (HTTP 500): The request failed due to a temporary \
                 failure of the server.",
                "DependencyFailureException (HTTP 500): A dependent AWS service or resource \
                 returned an error to the AWS Backup service, and the action cannot be completed.",
            ],
            Service::Kms => {
                &["KMSInternalException (HTTP 500): The request was rejected because an internal \
                 exception occurred. The request can be retried."]
            }
        };
        let pick = (rng.next_rand() % (faults.len() as u64 + 1)) as usize;
        Err(err(ErrorKind::Transient, op, faults.get(pick).copied().unwrap_or(PLAIN_503)))
    }
}

/// What DeleteRecoveryPoint answers for a point already being deleted
/// ([`Realism::point_delete_ms`]): a passing error (the adapter classifies
/// InvalidResourceStateException, "Try again later", as transient).
pub(crate) fn point_already_deleting(op: &str, arn: &str) -> drover_engine::CloudError {
    err(
        ErrorKind::Transient,
        op,
        format!(
            "InvalidResourceStateException: Backup is already performing an action on this \
             recovery point ({arn} is being deleted)"
        ),
    )
}

/// What StartCopyJob and StartRestoreJob answer for a point being deleted
/// ([`Realism::point_delete_ms`]).
pub(crate) fn point_deleting(op: &str, arn: &str) -> drover_engine::CloudError {
    err(
        ErrorKind::InvalidState,
        op,
        format!("InvalidRequestException: Recovery point {arn} is being deleted"),
    )
}

/// A duration knob as [`Millis`].
fn ms(v: u64) -> Millis {
    Millis::try_from(v).unwrap_or(Millis::MAX)
}

enum Service {
    DynamoDb,
    Backup,
    Kms,
}

/// The service an operation of the ports belongs to.
fn service_of(op: &str) -> Service {
    match op {
        "DescribeKey" => Service::Kms,
        "StartBackupJob"
        | "DescribeBackupJob"
        | "StartCopyJob"
        | "DescribeCopyJob"
        | "StartRestoreJob"
        | "DescribeRestoreJob"
        | "ListRecoveryPointsByBackupVault"
        | "DescribeBackupVault"
        | "DescribeRegionSettings" => Service::Backup,
        _ => Service::DynamoDb,
    }
}

/// One item write, kept while a backup could still miss it ([`Realism::backup_lag_ms`]): when,
/// the item's storage key, and the explicit item it replaced (`None`: there was none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Write {
    at: Millis,
    key: String,
    before: Option<Item>,
}

/// What the realism layer remembers about one table. Empty (and not saved) for a table none
/// of the behaviours has touched.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TableRealism {
    /// When the table became (or becomes) ACTIVE, when the simulator saw it happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_at: Option<Millis>,
    /// A restored table's settling: CREATING until the first, restore in progress (indexes
    /// CREATING) until the second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settle: Option<(Millis, Millis)>,
    /// TTL is ENABLING until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl_enabling_until: Option<Millis>,
    /// Another TTL change is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl_window_until: Option<Millis>,
    /// The tag set `ListTagsOfResource` shows while changes are pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags_shown: Option<BTreeMap<String, String>>,
    /// Tag sets not visible yet, oldest first: from when each shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tag_versions: Vec<(Millis, BTreeMap<String, String>)>,
    /// Recent item writes, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    writes: Vec<Write>,
}

/// A table's status, as DescribeTable reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Creating,
    Updating,
    Deleting,
    Active,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "CREATING",
            Status::Updating => "UPDATING",
            Status::Deleting => "DELETING",
            Status::Active => "ACTIVE",
        }
    }
}

impl TableRealism {
    /// Whether nothing is remembered (the table is saved without it).
    pub(crate) fn is_empty(&self) -> bool {
        self.active_at.is_none()
            && self.settle.is_none()
            && self.ttl_enabling_until.is_none()
            && self.ttl_window_until.is_none()
            && self.tags_shown.is_none()
            && self.tag_versions.is_empty()
            && self.writes.is_empty()
    }

    /// A table created ACTIVE at `now`.
    pub(crate) fn created(now: Millis) -> TableRealism {
        TableRealism { active_at: Some(now), ..TableRealism::default() }
    }

    /// A table a restore job created at `at` ([`Realism::restore_settle_ms`]).
    pub(crate) fn restored(realism: &Realism, at: Millis) -> TableRealism {
        let settle = ms(realism.restore_settle_ms);
        if settle == 0 {
            return TableRealism::created(at);
        }
        let active = at.saturating_add(settle / 2);
        TableRealism {
            active_at: Some(active),
            settle: Some((active, at.saturating_add(settle))),
            ..TableRealism::default()
        }
    }

    /// A table a point-in-time restore created at `now`, CREATING until `done` (the restore's
    /// own duration), then settling as a table a restore job created at `done` does
    /// ([`Realism::restore_settle_ms`]). Ready at once when both are zero.
    pub(crate) fn restoring_until(realism: &Realism, now: Millis, done: Millis) -> TableRealism {
        let settle = ms(realism.restore_settle_ms);
        if settle == 0 && done <= now {
            return TableRealism::created(now);
        }
        let active = done.saturating_add(settle / 2);
        TableRealism {
            active_at: Some(active),
            settle: Some((active, done.saturating_add(settle))),
            ..TableRealism::default()
        }
    }

    /// The table's status at `now`, given its UPDATING and DELETING states: DELETING, else
    /// CREATING (a restored table settling), else UPDATING, else ACTIVE.
    pub(crate) fn status(
        &self,
        busy_until: Option<Millis>,
        deleting_until: Option<Millis>,
        now: Millis,
    ) -> Status {
        if deleting_until.is_some() {
            Status::Deleting
        } else if self.settle.is_some_and(|(creating, _)| now < creating) {
            Status::Creating
        } else if busy_until.is_some_and(|u| u > now) {
            Status::Updating
        } else {
            Status::Active
        }
    }

    /// Whether a restore into the table is still in progress at `now` (its global secondary
    /// indexes are CREATING meanwhile).
    pub(crate) fn restoring(&self, now: Millis) -> bool {
        self.settle.is_some_and(|(_, settled)| now < settled)
    }

    /// When a restored table is (or was) ready: ACTIVE, no restore in progress, every index
    /// ACTIVE. `None` for a table that did not settle.
    pub(crate) fn settled_at(&self) -> Option<Millis> {
        self.settle.map(|(_, settled)| settled)
    }

    /// The ContinuousBackupsUnavailableException UpdateContinuousBackups answers at `now`, if
    /// the table became ACTIVE too recently ([`Realism::pitr_unavailable_ms`]).
    pub(crate) fn pitr_unavailable(
        &self,
        realism: &Realism,
        op: &str,
        now: Millis,
    ) -> CloudResult<()> {
        let window = ms(realism.pitr_unavailable_ms);
        match self.active_at {
            Some(active) if window > 0 && now < active.saturating_add(window) => Err(err(
                ErrorKind::Transient,
                op,
                "ContinuousBackupsUnavailableException: Backups are being enabled for the table",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses a TTL change within [`Realism::ttl_change_window_ms`] of the last one.
    pub(crate) fn ttl_change(&self, op: &str, now: Millis) -> CloudResult<()> {
        if self.ttl_window_until.is_some_and(|until| now < until) {
            return Err(err(
                ErrorKind::Fatal,
                op,
                "ValidationException: Time to live has been modified multiple times within a \
                 fixed interval",
            ));
        }
        Ok(())
    }

    /// Notes a TTL change at `now`: ENABLING for a while, and the window for the next change.
    pub(crate) fn ttl_changed(&mut self, realism: &Realism, now: Millis) {
        let enabling = ms(realism.ttl_enabling_ms);
        self.ttl_enabling_until = (enabling > 0).then(|| now.saturating_add(enabling));
        let window = ms(realism.ttl_change_window_ms);
        self.ttl_window_until = (window > 0).then(|| now.saturating_add(window));
    }

    /// The `TimeToLiveStatus` of enabled TTL at `now`: ENABLING, then ENABLED.
    pub(crate) fn ttl_status(&self, now: Millis) -> &'static str {
        if self.ttl_enabling_until.is_some_and(|until| now < until) {
            "ENABLING"
        } else {
            "ENABLED"
        }
    }

    /// The tags `ListTagsOfResource` shows at `now` of a table whose tags are `tags`
    /// ([`Realism::tag_delay_ms`]).
    pub(crate) fn tags_shown(
        &mut self,
        tags: &BTreeMap<String, String>,
        now: Millis,
    ) -> BTreeMap<String, String> {
        while self.tag_versions.first().is_some_and(|(from, _)| *from <= now) {
            let (_, shown) = self.tag_versions.remove(0);
            self.tags_shown = Some(shown);
        }
        if self.tag_versions.is_empty() {
            self.tags_shown = None;
            return tags.clone();
        }
        self.tags_shown.clone().unwrap_or_default()
    }

    /// Notes that the table's tags changed at `now` from `before` to `after`: the new set shows
    /// [`Realism::tag_delay_ms`] later, the previous one until then.
    pub(crate) fn tags_changed(
        &mut self,
        realism: &Realism,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
        now: Millis,
    ) {
        let delay = ms(realism.tag_delay_ms);
        let shown = self.tags_shown(before, now);
        if delay == 0 {
            return;
        }
        if self.tag_versions.is_empty() {
            self.tags_shown = Some(shown);
        }
        self.tag_versions.push((now.saturating_add(delay), after.clone()));
    }

    /// Notes an item write at `now` to the item stored under `key`, which was `before`
    /// ([`Realism::backup_lag_ms`]); returns when it can be forgotten, if it is kept. Writes
    /// older than the lag are forgotten.
    pub(crate) fn wrote(
        &mut self,
        realism: &Realism,
        key: String,
        before: Option<Item>,
        now: Millis,
    ) -> Option<Millis> {
        let lag = ms(realism.backup_lag_ms);
        self.forget_writes(now.saturating_sub(lag));
        (lag > 0).then(|| {
            self.writes.push(Write { at: now, key, before });
            now.saturating_add(lag)
        })
    }

    /// The table's `items` as a backup requested at `now` holds them: without the writes of
    /// the last [`Realism::backup_lag_ms`] (undone, newest first); and how many writes it
    /// misses.
    pub(crate) fn backup_of(
        &mut self,
        realism: &Realism,
        items: &Items,
        now: Millis,
    ) -> (Items, usize) {
        let since = now.saturating_sub(ms(realism.backup_lag_ms));
        self.forget_writes(since);
        let mut out = items.clone();
        for w in self.writes.iter().rev() {
            match &w.before {
                Some(item) => out.explicit.insert(w.key.clone(), item.clone()),
                None => out.explicit.remove(&w.key),
            };
        }
        (out, self.writes.len())
    }

    /// Forgets the writes made at or before `at` (no backup can miss them any more).
    fn forget_writes(&mut self, at: Millis) {
        let old = self.writes.iter().take_while(|w| w.at <= at).count();
        self.writes.drain(..old);
    }

    /// Forgets what no longer matters at `now` (writes older than
    /// [`Realism::backup_lag_ms`]); returns when something next will, if anything.
    pub(crate) fn expire(&mut self, realism: &Realism, now: Millis) -> Option<Millis> {
        let lag = ms(realism.backup_lag_ms);
        self.forget_writes(now.saturating_sub(lag));
        self.forget_at(realism)
    }

    /// When the oldest logged write can be forgotten, if any is logged.
    pub(crate) fn forget_at(&self, realism: &Realism) -> Option<Millis> {
        self.writes.first().map(|w| w.at.saturating_add(ms(realism.backup_lag_ms)))
    }
}
