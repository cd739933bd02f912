//! `drover sweep`: what abandoned drills left behind (a lost CI runner, a `--keep` forgotten),
//! found by drover's ownership tags, listed, and deleted.
//!
//! **Found** through the ports, cheapest reads first: the tables of the plan's regions
//! (ListTables) whose names the plan's drill template gives the plan's tables there (`{run}`:
//! any 8-character short id), then each one's DescribeTable and tags (ListTagsOfResource is
//! limited to 10 calls per second, so only those names are read); the DynamoDB recovery points
//! of the plan's vaults that back up one of the plan's tables, fully managed by AWS Backup
//! (only those have tags) and not made by a backup plan, then each one's tags.
//!
//! **Decided** with the state directory's runs ([`crate::run::list`], read after the resources
//! so that a run started meanwhile is seen): a resource qualifies only when it carries both
//! ownership tags ([`PLAN_TAG`] = this plan, [`RUN_TAG`] a run id), a recovery point also
//! [`MODE_TAG`]`=drill`, its run's journal is finished (succeeded or failed) or not in the state
//! directory at all, and it is older than [`Options::older_than`]. Never swept: anything without
//! both tags, a backup run's recovery points (a real failover restores from them), a table named
//! like one of the plan's tables, anything of a failover, and anything of a run whose journal is
//! not finished, whether or not a process holds it (an interrupted run may be resumed).
//!
//! **Deleted** after the run and the tags are read again: a table's deletion protection is
//! turned off (and ACTIVE awaited), it is deleted and awaited until gone (tables linger
//! DELETING); a recovery point is deleted, and read back until it is gone or DELETING (AWS Backup
//! deletes asynchronously, and leaves a point EXPIRED when a permission is missing).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use drover_plan::{Mode, Plan, RUN_SHORT_ID_LEN};
use serde::Serialize;

use crate::error::{CloudError, ErrorKind};
use crate::policy::{PollPolicy, RetryPolicy};
use crate::ports::{CloudResult, Millis, Ports};
use crate::retry::patiently as patient;
use crate::state::RunState;
use crate::steps::{MODE_TAG, PLAN_TAG, RUN_TAG};
use crate::store::Store;

/// How a sweep behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Anything younger is kept (table creation time, recovery point creation time).
    pub older_than: Duration,
    /// How failing calls are retried (throttling, passing faults).
    pub retry: RetryPolicy,
    /// How tables being updated or deleted, and recovery points being deleted, are awaited.
    pub poll: PollPolicy,
}

/// The default [`Options::older_than`]: a day, longer than any drill takes.
pub const OLDER_THAN: Duration = Duration::from_secs(24 * 3600);

impl Default for Options {
    fn default() -> Self {
        Options {
            older_than: OLDER_THAN,
            retry: RetryPolicy {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(20),
                give_up_after: Duration::from_secs(5 * 60),
            },
            poll: PollPolicy::default(),
        }
    }
}

/// What a swept resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A DynamoDB table.
    Table,
    /// An AWS Backup recovery point (a drill's source point or its copy).
    RecoveryPoint,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::RecoveryPoint => "point",
        }
    }
}

/// What the sweep does (or did) with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// It qualifies and is to be deleted (a listing, a dry run).
    Delete,
    /// It was deleted (and is gone, or being deleted by AWS Backup).
    Deleted,
    /// Deleting it failed: `error` says why.
    Failed,
    /// It is kept: `why` says why.
    Spare,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Deleted => "deleted",
            Action::Failed => "failed",
            Action::Spare => "spare",
        }
    }
}

/// Why a resource qualifies or is spared: a stable code (JSON); `Item::why` says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// Qualifies: its run finished (succeeded or failed).
    RunFinished,
    /// Qualifies: its run is not in the state directory (a lost runner, another machine).
    RunUnknown,
    /// Spared: its run's journal is not finished (it may be resumed).
    RunInProgress,
    /// Spared: its run's journal cannot be read.
    JournalUnreadable,
    /// Spared: younger than `older_than`.
    Younger,
    /// Spared: its creation time is unknown.
    AgeUnknown,
    /// Spared: it lacks an ownership tag.
    NotOwned,
    /// Spared: its `drover:plan` names another plan.
    OtherPlan,
    /// Spared: its `drover:run` is not a run id.
    BadRunTag,
    /// Spared: a recovery point without `drover:mode=drill` (a backup run's).
    NotADrillPoint,
    /// Spared: its run is not a drill (a failover's table, a backup's point).
    NotADrill,
    /// Spared: its name's run id differs from its `drover:run` tag.
    NameMismatch,
    /// Spared: it has the name of one of the plan's tables.
    ProductionName,
    /// Spared: it is being created.
    BeingCreated,
}

impl Reason {
    fn qualifies(self) -> bool {
        matches!(self, Reason::RunFinished | Reason::RunUnknown)
    }
}

/// One resource the sweep found, and what it does with it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// What happens (or happened) to it.
    pub action: Action,
    /// Table or recovery point.
    pub kind: Kind,
    /// Its region.
    pub region: String,
    /// The vault holding it (recovery points).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// Table name, or recovery point ARN.
    pub name: String,
    /// The run its `drover:run` tag names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// When it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Millis>,
    /// How old it was when the sweep looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// Why it qualifies or is spared.
    pub reason: Reason,
    /// The same, in words.
    pub why: String,
    /// Why deleting it failed (the service's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its tags when it was found.
    #[serde(skip)]
    tags: BTreeMap<String, String>,
    /// The short run id its name carries (tables whose template has `{run}`).
    #[serde(skip)]
    name_run: Option<String>,
    /// The mode of its run, when the state directory knows it.
    #[serde(skip)]
    run_mode: Option<Mode>,
}

/// What a sweep found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    /// The plan swept.
    pub plan: String,
    /// Resources younger than this are kept (`1d`, as plans write durations).
    pub older_than: String,
    /// The state directory the runs were read from.
    pub state_dir: String,
    /// Every resource that is drover's or looks like it: to delete, deleted, failed, spared.
    pub items: Vec<Item>,
    /// Recovery points of the plan's tables without drover's tags (scheduled backups, ...):
    /// not drover's, not listed.
    pub other_points: usize,
    /// What could not be read (a region down, a permission missing): the sweep is incomplete.
    pub errors: Vec<String>,
}

impl Sweep {
    /// An empty sweep of `plan`.
    #[must_use]
    pub fn new(plan: &Plan, state: &Store, opts: &Options) -> Sweep {
        Sweep {
            plan: plan.name.clone(),
            older_than: older_than_text(opts.older_than),
            state_dir: state.location(),
            items: Vec::new(),
            other_points: 0,
            errors: Vec::new(),
        }
    }

    /// How many resources qualify and are not deleted yet.
    #[must_use]
    pub fn to_delete(&self) -> usize {
        self.count(Action::Delete)
    }

    /// How many resources have `action`.
    #[must_use]
    pub fn count(&self, action: Action) -> usize {
        self.items.iter().filter(|i| i.action == action).count()
    }

    /// Whether everything that qualified is gone and everything could be read.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && self.to_delete() == 0 && self.count(Action::Failed) == 0
    }

    /// Adds what another sweep of the same plan found (another simulated world).
    pub fn merge(&mut self, other: Sweep) {
        self.items.extend(other.items);
        self.other_points += other.other_points;
        self.errors.extend(other.errors);
        sort(&mut self.items);
    }

    /// A table for people: one line per resource (action, kind, region, name or ARN, run, age,
    /// why), then a count, how to finish the runs in progress, and what could not be read.
    #[must_use]
    pub fn render(&self, dry_run: bool) -> String {
        let mut out = format!(
            "sweep of plan `{}`: drill tables and recovery points older than {} whose run is \
             finished, failed or unknown to {}{}\n",
            self.plan,
            self.older_than,
            self.state_dir,
            if dry_run { " (dry run: nothing is deleted)" } else { "" }
        );
        if self.items.is_empty() {
            out.push_str("\nnothing found\n");
        } else {
            let cells: Vec<[String; 7]> = self
                .items
                .iter()
                .map(|i| {
                    [
                        i.action.label().to_owned(),
                        i.kind.label().to_owned(),
                        i.region.clone(),
                        i.name.clone(),
                        i.run.clone().unwrap_or_else(|| "-".to_owned()),
                        i.age_ms.map_or_else(|| "-".to_owned(), short_age),
                        match &i.error {
                            Some(e) => format!("{}; deleting failed: {e}", i.why),
                            None => i.why.clone(),
                        },
                    ]
                })
                .collect();
            let head = ["ACTION", "KIND", "REGION", "NAME", "RUN", "AGE", "WHY"];
            let mut width = head.map(str::len);
            for row in &cells {
                for (w, c) in width.iter_mut().zip(row) {
                    *w = (*w).max(c.len());
                }
            }
            // The age column is as wide as any age can be, so that ages never shift the columns.
            width[5] = width[5].max(6);
            out.push('\n');
            for row in std::iter::once(head.map(str::to_owned)).chain(cells) {
                let mut line = String::new();
                for (i, (cell, w)) in row.iter().zip(width).enumerate() {
                    if i + 1 == row.len() {
                        line.push_str(cell);
                    } else {
                        let _ = write!(line, "{cell:<w$}  ");
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        let mut counts = Vec::new();
        for (action, label) in [
            (Action::Delete, "to delete"),
            (Action::Deleted, "deleted"),
            (Action::Failed, "failed"),
            (Action::Spare, "spared"),
        ] {
            let n = self.count(action);
            if n > 0 || (action == Action::Delete && self.items.is_empty()) {
                counts.push(format!("{n} {label}"));
            }
        }
        let _ = writeln!(out, "\n{}", counts.join(", "));
        if self.other_points > 0 {
            let _ = writeln!(
                out,
                "{} other recovery point(s) of the plan's tables carry no drover tags: not \
                 drover's, not listed",
                self.other_points
            );
        }
        let unfinished: BTreeMap<&str, Option<Mode>> = self
            .items
            .iter()
            .filter(|i| i.reason == Reason::RunInProgress)
            .filter_map(|i| i.run.as_deref().map(|r| (r, i.run_mode)))
            .collect();
        if !unfinished.is_empty() {
            out.push_str(
                "\nruns in progress keep their resources (they may be resumed); finish each, then \
                 sweep again:\n",
            );
            for (run, mode) in unfinished {
                if mode == Some(Mode::Drill) {
                    let _ = writeln!(out, "  drover resume {run}    (or: drover teardown {run})");
                } else {
                    let _ = writeln!(out, "  drover resume {run}");
                }
            }
        }
        if !self.errors.is_empty() {
            out.push_str("\nnot everything could be read, so the sweep is incomplete:\n");
            for e in &self.errors {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }

    /// The sweep as JSON: the plan, `dry_run`, every item (with its `action`, `reason` code
    /// and `why`), the counts and the errors.
    #[must_use]
    pub fn to_json(&self, dry_run: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("dry_run".to_owned(), dry_run.into());
            map.insert(
                "counts".to_owned(),
                serde_json::json!({
                    "delete": self.count(Action::Delete),
                    "deleted": self.count(Action::Deleted),
                    "failed": self.count(Action::Failed),
                    "spare": self.count(Action::Spare),
                }),
            );
            map.insert("succeeded".to_owned(), self.succeeded().into());
        }
        v
    }
}

/// `older_than` as plans write durations (`1d`, `0s`).
fn older_than_text(d: Duration) -> String {
    drover_plan::format_duration(d)
}

/// An age in its two largest units: `2d3h`, `5h`, `12m30s`, `45s`.
fn short_age(ms: u64) -> String {
    let mut secs = ms / 1000;
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut parts = 0;
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if parts == 2 || (parts == 1 && secs < len) {
            break;
        }
        if secs >= len {
            let _ = write!(out, "{}{unit}", secs / len);
            secs %= len;
            parts += 1;
        } else if parts == 1 {
            break;
        }
    }
    out
}

fn sort(items: &mut [Item]) {
    items.sort_by(|a, b| {
        (a.action, a.kind, &a.region, &a.name).cmp(&(b.action, b.kind, &b.region, &b.name))
    });
}

/// What the state directory says about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunInfo {
    /// Its journal is not finished.
    Unfinished { mode: Mode },
    /// Its journal is finished.
    Finished { success: bool, mode: Mode },
    /// Its journal cannot be read (the message says why).
    Unreadable(String),
}

/// What a run's state says, for sweeping.
fn info(state: Result<RunState, String>) -> RunInfo {
    match state {
        Ok(s) => match s.finished {
            Some(success) => RunInfo::Finished { success, mode: s.header.mode },
            None => RunInfo::Unfinished { mode: s.header.mode },
        },
        Err(e) => RunInfo::Unreadable(e),
    }
}

/// The runs of the state store that have a journal (`Err`: the store cannot be listed).
async fn runs_in(state: &Store) -> Result<BTreeMap<String, RunInfo>, String> {
    let runs = state.list().await.map_err(|e| e.to_string())?;
    Ok(runs.into_iter().map(|(id, s)| (id, info(s))).collect())
}

/// One run, read again from the state store (`None`: it has no journal there).
async fn run_now(state: &Store, run_id: &str) -> Option<RunInfo> {
    if crate::run::check_run_id(run_id).is_err() {
        return None;
    }
    match state.read_if_exists(run_id).await {
        Ok(found) => found.map(|(s, _)| info(Ok(s))),
        Err(e) => Some(RunInfo::Unreadable(e.to_string())),
    }
}

/// What the store says now of the run an item's tags name.
async fn known(state: &Store, item: &Item) -> Option<RunInfo> {
    match item.tags.get(RUN_TAG) {
        Some(run) => run_now(state, run).await,
        None => None,
    }
}

/// Whether `name` is a name the plan's drill template gives one of the plan's tables in
/// `region`: the table, and the short run id the name carries (`None` when the template has no
/// `{run}`). `{run}` stands for any 8 lowercase letters or digits, the same each time.
fn drill_name(plan: &Plan, region: &str, name: &str) -> Option<(String, Option<String>)> {
    let source = plan.source.region.as_str() == region;
    plan.tables
        .iter()
        .filter(|t| source || t.targets.iter().any(|r| r.as_str() == region))
        .find_map(|t| {
            let filled =
                plan.drill.table_name.replace("{table}", &t.name).replace("{region}", region);
            match_template(&filled, name).map(|short| (t.name.clone(), short))
        })
}

/// Matches `name` against a template whose only placeholder left is `{run}`.
fn match_template(filled: &str, name: &str) -> Option<Option<String>> {
    let mut parts = filled.split("{run}");
    let mut rest = name.strip_prefix(parts.next().unwrap_or_default())?;
    let mut short: Option<&str> = None;
    for literal in parts {
        let id = rest.get(..RUN_SHORT_ID_LEN)?;
        if !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            || short.is_some_and(|s| s != id)
        {
            return None;
        }
        short = Some(id);
        rest = rest[RUN_SHORT_ID_LEN..].strip_prefix(literal)?;
    }
    rest.is_empty().then(|| short.map(str::to_owned))
}

/// The table a recovery point backs up (the name in its resource ARN).
fn backed_up_table(resource_arn: &str) -> Option<&str> {
    resource_arn.split_once(":table/").map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
}

/// Whether a recovery point is fully managed by AWS Backup (`arn:<partition>:backup:...`):
/// only those have tags ListTags can read.
fn fully_managed(arn: &str) -> bool {
    arn.split(':').nth(2) == Some("backup")
}

/// Decides what to do with a resource from its tags, its run's state, its name and its age.
/// `now` is when the sweep looked; `runs` says what the state directory knows of a run.
fn decide(
    plan: &str,
    item: &mut Item,
    now: Millis,
    older_than: Duration,
    state_dir: &str,
    runs: &dyn Fn(&str) -> Option<RunInfo>,
) {
    let (reason, why) = verdict(plan, item, now, older_than, state_dir, runs);
    item.action = if reason.qualifies() { Action::Delete } else { Action::Spare };
    item.reason = reason;
    item.why = why;
}

/// Decides again, right before deleting, with what was just read: whether the item still
/// qualifies (when it no longer does, its `why` says it was found when read again).
fn decided_again(
    plan: &str,
    item: &mut Item,
    now: Millis,
    older_than: Duration,
    state_dir: &str,
    runs: &dyn Fn(&str) -> Option<RunInfo>,
) -> bool {
    decide(plan, item, now, older_than, state_dir, runs);
    if item.action != Action::Delete {
        item.why.push_str(" (found when read again before deleting)");
        return false;
    }
    true
}

fn verdict(
    plan: &str,
    item: &mut Item,
    now: Millis,
    older_than: Duration,
    state_dir: &str,
    runs: &dyn Fn(&str) -> Option<RunInfo>,
) -> (Reason, String) {
    let tag_plan = item.tags.get(PLAN_TAG).cloned();
    let tag_run = item.tags.get(RUN_TAG).cloned();
    item.run.clone_from(&tag_run);
    item.age_ms = item.created_at.map(|c| u64::try_from(now.saturating_sub(c)).unwrap_or(0));
    let missing: Vec<&str> =
        [PLAN_TAG, RUN_TAG].into_iter().filter(|t| !item.tags.contains_key(*t)).collect();
    if !missing.is_empty() {
        return (
            Reason::NotOwned,
            format!(
                "it lacks drover's ownership tag{} {}: not drover's (or its tags do not show yet)",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(" and ")
            ),
        );
    }
    let (Some(tag_plan), Some(run)) = (tag_plan, tag_run) else {
        return (Reason::NotOwned, "it lacks drover's ownership tags".to_owned());
    };
    if tag_plan != plan {
        return (Reason::OtherPlan, format!("it belongs to plan `{tag_plan}` ({PLAN_TAG})"));
    }
    if let Err(e) = crate::run::check_run_id(&run) {
        return (Reason::BadRunTag, format!("its {RUN_TAG} tag is not a drover run id: {e}"));
    }
    if item.kind == Kind::RecoveryPoint {
        match item.tags.get(MODE_TAG).map(String::as_str) {
            Some("drill") => {}
            Some("backup") => {
                return (
                    Reason::NotADrillPoint,
                    format!(
                        "a backup run's recovery point ({MODE_TAG}=backup): a real failover \
                         restores from it"
                    ),
                );
            }
            Some(other) => {
                return (
                    Reason::NotADrillPoint,
                    format!("it is a {other} run's recovery point ({MODE_TAG}={other})"),
                );
            }
            None => {
                return (Reason::NotADrillPoint, format!("it carries no {MODE_TAG}=drill tag"));
            }
        }
    }
    if let Some(short) = &item.name_run
        && *short != crate::run::short_id(&run)
    {
        return (
            Reason::NameMismatch,
            format!("its name carries run `{short}`, its {RUN_TAG} tag another run"),
        );
    }
    let info = runs(&run);
    item.run_mode = match &info {
        Some(RunInfo::Unfinished { mode } | RunInfo::Finished { mode, .. }) => Some(*mode),
        _ => None,
    };
    let qualifying = match info {
        Some(RunInfo::Unreadable(e)) => {
            return (Reason::JournalUnreadable, format!("its run's journal cannot be read: {e}"));
        }
        Some(RunInfo::Unfinished { mode }) => {
            return (
                Reason::RunInProgress,
                format!("its run is a {} in progress (its journal is not finished)", mode.as_str()),
            );
        }
        Some(RunInfo::Finished { mode, .. }) if mode != Mode::Drill => {
            return (Reason::NotADrill, format!("its run is a {}, not a drill", mode.as_str()));
        }
        Some(RunInfo::Finished { success, .. }) => (
            Reason::RunFinished,
            format!("its run finished ({})", if success { "succeeded" } else { "failed" }),
        ),
        None => (Reason::RunUnknown, format!("its run is unknown to {state_dir}")),
    };
    match item.age_ms {
        None if !older_than.is_zero() => {
            (Reason::AgeUnknown, "its creation time is unknown".to_owned())
        }
        Some(age) if u128::from(age) < older_than.as_millis() => {
            (Reason::Younger, format!("younger than {}", older_than_text(older_than)))
        }
        _ => qualifying,
    }
}

fn new_item(kind: Kind, region: &str, vault: Option<&str>, name: &str) -> Item {
    Item {
        action: Action::Spare,
        kind,
        region: region.to_owned(),
        vault: vault.map(str::to_owned),
        name: name.to_owned(),
        run: None,
        created_at: None,
        age_ms: None,
        reason: Reason::NotOwned,
        why: String::new(),
        error: None,
        tags: BTreeMap::new(),
        name_run: None,
        run_mode: None,
    }
}

/// The plan's regions: the source, then each target, once each.
fn regions(plan: &Plan) -> Vec<String> {
    let mut seen = BTreeSet::new();
    std::iter::once(plan.source.region.to_string())
        .chain(plan.targets.iter().map(|t| t.region.to_string()))
        .filter(|r| seen.insert(r.clone()))
        .collect()
}

/// The plan's vaults: the source vault, then each target's, as (region, vault), once each.
fn vaults(plan: &Plan) -> Vec<(String, String)> {
    let mut seen = BTreeSet::new();
    std::iter::once((plan.source.region.to_string(), plan.source.backup_vault.clone()))
        .chain(plan.targets.iter().map(|t| (t.region.to_string(), t.backup_vault.clone())))
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

/// Finds the drill tables and drill recovery points of `plan`, and decides for each whether it
/// qualifies (see the module documentation). Reads only; what cannot be read is in
/// [`Sweep::errors`].
///
/// # Cancel safety
/// Cancel safe: it only reads.
pub async fn find(plan: &Plan, ports: &Ports, state: &Store, opts: &Options) -> Sweep {
    let mut sweep = Sweep::new(plan, state, opts);
    let retry = &opts.retry;
    let mut found = Vec::new();
    for region in regions(plan) {
        let names = match patient(ports, retry, || ports.tables.list_tables(&region)).await {
            Ok(names) => names,
            Err(e) => {
                sweep.errors.push(format!("cannot list the tables of {region}: {e}"));
                continue;
            }
        };
        for name in names {
            let Some((_, short)) = drill_name(plan, &region, &name) else { continue };
            let mut item = new_item(Kind::Table, &region, None, &name);
            if plan.table_by_name(&name).is_some() {
                item.reason = Reason::ProductionName;
                item.why = "it has the name of one of the plan's tables: never swept".to_owned();
                sweep.items.push(item);
                continue;
            }
            item.name_run = short;
            let info =
                match patient(ports, retry, || ports.tables.describe_table(&region, &name)).await {
                    Ok(Some(info)) => info,
                    Ok(None) => continue,
                    Err(e) => {
                        sweep.errors.push(format!("cannot describe `{name}` in {region}: {e}"));
                        continue;
                    }
                };
            match info.status.as_str() {
                // Being deleted already (by teardown, or an earlier sweep): nothing to do.
                "DELETING" => continue,
                // A restore in progress: its tags cannot be read yet.
                "CREATING" => {
                    item.created_at = info.created_at;
                    item.reason = Reason::BeingCreated;
                    item.why = "it is being created".to_owned();
                    sweep.items.push(item);
                    continue;
                }
                _ => {}
            }
            item.created_at = info.created_at;
            match patient(ports, retry, || ports.tables.list_tags(&region, &info.arn)).await {
                Ok(tags) => item.tags = tags,
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => {
                    sweep.errors.push(format!("cannot read the tags of `{name}` in {region}: {e}"));
                    continue;
                }
            }
            found.push(item);
        }
    }
    let tables: BTreeSet<&str> = plan.tables.iter().map(|t| t.name.as_str()).collect();
    for (region, vault) in vaults(plan) {
        let points = match patient(ports, retry, || {
            ports.backup.list_vault_recovery_points(&region, &vault)
        })
        .await
        {
            Ok(points) => points,
            Err(e) => {
                sweep.errors.push(format!(
                    "cannot list the recovery points of vault `{vault}` in {region}: {e}"
                ));
                continue;
            }
        };
        for p in points {
            let ours = backed_up_table(&p.resource_arn).is_some_and(|t| tables.contains(t));
            // Points a backup plan made, and points not fully managed by AWS Backup, are never
            // drover's: drover starts on-demand jobs with advanced DynamoDB backup.
            if !ours || !fully_managed(&p.arn) || p.backup_plan_id.is_some() {
                continue;
            }
            if p.status == "DELETING" {
                continue;
            }
            let mut item = new_item(Kind::RecoveryPoint, &region, Some(&vault), &p.arn);
            item.created_at = Some(p.created_at);
            match patient(ports, retry, || ports.backup.recovery_point_tags(&region, &p.arn)).await
            {
                Ok(tags) => item.tags = tags,
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => {
                    sweep.errors.push(format!(
                        "cannot read the tags of recovery point {} in {region}: {e}",
                        p.arn
                    ));
                    continue;
                }
            }
            if !item.tags.contains_key(PLAN_TAG) && !item.tags.contains_key(RUN_TAG) {
                sweep.other_points += 1;
                continue;
            }
            if p.status == "CREATING" {
                item.reason = Reason::BeingCreated;
                item.why = "it is being created".to_owned();
                item.run = item.tags.get(RUN_TAG).cloned();
                sweep.items.push(item);
                continue;
            }
            found.push(item);
        }
    }
    // The runs are read after the resources: a run that started meanwhile is seen.
    // A store that cannot be listed spares everything: no resource is deleted without
    // knowing its run.
    let runs = runs_in(state).await;
    if let Err(e) = &runs {
        sweep.errors.push(format!("the runs in {} cannot be read: {e}", sweep.state_dir));
    }
    let now = ports.clock.now();
    for mut item in found {
        decide(&sweep.plan, &mut item, now, opts.older_than, &sweep.state_dir, &|id| match &runs {
            Ok(runs) => runs.get(id).cloned(),
            Err(e) => Some(RunInfo::Unreadable(e.clone())),
        });
        sweep.items.push(item);
    }
    sort(&mut sweep.items);
    sweep
}

/// Deletes what `sweep` lists to delete ([`Action::Delete`]), each after its run and tags are
/// read again (a resource whose run was resumed meanwhile is spared), and records the outcome
/// in each item: deleted, failed (with the service's message), or spared.
///
/// # Cancel safety
/// Not cancel safe: a deletion under way is neither awaited nor recorded; sweep again.
pub async fn delete(plan: &Plan, ports: &Ports, state: &Store, sweep: &mut Sweep, opts: &Options) {
    let retry = &opts.retry;
    let state_dir_text = sweep.state_dir.clone();
    let mut deleting_tables = Vec::new();
    let mut deleted_points = Vec::new();
    for (i, item) in sweep.items.iter_mut().enumerate() {
        if item.action != Action::Delete {
            continue;
        }
        match item.kind {
            Kind::Table => {
                let region = item.region.clone();
                let name = item.name.clone();
                let info =
                    match patient(ports, retry, || ports.tables.describe_table(&region, &name))
                        .await
                    {
                        Ok(Some(info)) => info,
                        Ok(None) => {
                            item.action = Action::Deleted;
                            item.why.push_str(" (it was gone already)");
                            continue;
                        }
                        Err(e) => {
                            fail(item, &e);
                            continue;
                        }
                    };
                if info.status != "DELETING" {
                    match patient(ports, retry, || ports.tables.list_tags(&region, &info.arn)).await
                    {
                        Ok(tags) => item.tags = tags,
                        Err(e) if e.kind == ErrorKind::NotFound => {}
                        Err(e) => {
                            fail(item, &e);
                            continue;
                        }
                    }
                    let now_known = known(state, item).await;
                    let runs = |_: &str| now_known.clone();
                    if !decided_again(
                        &plan.name,
                        item,
                        ports.clock.now(),
                        opts.older_than,
                        &state_dir_text,
                        &runs,
                    ) {
                        continue;
                    }
                    if let Err(e) =
                        delete_table(ports, opts, &region, &name, info.deletion_protection).await
                    {
                        fail(item, &e);
                        continue;
                    }
                }
                deleting_tables.push(i);
            }
            Kind::RecoveryPoint => {
                let now_known = known(state, item).await;
                let runs = |_: &str| now_known.clone();
                if !decided_again(
                    &plan.name,
                    item,
                    ports.clock.now(),
                    opts.older_than,
                    &state_dir_text,
                    &runs,
                ) {
                    continue;
                }
                let region = item.region.clone();
                let vault = item.vault.clone().unwrap_or_default();
                let arn = item.name.clone();
                match patient(ports, retry, || {
                    ports.backup.delete_recovery_point(&region, &vault, &arn)
                })
                .await
                {
                    Ok(()) => deleted_points.push(i),
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        item.action = Action::Deleted;
                        item.why.push_str(" (it was gone already)");
                    }
                    Err(e) => fail(item, &e),
                }
            }
        }
    }
    wait_tables_gone(ports, opts, &mut sweep.items, &deleting_tables).await;
    wait_points_gone(ports, opts, &mut sweep.items, &deleted_points).await;
    sort(&mut sweep.items);
}

fn fail(item: &mut Item, e: &CloudError) {
    item.action = Action::Failed;
    item.error = Some(e.to_string());
}

/// Turns off deletion protection when it is on (and waits for ACTIVE), then deletes the table.
async fn delete_table(
    ports: &Ports,
    opts: &Options,
    region: &str,
    name: &str,
    protected: bool,
) -> CloudResult<()> {
    let retry = &opts.retry;
    if protected {
        // UpdateTable is refused while the table is not ACTIVE.
        wait_active(ports, opts, region, name).await?;
        patient(ports, retry, || ports.tables.set_deletion_protection(region, name, false)).await?;
    }
    wait_active(ports, opts, region, name).await?;
    match patient(ports, retry, || ports.tables.delete_table(region, name)).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        // Being updated by someone else meanwhile: once more, when it is ACTIVE.
        Err(e) if e.kind == ErrorKind::InvalidState => {
            wait_active(ports, opts, region, name).await?;
            patient(ports, retry, || ports.tables.delete_table(region, name)).await
        }
        Err(e) => Err(e),
    }
}

/// Polls DescribeTable until the table is ACTIVE (or gone).
async fn wait_active(ports: &Ports, opts: &Options, region: &str, name: &str) -> CloudResult<()> {
    let poll = opts.poll;
    let mut wait = poll.initial;
    let mut last = String::new();
    for _ in 0..poll.table_polls {
        match patient(ports, &opts.retry, || ports.tables.describe_table(region, name)).await? {
            None => return Ok(()),
            Some(info) if info.status == "ACTIVE" => return Ok(()),
            Some(info) => last = info.status,
        }
        ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
    Err(CloudError::new(
        ErrorKind::InvalidState,
        "DescribeTable",
        format!("`{name}` in {region} is still {last}; sweep again once it is ACTIVE"),
    ))
}

/// Polls each deleted table until it is gone (a deleted table lingers DELETING).
async fn wait_tables_gone(ports: &Ports, opts: &Options, items: &mut [Item], pending: &[usize]) {
    let poll = opts.poll;
    let mut left: Vec<usize> = pending.to_vec();
    let mut wait = poll.initial;
    for round in 0..=poll.table_polls {
        let mut still = Vec::new();
        for &i in &left {
            let (region, name) = (items[i].region.clone(), items[i].name.clone());
            match patient(ports, &opts.retry, || ports.tables.describe_table(&region, &name)).await
            {
                Ok(None) => items[i].action = Action::Deleted,
                Ok(Some(_)) => still.push(i),
                Err(e) => fail(&mut items[i], &e),
            }
        }
        left = still;
        if left.is_empty() || round == poll.table_polls {
            break;
        }
        ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
    for i in left {
        items[i].action = Action::Failed;
        items[i].error = Some(
            "DeleteTable was accepted, but the table is still DELETING; sweep again later"
                .to_owned(),
        );
    }
}

/// Reads the vaults of the deleted recovery points back until each is gone or DELETING, for at
/// most `PollPolicy::settle`: AWS Backup deletes asynchronously, and answers DeleteRecoveryPoint
/// but leaves the point EXPIRED when a permission is missing.
async fn wait_points_gone(ports: &Ports, opts: &Options, items: &mut [Item], pending: &[usize]) {
    let poll = opts.poll;
    let started = ports.clock.monotonic();
    let mut left: Vec<usize> = pending.to_vec();
    let mut wait = poll.initial;
    let mut last: BTreeMap<usize, String> = BTreeMap::new();
    loop {
        let mut by_vault: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for &i in &left {
            let key = (items[i].region.clone(), items[i].vault.clone().unwrap_or_default());
            by_vault.entry(key).or_default().push(i);
        }
        let mut still = Vec::new();
        for ((region, vault), indexes) in by_vault {
            let listed = match patient(ports, &opts.retry, || {
                ports.backup.list_vault_recovery_points(&region, &vault)
            })
            .await
            {
                Ok(points) => points,
                Err(e) => {
                    for i in indexes {
                        fail(&mut items[i], &e);
                    }
                    continue;
                }
            };
            for i in indexes {
                match listed.iter().find(|p| p.arn == items[i].name) {
                    None => items[i].action = Action::Deleted,
                    Some(p) if p.status == "DELETING" => items[i].action = Action::Deleted,
                    Some(p) => {
                        last.insert(i, p.status.clone());
                        still.push(i);
                    }
                }
            }
        }
        left = still;
        if left.is_empty() || ports.clock.monotonic().saturating_sub(started) >= poll.settle {
            break;
        }
        ports.clock.sleep(wait).await;
        wait = wait.mul_f64(poll.factor).min(poll.max);
    }
    for i in left {
        items[i].action = Action::Failed;
        items[i].error = Some(format!(
            "DeleteRecoveryPoint was accepted, but AWS Backup still lists the point as {} after {}s \
             (it keeps a point EXPIRED when the caller lacks a permission: check the operator \
             policy, `drover iam-policy`)",
            last.get(&i).map_or("there", String::as_str),
            poll.settle.as_secs()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(template: &str) -> Plan {
        let text = format!(
            "version: 1
name: shop
source: {{region: us-east-1, account_id: \"123456789012\", backup_vault: src}}
iam_role_arn: arn:aws:iam::123456789012:role/r
targets:
  - {{region: us-west-2, backup_vault: dr, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}
  - {{region: eu-west-1, backup_vault: dr, kms_key_arn: \"arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}}
tables:
  - name: orders
  - name: ledger
    targets: [eu-west-1]
drill: {{table_name: \"{template}\"}}
"
        );
        let loaded = drover_plan::load("p.yaml", text.as_bytes());
        loaded.plan.unwrap_or_else(|| panic!("{:?}", loaded.diagnostics.items()))
    }

    #[test]
    fn drill_names_match_the_template_with_any_short_id() {
        let p = plan("{table}-drill-{run}");
        let m = |region, name| drill_name(&p, region, name);
        assert_eq!(
            m("us-west-2", "orders-drill-abcd1234"),
            Some(("orders".into(), Some("abcd1234".into())))
        );
        assert_eq!(
            m("us-west-2", "orders-drill-decoy000"),
            Some(("orders".into(), Some("decoy000".into())))
        );
        // Not 8 characters, not lowercase, not the template, not a table of this region.
        assert_eq!(m("us-west-2", "orders-drill-abcd123"), None);
        assert_eq!(m("us-west-2", "orders-drill-abcd12345"), None);
        assert_eq!(m("us-west-2", "orders-drill-ABCD1234"), None);
        assert_eq!(m("us-west-2", "orders"), None);
        assert_eq!(m("us-west-2", "orders-copy-abcd1234"), None);
        assert_eq!(m("us-west-2", "ledger-drill-abcd1234"), None, "ledger is not restored there");
        assert_eq!(
            m("eu-west-1", "ledger-drill-abcd1234"),
            Some(("ledger".into(), Some("abcd1234".into())))
        );
        // The source region: any of the plan's tables.
        assert_eq!(
            m("us-east-1", "ledger-drill-abcd1234"),
            Some(("ledger".into(), Some("abcd1234".into())))
        );
        // A multi-byte name never panics.
        assert_eq!(m("us-west-2", "orders-drill-ééééé"), None);

        let p = plan("dr-{run}-{table}-{region}-{run}");
        assert_eq!(
            drill_name(&p, "us-west-2", "dr-abcd1234-orders-us-west-2-abcd1234"),
            Some(("orders".into(), Some("abcd1234".into())))
        );
        assert_eq!(drill_name(&p, "us-west-2", "dr-abcd1234-orders-us-west-2-abcd9999"), None);
        assert_eq!(drill_name(&p, "eu-west-1", "dr-abcd1234-orders-us-west-2-abcd1234"), None);

        let p = plan("{table}-drill");
        assert_eq!(drill_name(&p, "us-west-2", "orders-drill"), Some(("orders".into(), None)));
    }

    #[test]
    fn points_are_read_only_for_fully_managed_arns_of_plan_tables() {
        assert_eq!(backed_up_table("arn:aws:dynamodb:us-east-1:1:table/orders"), Some("orders"));
        assert_eq!(
            backed_up_table("arn:aws:dynamodb:us-east-1:1:table/orders/backup/x"),
            Some("orders")
        );
        assert_eq!(backed_up_table("arn:aws:ec2:us-east-1:1:volume/v"), None);
        assert!(fully_managed("arn:aws:backup:us-east-1:1:recovery-point:ABC"));
        assert!(fully_managed("arn:aws-cn:backup:cn-north-1:1:recovery-point:ABC"));
        assert!(!fully_managed("arn:aws:dynamodb:us-east-1:1:table/orders/backup/0161"));
    }

    const RUN: &str = "shop-20261124t000000z-abcd1234";
    const DAY: Millis = 86_400_000;

    fn item(kind: Kind, tags: &[(&str, &str)], created_at: Millis) -> Item {
        let mut item = new_item(kind, "us-west-2", None, "orders-drill-abcd1234");
        item.tags = tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        item.created_at = Some(created_at);
        if kind == Kind::Table {
            item.name_run = Some("abcd1234".to_owned());
        }
        item
    }

    fn decided(
        mut item: Item,
        older_than: Duration,
        run: Option<RunInfo>,
    ) -> (Action, Reason, String) {
        decide("shop", &mut item, 10 * DAY, older_than, ".drover", &|_| run.clone());
        (item.action, item.reason, item.why)
    }

    #[test]
    fn only_old_resources_of_finished_or_unknown_drills_of_this_plan_qualify() {
        let owned = [(PLAN_TAG, "shop"), (RUN_TAG, RUN), (MODE_TAG, "drill")];
        let finished = Some(RunInfo::Finished { success: true, mode: Mode::Drill });
        let day = Duration::from_secs(86_400);
        for kind in [Kind::Table, Kind::RecoveryPoint] {
            let (action, reason, why) = decided(item(kind, &owned, 2 * DAY), day, finished.clone());
            assert_eq!((action, reason), (Action::Delete, Reason::RunFinished), "{why}");
            let (action, reason, why) = decided(item(kind, &owned, 2 * DAY), day, None);
            assert_eq!((action, reason), (Action::Delete, Reason::RunUnknown));
            assert!(why.contains(".drover"), "{why}");
            let failed = Some(RunInfo::Finished { success: false, mode: Mode::Drill });
            let (action, _, why) = decided(item(kind, &owned, 2 * DAY), day, failed);
            assert_eq!(action, Action::Delete);
            assert!(why.contains("failed"), "{why}");
        }
        let spared = |item: Item, run: Option<RunInfo>| {
            let (action, reason, why) = decided(item, day, run);
            assert_eq!(action, Action::Spare, "{reason:?}: {why}");
            reason
        };
        let t = Kind::Table;
        let p = Kind::RecoveryPoint;
        assert_eq!(spared(item(t, &[], 2 * DAY), None), Reason::NotOwned);
        assert_eq!(spared(item(t, &[(PLAN_TAG, "shop")], 2 * DAY), None), Reason::NotOwned);
        assert_eq!(spared(item(t, &[(RUN_TAG, RUN)], 2 * DAY), None), Reason::NotOwned);
        assert_eq!(
            spared(item(t, &[(PLAN_TAG, "other"), (RUN_TAG, RUN)], 2 * DAY), None),
            Reason::OtherPlan
        );
        assert_eq!(
            spared(item(t, &[(PLAN_TAG, "shop"), (RUN_TAG, "../../etc/x")], 2 * DAY), None),
            Reason::BadRunTag
        );
        let backup = [(PLAN_TAG, "shop"), (RUN_TAG, RUN), (MODE_TAG, "backup")];
        assert_eq!(spared(item(p, &backup, 2 * DAY), None), Reason::NotADrillPoint);
        assert_eq!(
            spared(item(p, &[(PLAN_TAG, "shop"), (RUN_TAG, RUN)], 2 * DAY), None),
            Reason::NotADrillPoint
        );
        let other_run = [(PLAN_TAG, "shop"), (RUN_TAG, "shop-20261124t000000z-ffff0000")];
        assert_eq!(spared(item(t, &other_run, 2 * DAY), None), Reason::NameMismatch);
        let unfinished = Some(RunInfo::Unfinished { mode: Mode::Drill });
        assert_eq!(spared(item(t, &owned, 2 * DAY), unfinished.clone()), Reason::RunInProgress);
        assert_eq!(spared(item(p, &owned, 2 * DAY), unfinished), Reason::RunInProgress);
        assert_eq!(
            spared(item(t, &owned, 2 * DAY), Some(RunInfo::Unreadable("torn".into()))),
            Reason::JournalUnreadable
        );
        let failover = Some(RunInfo::Finished { success: true, mode: Mode::Failover });
        assert_eq!(spared(item(t, &owned, 2 * DAY), failover), Reason::NotADrill);
        assert_eq!(spared(item(t, &owned, 10 * DAY - 1000), finished.clone()), Reason::Younger);
        let mut unknown_age = item(t, &owned, 0);
        unknown_age.created_at = None;
        assert_eq!(spared(unknown_age.clone(), finished.clone()), Reason::AgeUnknown);
        // Without an age limit, an unknown age does not matter.
        let (action, _, _) = decided(unknown_age, Duration::ZERO, finished);
        assert_eq!(action, Action::Delete);
    }

    #[test]
    fn ages_show_their_two_largest_units() {
        assert_eq!(short_age(0), "0s");
        assert_eq!(short_age(45_000), "45s");
        assert_eq!(short_age(750_000), "12m30s");
        assert_eq!(short_age(5 * 3_600_000 + 59_000), "5h");
        assert_eq!(short_age(2 * 86_400_000 + 3 * 3_600_000 + 5_000), "2d3h");
        assert_eq!(short_age(30 * 86_400_000), "30d");
        assert!(short_age(u64::MAX).contains('d'));
    }
}
