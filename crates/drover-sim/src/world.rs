//! The simulated world's state: regions with their tables, vaults (with recovery points) and
//! KMS keys; the jobs and idempotency tokens; the seeded generator; the counters tests read.
//! Plus lookups that answer as AWS does when something is missing or busy, and the end of
//! tables' UPDATING and DELETING states (from an index of when each is due, never a scan of
//! the world). What jobs do is in [`crate::jobs`]. The keyed parts are [`Tracked`] maps, so that
//! persistence writes only what a call touched ([`crate::changes`]).

use std::collections::{BTreeMap, BTreeSet};

use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, Millis, RestoreSummary, TableSettings, VaultLock};
use serde::{Deserialize, Serialize};

use crate::err;
use crate::faults::Faults;
use crate::items::{Items, Schema};
use crate::model::{DurationModel, JobKind};
use crate::pitr::PitrState;
use crate::realism::{Realism, Status, TableRealism};
use crate::rng::Rng;
use crate::tracked::Tracked;

/// A DynamoDB table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SimTable {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) schema: Schema,
    pub(crate) kms_key_arn: Option<String>,
    pub(crate) settings: TableSettings,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) items: Items,
    /// UPDATING until then (an UpdateTable in progress).
    pub(crate) busy_until: Option<Millis>,
    /// DELETING until then, then gone.
    pub(crate) deleting_until: Option<Millis>,
    /// What the realism layer remembers about it (settling, TTL changes, pending tags, recent
    /// writes).
    #[serde(default, skip_serializing_if = "TableRealism::is_empty")]
    pub(crate) realism: TableRealism,
    /// When it was created (DescribeTable's `CreationDateTime`); `None` in worlds saved before
    /// the simulator kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created_at: Option<Millis>,
    /// Its point-in-time recovery history while PITR is on ([`crate::pitr`]); `None` while it
    /// is off (and in worlds saved before the simulator kept it: a table with PITR on then
    /// starts its history when it is next asked about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pitr: Option<PitrState>,
    /// What it was restored from (DescribeTable's `RestoreSummary`), for a restored table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) restored_from: Option<RestoreSummary>,
}

impl SimTable {
    /// Its status at `now`, as DescribeTable reports it.
    pub(crate) fn status(&self, now: Millis) -> Status {
        self.realism.status(self.busy_until, self.deleting_until, now)
    }
}

/// A recovery point in a vault: a snapshot of a table's schema and items.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Point {
    pub(crate) arn: String,
    pub(crate) vault: String,
    pub(crate) resource_arn: String,
    pub(crate) created_at: Millis,
    pub(crate) key_arn: Option<String>,
    pub(crate) advanced: bool,
    pub(crate) size: u64,
    pub(crate) schema: Schema,
    pub(crate) items: Items,
    /// DELETING until then, then gone ([`Realism::point_delete_ms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deleting_until: Option<Millis>,
    /// Its tags (AWS Backup ListTags): a backup's are the table's and the job's
    /// `RecoveryPointTags`; a copy keeps its source's. Empty in worlds saved before the
    /// simulator kept them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
    /// Its lifecycle's `DeleteAfterDays` (`None`: kept for ever). A copy given none keeps its
    /// source's. `None` in worlds saved before the simulator kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delete_after_days: Option<u32>,
}

/// An AWS Backup vault and its recovery points, by ARN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Vault {
    pub(crate) arn: String,
    /// The key its points are encrypted with (a vault made without one has the account's AWS
    /// managed `aws/backup`); `None` only in worlds saved before the simulator made that key,
    /// and read as it.
    pub(crate) key_arn: Option<String>,
    pub(crate) points: Tracked<String, Point>,
    /// Its access policy (JSON), if it has one: who else may copy into it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) access_policy: Option<String>,
    /// Its Vault Lock, if one is in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lock: Option<VaultLock>,
}

impl Vault {
    /// A vault without points, policy or lock.
    pub(crate) fn new(arn: String, key_arn: Option<String>) -> Vault {
        Vault { arn, key_arn, points: Tracked::default(), access_policy: None, lock: None }
    }
}

/// A KMS key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Key {
    pub(crate) state: String,
    /// Whether AWS manages it (`KeyManager` `AWS`: `aws/backup`, `aws/dynamodb`, ...).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) aws_managed: bool,
    /// Its key policy (JSON); `None`: the default policy KMS gives a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) policy: Option<String>,
}

impl Key {
    /// A customer managed key in `state`, with the default key policy.
    pub(crate) fn new(state: &str) -> Key {
        Key { state: state.to_owned(), aws_managed: false, policy: None }
    }
}

/// The ARN of a KMS key the simulator makes itself (AWS managed keys, a plan's source vault
/// key), its id derived from its region, account and `what` (UUID-shaped, so that the same
/// world always has the same keys).
pub(crate) fn derived_key_arn(region: &str, account: &str, what: &str) -> String {
    let fnv = |text: &str| {
        text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let a = fnv(&format!("{what} {account} {region}"));
    let b = fnv(&format!("{region} {account} {what}"));
    format!(
        "arn:aws:kms:{region}:{account}:key/{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// An AWS Organization: its accounts, and whether they may copy backups to each other.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Organization {
    /// Its id (`o-` and 10 characters): what `aws:PrincipalOrgID` conditions compare.
    pub id: String,
    /// The management account.
    pub management: String,
    /// The member accounts (the management account is one whether listed or not).
    pub members: BTreeSet<String>,
    /// AWS Backup's cross-account backup (`isCrossAccountBackupEnabled`), which the
    /// management account turns on for the whole organization.
    pub cross_account_backup: bool,
}

impl Organization {
    /// An organization of `management` and `members`, its id derived from the management
    /// account, cross-account backup as given.
    #[must_use]
    pub fn new<'a>(
        management: &str,
        members: impl IntoIterator<Item = &'a str>,
        cross_account_backup: bool,
    ) -> Organization {
        let hash = management.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Organization {
            id: format!("o-{:010x}", hash & 0xff_ffff_ffff),
            management: management.to_owned(),
            members: members.into_iter().filter(|m| *m != management).map(str::to_owned).collect(),
            cross_account_backup,
        }
    }

    /// Whether `account` is in it.
    #[must_use]
    pub fn has(&self, account: &str) -> bool {
        self.management == account || self.members.contains(account)
    }
}

/// What one region holds, and whether it answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RegionState {
    pub(crate) tables: Tracked<String, SimTable>,
    pub(crate) vaults: Tracked<String, Vault>,
    pub(crate) keys: Tracked<String, Key>,
    pub(crate) advanced_backup: bool,
    pub(crate) down: bool,
    /// The account the region is in (`None`: the world's). Each region of a world is in
    /// exactly one account, as each region of a plan is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<String>,
}

/// What a job does when it finishes, and what it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Work {
    Backup {
        table: String,
        vault: String,
        point: Box<Point>,
    },
    Copy {
        source_point: String,
        source_vault: String,
        dest_region: String,
        dest_vault: String,
        dest_point: Option<String>,
        /// The destination vault's account (from its ARN); `None` in worlds saved before
        /// the simulator had accounts (the world's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dest_account: Option<String>,
        /// The copy's `DeleteAfterDays`, when the request gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delete_after_days: Option<u32>,
        /// The role AWS Backup copies as (the principal a destination vault's policy must let
        /// in).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        role: String,
    },
    Restore {
        point: String,
        table: String,
        kms_key_arn: String,
        created: Option<String>,
    },
}

/// An AWS Backup job ([`crate::jobs`] starts, finishes and reports them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) kind: JobKind,
    pub(crate) region: String,
    pub(crate) created_at: Millis,
    pub(crate) complete_at: Millis,
    /// Terminal state once finished: `COMPLETED`, `FAILED`, ...
    pub(crate) outcome: Option<(String, Option<String>)>,
    /// A failure decided at start (fault injection), applied at completion: the terminal
    /// state and the status message.
    pub(crate) doomed: Option<(String, String)>,
    pub(crate) work: Work,
    /// When its duration started, when later than its creation (it sat CREATED: the copy
    /// queue, or another job on its resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) began_at: Option<Millis>,
    /// The table ARN whose one-job-at-a-time slot it takes (a backup or copy job under
    /// [`Realism::one_job_per_resource`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<String>,
    /// Still waiting for its resource: how long it takes once it starts, and the earliest it
    /// may start. Its `complete_at` is meaningless meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) queued: Option<(Millis, Millis)>,
}

/// What a [`World::table_events`] entry is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TableEvent {
    /// A table, by region and name.
    Table(String, String),
    /// A recovery point, by region, vault and ARN.
    Point(String, String, String),
}

/// The whole simulated world. Serializable, so that it can persist across processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// The account of every region that names none.
    pub(crate) account: String,
    /// The Organization the accounts are in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) organization: Option<Organization>,
    pub(crate) rng: Rng,
    pub(crate) regions: BTreeMap<String, RegionState>,
    pub(crate) jobs: Tracked<String, Job>,
    pub(crate) tokens: Tracked<String, String>,
    pub(crate) model: DurationModel,
    /// Faults in force.
    pub faults: Faults,
    /// The AWS behaviours modelled ([`Realism::off`] for worlds saved before there were any).
    #[serde(default)]
    pub realism: Realism,
    /// Calls made, by operation.
    pub calls: BTreeMap<String, u64>,
    /// Jobs started, by kind.
    pub jobs_started: BTreeMap<JobKind, u64>,
    /// Tables created by restores, by (region, name): how often each name was restored.
    pub tables_restored: Tracked<String, u64>,
    /// How often each realism behaviour changed an answer, by the name of its [`Realism`]
    /// field (`tag_delay_ms`: a `list_tags` showed an older tag set; `max_restores`: a restore
    /// was refused; ...): tests check that a behaviour they exercise did happen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effects: BTreeMap<String, u64>,
    /// The latest time the world was asked at (the `now` of its last call): where a resumed
    /// run's clock may start again. `None` in worlds saved before the simulator kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time: Option<Millis>,
    /// Events and metrics the world was sent (EventBridge, SNS, CloudWatch), in order. Kept in
    /// memory only: a saved world does not keep them.
    #[serde(skip)]
    pub sent: Vec<crate::notify::Sent>,
    /// Unfinished jobs by completion time (an index of `jobs`, rebuilt after loading).
    #[serde(skip)]
    pub(crate) due: BTreeSet<(Millis, String)>,
    /// Unfinished jobs, queued ones too (an index of `jobs`, rebuilt after loading): what the
    /// restore quota, the one-job-per-resource slots and point deletions look at.
    #[serde(skip)]
    pub(crate) unfinished: BTreeSet<String>,
    /// When a table or recovery point may change state by itself (UPDATING or DELETING ends, a
    /// logged write can be forgotten), in time order (an index, rebuilt after loading; an entry
    /// may be stale: it is checked when due).
    #[serde(skip)]
    pub(crate) table_events: BTreeSet<(Millis, TableEvent)>,
    /// Point-in-time restores in progress: when each one's table settles, its region and name
    /// (an index of the tables, rebuilt after loading; an entry may be stale: it is checked
    /// when counted).
    #[serde(skip)]
    pub(crate) pitr_restoring: BTreeSet<(Millis, String, String)>,
    /// Whether the indexes above are built.
    #[serde(skip)]
    pub(crate) indexed: bool,
}

impl World {
    /// An empty world for `account`, deterministic under `seed`.
    pub(crate) fn new(account: &str, seed: u64) -> World {
        World {
            account: account.to_owned(),
            organization: None,
            rng: Rng::new(seed),
            regions: BTreeMap::new(),
            jobs: Tracked::default(),
            tokens: Tracked::default(),
            model: DurationModel::default(),
            faults: Faults::default(),
            realism: Realism::off(),
            calls: BTreeMap::new(),
            jobs_started: BTreeMap::new(),
            tables_restored: Tracked::default(),
            effects: BTreeMap::new(),
            time: None,
            sent: Vec::new(),
            due: BTreeSet::new(),
            unfinished: BTreeSet::new(),
            table_events: BTreeSet::new(),
            pitr_restoring: BTreeSet::new(),
            indexed: true,
        }
    }

    /// The account `region` is in (the world's, unless the region names its own).
    #[must_use]
    pub fn account_of(&self, region: &str) -> &str {
        self.regions.get(region).and_then(|r| r.account.as_deref()).unwrap_or(&self.account)
    }

    /// The ARN of the account's AWS managed key `aws/backup` in `region`, made (`Enabled`) on
    /// first use.
    pub(crate) fn aws_backup_key(&mut self, region: &str) -> String {
        let arn = derived_key_arn(region, self.account_of(region), "aws/backup");
        let keys = &mut self.regions.entry(region.to_owned()).or_default().keys;
        if !keys.contains_key(&arn) {
            keys.insert(arn.clone(), Key { aws_managed: true, ..Key::new("Enabled") });
        }
        arn
    }

    /// Counts an effect of the realism behaviour `field` ([`World::effects`]).
    pub(crate) fn saw(&mut self, field: &str) {
        *self.effects.entry(field.to_owned()).or_default() += 1;
    }

    /// Deletes a table at once (test set-up).
    pub fn drop_table(&mut self, region: &str, name: &str) {
        if let Some(r) = self.regions.get_mut(region) {
            r.tables.remove(name);
        }
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

    /// Sets a table's stream view (`None`: no stream) at once, whatever its state (test set-up:
    /// a table someone changed behind drover's back).
    pub fn set_stream_view(&mut self, region: &str, table: &str, view: Option<&str>) {
        if let Some(t) = self.regions.get_mut(region).and_then(|r| r.tables.get_mut(table)) {
            t.settings.stream = view.map(str::to_owned);
        }
    }

    /// Deletes a vault and its recovery points (test set-up).
    pub fn drop_vault(&mut self, region: &str, name: &str) {
        if let Some(r) = self.regions.get_mut(region) {
            r.vaults.remove(name);
        }
    }

    /// The region's state; a region that does not exist is unreachable, as an endpoint
    /// that does not resolve.
    pub(crate) fn region(&mut self, op: &str, region: &str) -> CloudResult<&mut RegionState> {
        self.regions.get_mut(region).ok_or_else(|| {
            err(
                ErrorKind::Transient,
                op,
                format!("could not connect to the endpoint for region {region}"),
            )
        })
    }

    /// A table, or DynamoDB's not-found error.
    pub(crate) fn table(
        &mut self,
        op: &str,
        region: &str,
        name: &str,
    ) -> CloudResult<&mut SimTable> {
        self.region(op, region)?.tables.get_mut(name).ok_or_else(|| {
            err(
                ErrorKind::NotFound,
                op,
                format!("Requested resource not found: Table: {name} not found"),
            )
        })
    }

    /// A table that is ACTIVE (not CREATING, UPDATING or DELETING) at `now`, or DynamoDB's
    /// ResourceInUse error.
    pub(crate) fn active_table(
        &mut self,
        op: &str,
        region: &str,
        name: &str,
        now: Millis,
    ) -> CloudResult<&mut SimTable> {
        let status = self.table(op, region, name)?.status(now);
        let being = match status {
            Status::Active => return self.table(op, region, name),
            Status::Creating => "created",
            Status::Updating => "updated",
            Status::Deleting => "deleted",
        };
        match status {
            Status::Updating => self.saw("update_ms"),
            Status::Deleting => self.saw("delete_ms"),
            _ => self.saw("restore_settle_ms"),
        }
        Err(err(
            ErrorKind::InvalidState,
            op,
            format!("Table {name} is being {being} (ResourceInUseException)"),
        ))
    }

    /// Adds a global secondary index to a table's schema (test set-up: restores recreate it,
    /// and a restored table's indexes are CREATING while it settles).
    pub fn add_global_index(&mut self, region: &str, table: &str, index: &str) {
        if let Some(t) = self.regions.get_mut(region).and_then(|r| r.tables.get_mut(table)) {
            t.schema.global_indexes.push(index.to_owned());
        }
    }

    /// When a restored table settled (or settles): ACTIVE, no restore in progress, every index
    /// ACTIVE ([`Realism::restore_settle_ms`]). `None` for a table that is not there or did not
    /// settle.
    #[must_use]
    pub fn table_settled_at(&self, region: &str, table: &str) -> Option<Millis> {
        self.regions.get(region)?.tables.get(table)?.realism.settled_at()
    }

    /// Notes that a table or recovery point may change state at `at` (UPDATING or DELETING
    /// ends, a logged write can be forgotten).
    pub(crate) fn table_event(&mut self, at: Millis, what: TableEvent) {
        self.table_events.insert((at, what));
    }

    /// Ends the UPDATING and DELETING states due by `now` (deleted tables and recovery points
    /// go) and forgets the writes no backup can miss any more, for the tables and points with
    /// an event due; notes when each one's next event is.
    pub(crate) fn end_table_updates(&mut self, now: Millis) {
        while self.table_events.first().is_some_and(|(at, _)| *at <= now) {
            let Some((_, what)) = self.table_events.pop_first() else { break };
            match what {
                TableEvent::Table(region, name) => self.table_due(region, name, now),
                TableEvent::Point(region, vault, arn) => {
                    let until = self
                        .regions
                        .get(&region)
                        .and_then(|r| r.vaults.get(&vault))
                        .and_then(|v| v.points.get(&arn))
                        .and_then(|p| p.deleting_until);
                    match until {
                        Some(until) if until <= now => {
                            if let Some(v) =
                                self.regions.get_mut(&region).and_then(|r| r.vaults.get_mut(&vault))
                            {
                                v.points.remove(&arn);
                            }
                        }
                        Some(until) => {
                            self.table_event(until, TableEvent::Point(region, vault, arn));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// A table's event is due at `now`: it goes if its DELETING ended, its UPDATING ends, its
    /// old writes are forgotten; its next event is noted.
    fn table_due(&mut self, region: String, name: String, now: Millis) {
        let Some(r) = self.regions.get_mut(&region) else { return };
        let Some(t) = r.tables.get(&name) else { return };
        if t.deleting_until.is_some_and(|until| until <= now) {
            r.tables.remove(&name);
            return;
        }
        let Some(t) = r.tables.get_mut(&name) else { return };
        if t.busy_until.is_some_and(|until| until <= now) {
            t.busy_until = None;
        }
        let forget = t.realism.expire(&self.realism, now);
        let next = [t.busy_until, t.deleting_until, forget].into_iter().flatten().min();
        if let Some(at) = next {
            self.table_event(at, TableEvent::Table(region, name));
        }
    }

    /// Rebuilds the indexes of a world just loaded: unfinished jobs, when they are due, and
    /// every table's and recovery point's next event.
    pub(crate) fn index(&mut self) {
        self.due = self
            .jobs
            .values()
            .filter(|j| j.outcome.is_none() && j.queued.is_none())
            .map(|j| (j.complete_at, j.id.clone()))
            .collect();
        self.unfinished =
            self.jobs.values().filter(|j| j.outcome.is_none()).map(|j| j.id.clone()).collect();
        let mut events = BTreeSet::new();
        let mut pitr_restoring = BTreeSet::new();
        for (region, r) in &self.regions {
            for (name, t) in r.tables.iter() {
                let pitr_restore = t
                    .restored_from
                    .as_ref()
                    .is_some_and(|f| f.source_backup_arn.is_none() && f.source_table_arn.is_some());
                if let Some(at) = t.realism.settled_at().filter(|_| pitr_restore) {
                    pitr_restoring.insert((at, region.clone(), name.clone()));
                }
                let forget = t.realism.forget_at(&self.realism);
                if let Some(at) =
                    [t.busy_until, t.deleting_until, forget].into_iter().flatten().min()
                {
                    events.insert((at, TableEvent::Table(region.clone(), name.clone())));
                }
            }
            for (vault, v) in r.vaults.iter() {
                for (arn, p) in v.points.iter() {
                    if let Some(at) = p.deleting_until {
                        let what = TableEvent::Point(region.clone(), vault.clone(), arn.clone());
                        events.insert((at, what));
                    }
                }
            }
        }
        self.table_events = events;
        self.pitr_restoring = pitr_restoring;
        self.indexed = true;
    }

    /// Whether an unfinished copy job reads the recovery point `arn`.
    pub(crate) fn copy_reading(&self, arn: &str) -> bool {
        self.unfinished_jobs()
            .any(|j| matches!(&j.work, Work::Copy { source_point, .. } if source_point == arn))
    }

    /// The jobs not finished yet (queued ones too).
    pub(crate) fn unfinished_jobs(&self) -> impl Iterator<Item = &Job> {
        self.unfinished.iter().filter_map(|id| self.jobs.get(id))
    }
}
