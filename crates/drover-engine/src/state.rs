//! Run state: steps, their declared transitions, and replay of a journal into state.
//!
//! Each (table, target, step kind) is a small state machine:
//!
//! ```text
//! Pending ──began──► Running ──job-requested──► Requested ──job-started──► Attached
//!    │                  │  │                        │                          │
//!    │                  │  └──────────succeeded/failed─────────────────────────┤
//!    └──blocked──► Blocked                                                      ▼
//!                     └───────retried (on resume)──► Pending ◄── Failed / Succeeded (teardown)
//! ```
//!
//! A running step may also journal `hook-finished` (one of its validation hooks ended), which
//! leaves it running.
//!
//! A transition the table does not allow is a replay error: the journal and the code
//! disagree, and the run stops rather than guess (Temporal's non-determinism check).

use std::collections::BTreeMap;
use std::fmt;

use drover_plan::{Mode, StepKind};
use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::journal::{Entry, Record};
use crate::ports::{Item, Millis, TableSchema, VaultLock};

/// Which step: a table, the target region (none for a drill's backup, which happens once in
/// the source region), and the kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepKey {
    /// Table name (in the plan).
    pub table: String,
    /// Target region; `None` for steps in the source region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Step kind.
    pub kind: StepKind,
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Some(t) => write!(f, "{} {} {}", self.table, t, self.kind.as_str()),
            None => write!(f, "{} {}", self.table, self.kind.as_str()),
        }
    }
}

/// The journal's first record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Run id.
    pub run_id: String,
    /// Drill or failover.
    pub mode: Mode,
    /// Plan name.
    pub plan_name: String,
    /// SHA-256 of the plan file's bytes (hex).
    pub plan_hash: String,
    /// Where the plan was read from.
    pub plan_path: String,
    /// The plan text, so a run can be resumed and reported without the file.
    pub plan_text: String,
    /// drover's version.
    pub drover_version: String,
    /// Options the run was started with.
    pub options: RunOptions,
}

/// Options of a run, recorded in its header so `resume` needs none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Keep drill tables (no teardown).
    pub keep: bool,
    /// Concurrency limits.
    pub limits: Limits,
    /// The cloud the run talks to, as the CLI described it (`sim`, `aws`) and its settings.
    pub cloud: serde_json::Value,
    /// Failover: recover to the newest consistent point at or before this time (`--at`);
    /// by default, the newest consistent point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_at: Option<Millis>,
    /// The wait between the drill marker (and source digest) and the backup, in ms, when not
    /// the default (`--backup-settle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_settle_ms: Option<u64>,
    /// The first and shortest wait between polls, in ms, when not the default
    /// (`--poll-interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    /// The read budget of scans of source tables, over the plan's (`--source-read-units`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_read_units: Option<u32>,
    /// A run restoring from point-in-time recovery (`recover`, `drill --pitr`): the instant,
    /// chosen once before the run started, and where the tables go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pitr: Option<Pitr>,
    /// Where events go besides the plan's `notify:` (`--event-bus`, `--sns-topic`).
    #[serde(default, skip_serializing_if = "crate::notify::Channels::is_empty")]
    pub notify: crate::notify::Channels,
    /// Put the run's results as CloudWatch metrics at its end (`--publish-metrics`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_metrics: bool,
}

/// What a point-in-time restore restored from, for validation and the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrRestored {
    /// The source table.
    pub source_table_arn: String,
    /// The instant its data is from (the restored table's `RestoreSummary`).
    pub restore_time: Millis,
    /// The source table's key schema and indexes when it was restored (a point-in-time
    /// restore takes them from the source's current settings).
    pub schema: TableSchema,
    /// The key the restored table must be encrypted with: the target's, or, restored beside
    /// the source, the source table's (`None`: an AWS-owned key).
    pub kms_key_arn: Option<String>,
    /// The source table's size when it was restored (DescribeTable's, hours old at worst): what
    /// calibration fits point-in-time restore durations to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// How a run restores from point-in-time recovery (journaled in the header: a resumed run
/// restores to the same instant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pitr {
    /// The instant every table is restored to (whole seconds), inside every source table's
    /// restorable window when it was chosen.
    pub at: Millis,
    /// How the instant was asked for.
    pub requested: PitrTime,
    /// When the instant was chosen: the run's RPO is `chosen_at - at`.
    pub chosen_at: Millis,
    /// Restore beside the damaged tables, in the source region, instead of into the targets.
    #[serde(default)]
    pub into_source: bool,
    /// The new tables' names.
    pub names: PitrNames,
}

/// How the instant of a point-in-time run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PitrTime {
    /// `--to TIME`.
    To,
    /// `--before-minutes N`: N minutes before it was chosen.
    BeforeMinutes {
        /// N.
        minutes: u32,
    },
    /// `--latest`: the latest instant every table can be restored to.
    Latest,
}

/// The names of the tables a point-in-time run restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "template", rename_all = "kebab-case")]
pub enum PitrNames {
    /// A template of `{table}`, `{time}` (the instant, `20261124T103000Z`), `{run}` and
    /// `{region}`.
    Template(String),
    /// The plan's own table names (`--names-from-plan`: a cut-over, once the damaged tables are
    /// gone or renamed).
    Plan,
}

/// The default template of `drover recover`'s table names.
pub const DEFAULT_PITR_TEMPLATE: &str = "{table}-at-{time}";

impl Pitr {
    /// The name `table` is restored under in `region` by run `short_id` (a recover's; a
    /// drill's names come from the plan's drill template).
    #[must_use]
    pub fn table_name(&self, table: &str, region: &str, short_id: &str) -> String {
        match &self.names {
            PitrNames::Plan => table.to_owned(),
            PitrNames::Template(t) => t
                .replace("{table}", table)
                .replace("{time}", &crate::run::compact_time(self.at))
                .replace("{run}", short_id)
                .replace("{region}", region),
        }
    }
}

impl RunOptions {
    /// Whether the run is on the simulated cloud, whose times are simulated, not the wall
    /// clock's (its `cloud` settings say `kind: sim`).
    #[must_use]
    pub fn simulated(&self) -> bool {
        self.cloud.get("kind").and_then(|k| k.as_str()) == Some("sim")
    }
}

/// Concurrency limits per region and kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Concurrent backup jobs in the source region.
    pub backups: usize,
    /// Concurrent copy jobs into one target region (AWS Backup quota: 100).
    pub copies: usize,
    /// Concurrent restores in one target region (DynamoDB quota: 50).
    pub restores: usize,
    /// Concurrent configure, validate and teardown steps in one region (control-plane calls).
    pub table_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { backups: 50, copies: 100, restores: 50, table_ops: 25 }
    }
}

/// What a finished step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "kebab-case")]
pub enum StepOutput {
    /// The recovery point taken (drill) or picked (failover).
    RecoveryPoint {
        /// Its ARN.
        arn: String,
        /// Vault holding it.
        vault: String,
        /// When it was taken.
        created_at: Millis,
        /// Size, when known.
        size_bytes: Option<u64>,
        /// The marker item written before the backup, if any.
        marker: Option<Item>,
        /// The source table's key schema and indexes at backup time (drills).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schema: Option<Box<crate::ports::TableSchema>>,
        /// Digests of the source just before and just after the backup (`validate.digest`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_digest: Option<Box<(crate::ports::TableDigest, crate::ports::TableDigest)>>,
    },
    /// The copy in the target vault.
    Copy {
        /// The copy's ARN.
        arn: String,
        /// The destination vault's lock when the copy was made (AWS Backup Vault Lock): the
        /// copy cannot be deleted, and its lifecycle deletes it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locked: Option<VaultLock>,
        /// How many days the copy is kept (its lifecycle), when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delete_after_days: Option<u32>,
    },
    /// The restored table.
    Restore {
        /// Its name.
        table_name: String,
        /// Its ARN.
        table_arn: String,
        /// For a point-in-time restore: what it was restored from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pitr: Option<Box<PitrRestored>>,
    },
    /// Settings applied.
    Configure {
        /// What was changed (empty when everything was already in place).
        applied: Vec<String>,
    },
    /// Checks passed.
    Validate {
        /// One line per check.
        checks: Vec<String>,
        /// The restored table's digest (`validate.digest`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<crate::ports::TableDigest>,
    },
    /// What teardown did.
    Teardown {
        /// Whether a table was deleted.
        deleted: bool,
        /// Why or why not.
        note: String,
        /// The drill's recovery points deleted from the target's vault (its copy).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        points_deleted: Vec<String>,
        /// The drill's recovery points kept in the target's vault, and why (a locked vault, a
        /// refusal): their lifecycle deletes them.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        points_kept: BTreeMap<String, String>,
    },
}

/// A step's transition, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum StepEvent {
    /// The step started.
    Began,
    /// About to call a Start*Job with this idempotency token.
    JobRequested {
        /// The token.
        token: String,
    },
    /// The job exists.
    JobStarted {
        /// Its id.
        job_id: String,
    },
    /// Done.
    Succeeded(StepOutput),
    /// Failed; dependents are blocked.
    Failed {
        /// Error kind, when the failure came from a cloud call.
        kind: Option<ErrorKind>,
        /// What went wrong (the service's message included).
        message: String,
    },
    /// Not started because a step it needs failed.
    Blocked {
        /// The step that failed.
        by: StepKey,
    },
    /// Reset to pending for another attempt (on resume of a failed run).
    Retried,
    /// A validation hook of the step ended (the step goes on running); a resumed attempt
    /// skips the hooks that passed.
    HookFinished(crate::hooks::HookOutcome),
}

/// A run-level event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    /// A process resumed the run.
    Resumed {
        /// The plan file changed and `--force` accepted it (its new hash).
        plan_replaced: Option<String>,
    },
    /// Stopped by the operator (Ctrl-C); resumable.
    Interrupted,
    /// `drover teardown` asked for the drill's tables to be deleted.
    TeardownRequested,
    /// Drill marker items were removed from the source tables.
    MarkersRemoved,
    /// The drill's recovery points in the source vault were deleted (or kept, with why).
    SourcePointsDeleted {
        /// Deleted recovery point ARNs.
        deleted: Vec<String>,
        /// Kept recovery point ARNs and why (a locked vault, a refusal); their lifecycle
        /// deletes them.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        kept: BTreeMap<String, String>,
    },
    /// Failover: the consistent cut chosen for a target, before any restore there.
    Cut(Cut),
    /// `drover unlock` broke the run's lease on purpose (the holder, if alive, loses the run
    /// at its next record).
    LeaseBroken {
        /// The lease broken.
        lease: String,
        /// Who held it.
        holder: String,
        /// Who broke it.
        by: String,
    },
    /// An `after_run` hook ended.
    HookRan(crate::hooks::HookOutcome),
    /// Every step is finished.
    Finished {
        /// Whether every step succeeded.
        success: bool,
    },
}

/// The recovery points a failover uses in one target.
///
/// Without `--at`, the cut time `time` is the oldest of the tables' newest points: the latest
/// moment every table's backups have reached. Each table then uses its newest point at or
/// before `time`, so no table comes back newer than the others' data allows. A table whose every
/// point is newer than `time` (a table added recently) uses its oldest point and is listed in
/// `late`. With `--at`, every table needs a point at or before that time (recovering to before
/// a corruption), or it is `missing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// Target region.
    pub target: String,
    /// The cut time (named so as not to collide with the journal entry's `at`).
    pub time: Millis,
    /// Whether `at` was asked for (`--at`) rather than computed.
    pub requested: bool,
    /// Chosen point per table.
    pub points: BTreeMap<String, CutPoint>,
    /// Tables without a usable point, with why (their steps fail).
    pub missing: BTreeMap<String, String>,
    /// Tables whose chosen point is after `time` (they had none at or before it).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub late: std::collections::BTreeSet<String>,
    /// When the cut was chosen (RPO achieved = this minus the oldest chosen point).
    pub chosen_at: Millis,
}

impl Cut {
    /// The spread of the chosen points' times.
    #[must_use]
    pub fn skew(&self) -> Millis {
        // Saturating: the times come from a journal, which may hold anything (a panic in
        // debug builds, nonsense in release builds otherwise).
        let times = self.points.values().map(|p| p.created_at);
        times.clone().max().unwrap_or(0).saturating_sub(times.min().unwrap_or(0))
    }

    /// Data loss the cut implies: how old its oldest point was when it was chosen.
    #[must_use]
    pub fn rpo_achieved(&self) -> Millis {
        self.points.values().map(|p| self.chosen_at.saturating_sub(p.created_at)).max().unwrap_or(0)
    }
}

/// A recovery point chosen by a cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutPoint {
    /// Its ARN.
    pub arn: String,
    /// When it was taken.
    pub created_at: Millis,
    /// Size, when known.
    pub size_bytes: Option<u64>,
}

/// Where a step is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// Not started.
    Pending,
    /// Started, no job requested.
    Running,
    /// A job start was requested with this token; its id is not known yet.
    Requested {
        /// Idempotency token.
        token: String,
    },
    /// A job is running.
    Attached {
        /// Idempotency token.
        token: String,
        /// Job id.
        job_id: String,
    },
    /// Done.
    Succeeded {
        /// What it produced.
        output: StepOutput,
    },
    /// Failed.
    Failed {
        /// Why.
        message: String,
    },
    /// Not started because `by` failed.
    Blocked {
        /// The failed step.
        by: StepKey,
    },
}

impl Phase {
    /// Succeeded, failed or blocked.
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self, Phase::Succeeded { .. } | Phase::Failed { .. } | Phase::Blocked { .. })
    }

    /// Short name for display.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Requested { .. } => "requested",
            Phase::Attached { .. } => "running",
            Phase::Succeeded { .. } => "succeeded",
            Phase::Failed { .. } => "failed",
            Phase::Blocked { .. } => "blocked",
        }
    }
}

/// A step's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepState {
    /// Where it is.
    pub phase: Phase,
    /// Attempts started (a retry after failure starts a new attempt, with new tokens).
    pub attempt: u32,
    /// When the current attempt began.
    pub began_at: Option<Millis>,
    /// When it reached a terminal phase.
    pub ended_at: Option<Millis>,
    /// Jobs requested over all attempts.
    pub jobs_requested: u32,
    /// Ids of every job started for this step, over all attempts.
    pub job_ids: Vec<String>,
    /// The hooks that ended in the current attempt, in order.
    pub hooks: Vec<crate::hooks::HookOutcome>,
}

impl Default for StepState {
    fn default() -> Self {
        StepState {
            phase: Phase::Pending,
            attempt: 0,
            began_at: None,
            ended_at: None,
            jobs_requested: 0,
            job_ids: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

impl StepState {
    /// Applies a transition, or says why it is not allowed.
    ///
    /// # Errors
    /// A message naming the forbidden transition.
    pub fn apply(&mut self, event: &StepEvent, at: Millis) -> Result<(), String> {
        let next = match (&self.phase, event) {
            (Phase::Pending, StepEvent::Began) => {
                self.attempt += 1;
                self.began_at = Some(at);
                self.hooks.clear();
                Phase::Running
            }
            (Phase::Running, StepEvent::HookFinished(outcome)) => {
                self.hooks.push(outcome.clone());
                Phase::Running
            }
            (Phase::Running, StepEvent::JobRequested { token }) => {
                self.jobs_requested += 1;
                Phase::Requested { token: token.clone() }
            }
            (Phase::Requested { token }, StepEvent::JobStarted { job_id }) => {
                self.job_ids.push(job_id.clone());
                Phase::Attached { token: token.clone(), job_id: job_id.clone() }
            }
            (
                Phase::Running | Phase::Requested { .. } | Phase::Attached { .. },
                StepEvent::Succeeded(output),
            ) => {
                self.ended_at = Some(at);
                Phase::Succeeded { output: output.clone() }
            }
            (
                Phase::Running | Phase::Requested { .. } | Phase::Attached { .. },
                StepEvent::Failed { message, .. },
            ) => {
                self.ended_at = Some(at);
                Phase::Failed { message: message.clone() }
            }
            (Phase::Pending, StepEvent::Blocked { by }) => {
                self.ended_at = Some(at);
                Phase::Blocked { by: by.clone() }
            }
            // A retry redoes failed and blocked steps, and teardowns whose tables may have
            // come back with the retried restores.
            (
                Phase::Failed { .. } | Phase::Blocked { .. } | Phase::Succeeded { .. },
                StepEvent::Retried,
            ) => {
                self.ended_at = None;
                Phase::Pending
            }
            (phase, event) => {
                return Err(format!(
                    "`{}` cannot follow phase `{}`",
                    event_name(event),
                    phase.name()
                ));
            }
        };
        self.phase = next;
        Ok(())
    }
}

fn event_name(e: &StepEvent) -> &'static str {
    match e {
        StepEvent::Began => "began",
        StepEvent::JobRequested { .. } => "job-requested",
        StepEvent::JobStarted { .. } => "job-started",
        StepEvent::Succeeded(_) => "succeeded",
        StepEvent::Failed { .. } => "failed",
        StepEvent::Blocked { .. } => "blocked",
        StepEvent::Retried => "retried",
        StepEvent::HookFinished(_) => "hook-finished",
    }
}

/// A run's state, rebuilt from its journal.
#[derive(Debug, Clone)]
pub struct RunState {
    /// The header.
    pub header: Header,
    /// Every step that has a record, by key.
    pub steps: BTreeMap<StepKey, StepState>,
    /// When the run started.
    pub started_at: Millis,
    /// Time of the last record.
    pub last_at: Millis,
    /// How often the run was interrupted.
    pub interruptions: u32,
    /// Whether `drover teardown` was requested.
    pub teardown_requested: bool,
    /// Whether drill markers were removed.
    pub markers_removed: bool,
    /// The drill's source recovery points, once their deletion was journaled: deleted, and
    /// kept with why.
    pub source_points: Option<(Vec<String>, BTreeMap<String, String>)>,
    /// Failover cuts, by target region.
    pub cuts: BTreeMap<String, Cut>,
    /// The `after_run` hooks that ended, in order.
    pub after_run: Vec<crate::hooks::HookOutcome>,
    /// The outcome, when every step is finished.
    pub finished: Option<bool>,
    /// Records in the journal.
    pub records: u64,
}

impl RunState {
    /// A fresh state for a new journal.
    #[must_use]
    pub fn new(header: Header, at: Millis) -> RunState {
        RunState {
            header,
            steps: BTreeMap::new(),
            started_at: at,
            last_at: at,
            interruptions: 0,
            teardown_requested: false,
            markers_removed: false,
            source_points: None,
            cuts: BTreeMap::new(),
            after_run: Vec::new(),
            finished: None,
            records: 1,
        }
    }

    /// Replays a journal's entries.
    ///
    /// # Errors
    /// `Err((seq, reason))` at the first record that does not replay.
    pub fn replay(entries: &[Entry]) -> Result<RunState, (u64, String)> {
        let Some(Entry { record: Record::Header(header), at, .. }) = entries.first() else {
            return Err((1, "the first record is not a header".to_owned()));
        };
        let mut state = RunState::new((**header).clone(), *at);
        for entry in &entries[1..] {
            state.apply(entry).map_err(|reason| (entry.seq, reason))?;
        }
        Ok(state)
    }

    /// Applies one entry.
    ///
    /// # Errors
    /// A message when the entry does not fit the state.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), String> {
        self.last_at = entry.at;
        self.records = entry.seq;
        match &entry.record {
            Record::Header(_) => return Err("a second header".to_owned()),
            Record::Step { step, event } => {
                self.steps.entry(step.clone()).or_default().apply(event, entry.at)?;
                self.finished = None;
            }
            Record::Run { event } => match event {
                RunEvent::Resumed { .. } => {
                    // A finished run that is resumed ends again: its after_run hooks run
                    // again then, with the new outcome.
                    if self.finished.take().is_some() {
                        self.after_run.clear();
                    }
                }
                RunEvent::Interrupted => self.interruptions += 1,
                RunEvent::TeardownRequested => {
                    self.teardown_requested = true;
                    self.finished = None;
                }
                RunEvent::MarkersRemoved => self.markers_removed = true,
                RunEvent::SourcePointsDeleted { deleted, kept } => {
                    self.source_points = Some((deleted.clone(), kept.clone()));
                }
                RunEvent::Cut(cut) => {
                    if self.cuts.contains_key(&cut.target) {
                        return Err(format!("a second cut for {}", cut.target));
                    }
                    self.cuts.insert(cut.target.clone(), cut.clone());
                }
                RunEvent::HookRan(outcome) => self.after_run.push(outcome.clone()),
                RunEvent::Finished { success } => self.finished = Some(*success),
                RunEvent::LeaseBroken { .. } => {}
            },
        }
        Ok(())
    }

    /// The phase of a step (pending when it has no record).
    #[must_use]
    pub fn phase(&self, key: &StepKey) -> &Phase {
        self.steps.get(key).map_or(&Phase::Pending, |s| &s.phase)
    }

    /// The output of a succeeded step.
    #[must_use]
    pub fn output(&self, key: &StepKey) -> Option<&StepOutput> {
        match self.phase(key) {
            Phase::Succeeded { output } => Some(output),
            _ => None,
        }
    }
}

/// The time to stamp a record with: the wall clock, but never earlier than the journal's
/// last record, so that durations read from the journal are never negative when the machine's
/// clock jumps backwards (a forward jump only makes a step look longer).
pub fn stamp(now: Millis, state: &RunState) -> Millis {
    now.max(state.last_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Caught by the checks of the `journal_replay` fuzz target (tests/fuzz): a journal's
    /// times far apart overflowed the subtractions.
    #[test]
    fn cut_skew_and_rpo_saturate_on_extreme_times() {
        let point = |created_at| CutPoint { arn: "a".into(), created_at, size_bytes: None };
        let cut = Cut {
            target: "us-west-2".into(),
            time: 0,
            requested: false,
            points: BTreeMap::from([
                ("a".to_owned(), point(Millis::MIN)),
                ("b".to_owned(), point(Millis::MAX)),
            ]),
            missing: BTreeMap::new(),
            late: std::collections::BTreeSet::new(),
            chosen_at: Millis::MAX,
        };
        assert_eq!(cut.skew(), Millis::MAX);
        assert_eq!(cut.rpo_achieved(), Millis::MAX);
    }
}
