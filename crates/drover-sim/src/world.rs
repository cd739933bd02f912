//! The simulated world's state: regions with their tables, vaults (with recovery points) and
//! KMS keys; the jobs and idempotency tokens; the seeded generator; the counters tests read.
//! Plus lookups that answer as AWS does when something is missing or busy, and the end of
//! tables' UPDATING and DELETING states. What jobs do is in [`crate::jobs`].

use std::collections::{BTreeMap, BTreeSet};

use drover_engine::ErrorKind;
use drover_engine::ports::{CloudResult, Millis, TableSettings};
use serde::{Deserialize, Serialize};

use crate::err;
use crate::faults::Faults;
use crate::items::{Items, Schema};
use crate::model::{DurationModel, JobKind};
use crate::realism::{Realism, Status, TableRealism};
use crate::rng::Rng;

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
}

/// An AWS Backup vault and its recovery points, by ARN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Vault {
    pub(crate) arn: String,
    pub(crate) key_arn: Option<String>,
    pub(crate) points: BTreeMap<String, Point>,
}

/// A KMS key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Key {
    pub(crate) state: String,
}

/// What one region holds, and whether it answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RegionState {
    pub(crate) tables: BTreeMap<String, SimTable>,
    pub(crate) vaults: BTreeMap<String, Vault>,
    pub(crate) keys: BTreeMap<String, Key>,
    pub(crate) advanced_backup: bool,
    pub(crate) down: bool,
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

/// The whole simulated world. Serializable, so that it can persist across processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub(crate) account: String,
    pub(crate) rng: Rng,
    pub(crate) regions: BTreeMap<String, RegionState>,
    pub(crate) jobs: BTreeMap<String, Job>,
    pub(crate) tokens: BTreeMap<String, String>,
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
    pub tables_restored: BTreeMap<String, u64>,
    /// How often each realism behaviour changed an answer, by the name of its [`Realism`]
    /// field (`tag_delay_ms`: a `list_tags` showed an older tag set; `max_restores`: a restore
    /// was refused; ...): tests check that a behaviour they exercise did happen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effects: BTreeMap<String, u64>,
    /// Unfinished jobs by completion time (an index of `jobs`, rebuilt after loading).
    #[serde(skip)]
    pub(crate) due: BTreeSet<(Millis, String)>,
    /// The earliest time a table stops being UPDATING or DELETING, if any.
    #[serde(skip)]
    pub(crate) next_table_event: Option<Millis>,
    /// Whether the indexes above are built.
    #[serde(skip)]
    pub(crate) indexed: bool,
}

impl World {
    /// An empty world for `account`, deterministic under `seed`.
    pub(crate) fn new(account: &str, seed: u64) -> World {
        World {
            account: account.to_owned(),
            rng: Rng::new(seed),
            regions: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tokens: BTreeMap::new(),
            model: DurationModel::default(),
            faults: Faults::default(),
            realism: Realism::off(),
            calls: BTreeMap::new(),
            jobs_started: BTreeMap::new(),
            tables_restored: BTreeMap::new(),
            effects: BTreeMap::new(),
            due: BTreeSet::new(),
            next_table_event: None,
            indexed: true,
        }
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

    /// Notes that a table changes state at `at` (UPDATING or DELETING ends, a logged write
    /// can be forgotten).
    pub(crate) fn table_event(&mut self, at: Millis) {
        self.next_table_event = Some(self.next_table_event.map_or(at, |n| n.min(at)));
    }

    /// Ends the UPDATING and DELETING states due by `now` (deleted tables and recovery points
    /// go), forgets the writes no backup can miss any more, and notes when the next such event
    /// is due.
    pub(crate) fn end_table_updates(&mut self, now: Millis) {
        if self.next_table_event.is_some_and(|at| at <= now) {
            let mut next: Option<Millis> = None;
            let mut note = |until: Millis| next = Some(next.map_or(until, |n| n.min(until)));
            for region in self.regions.values_mut() {
                region.tables.retain(|_, t| t.deleting_until.is_none_or(|until| until > now));
                for t in region.tables.values_mut() {
                    if t.busy_until.is_some_and(|until| until <= now) {
                        t.busy_until = None;
                    }
                    let forget = t.realism.expire(&self.realism, now);
                    [t.busy_until, t.deleting_until, forget]
                        .into_iter()
                        .flatten()
                        .for_each(&mut note);
                }
                for vault in region.vaults.values_mut() {
                    vault.points.retain(|_, p| p.deleting_until.is_none_or(|until| until > now));
                    vault.points.values().filter_map(|p| p.deleting_until).for_each(&mut note);
                }
            }
            self.next_table_event = next;
        }
    }
}
