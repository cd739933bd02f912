//! Lowering: a parsed YAML value to a validated [`Plan`], collecting every problem at once.
//!
//! The walk never stops at the first problem: each check records an [`Issue`] at a path and
//! carries on with what it can still read. Paths become places in the text later, in
//! [`crate::load`], and only when there is something to report.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_yaml::Value;

use crate::diag::{Code, Severity};
use crate::graph::PlanGraph;
use crate::model::{
    AssumeRole, BackupJobs, Drill, KeyValue, Objectives, Plan, RUN_SHORT_ID_LEN, Region, Source,
    StreamView, Table, TableId, Target, Validation, arn_account,
};
use crate::parse::{Path, Seg};
use crate::rules;

mod hooks;

/// Keys of each mapping in the format. The JSON Schema must list the same keys (a test checks).
pub(crate) mod keys {
    pub(crate) const TOP: &[&str] = &[
        "version",
        "name",
        "source",
        "iam_role_arn",
        "objectives",
        "targets",
        "defaults",
        "tables",
        "drill",
        "backup_jobs",
        "hooks",
        "notify",
    ];
    pub(crate) const SOURCE: &[&str] =
        &["region", "account_id", "backup_vault", "role_arn", "external_id", "session_duration"];
    pub(crate) const OBJECTIVES: &[&str] = &["rpo", "rto"];
    pub(crate) const TARGET: &[&str] = &[
        "region",
        "account_id",
        "role_arn",
        "external_id",
        "session_duration",
        "iam_role_arn",
        "backup_vault",
        "kms_key_arn",
    ];
    pub(crate) const SETTINGS: &[&str] = &[
        "targets",
        "ttl_attribute",
        "stream",
        "point_in_time_recovery",
        "deletion_protection",
        "tags",
        "validate",
    ];
    pub(crate) const TABLE: &[&str] = &[
        "name",
        "depends_on",
        "targets",
        "ttl_attribute",
        "stream",
        "point_in_time_recovery",
        "deletion_protection",
        "tags",
        "validate",
    ];
    /// A table's `validate`; `defaults.validate` reads the same keys and refuses `hooks`.
    pub(crate) const VALIDATE: &[&str] = &["min_items", "canary_keys", "digest", "hooks"];
    pub(crate) const HOOK: &[&str] = &["name", "run", "timeout"];
    pub(crate) const HOOKS: &[&str] = &["after_target", "after_run"];
    pub(crate) const NOTIFY: &[&str] = &["eventbridge", "sns"];
    pub(crate) const EVENTBRIDGE: &[&str] = &["region", "event_bus"];
    pub(crate) const SNS: &[&str] = &["topic_arn"];
    pub(crate) const DRILL: &[&str] =
        &["table_name", "write_marker", "recovery_point_retention", "source_reads"];
    pub(crate) const SOURCE_READS: &[&str] = &["provisioned_share", "on_demand_units"];
    pub(crate) const BACKUP_JOBS: &[&str] = &["start_window", "complete_window"];
}

/// Tags per table that a plan may set: DynamoDB allows 50, drover adds `drover:plan` and
/// `drover:run`.
const MAX_PLAN_TAGS: usize = 48;
/// Unknown dependencies that get a "did you mean" (each costs a scan of every table name).
const MAX_SUGGESTIONS: usize = 20;
/// DynamoDB's limit on table names.
const MAX_TABLE_NAME: usize = 255;

/// Where an issue is, before the text is consulted.
#[derive(Debug, Clone)]
pub(crate) enum At {
    /// The key of the entry at this path (or the item itself, in a list).
    Key(Path),
    /// The value at this path.
    Value(Path),
    /// A line and 1-based column reported by the YAML parser.
    LineCol(usize, usize),
    /// The start of the file.
    Start,
}

/// A problem found while lowering, located by path.
#[derive(Debug, Clone)]
pub(crate) struct Issue {
    pub(crate) code: Code,
    pub(crate) severity: Severity,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
    pub(crate) at: At,
    pub(crate) label: Option<String>,
    pub(crate) related: Vec<(At, String)>,
}

impl Issue {
    pub(crate) fn new(severity: Severity, code: Code, at: At, message: impl Into<String>) -> Issue {
        Issue {
            code,
            severity,
            message: message.into(),
            help: None,
            at,
            label: None,
            related: Vec::new(),
        }
    }

    fn help(&mut self, help: impl Into<String>) -> &mut Issue {
        self.help = Some(help.into());
        self
    }

    fn label(&mut self, label: impl Into<String>) -> &mut Issue {
        self.label = Some(label.into());
        self
    }

    fn related(&mut self, at: At, label: impl Into<String>) -> &mut Issue {
        self.related.push((at, label.into()));
        self
    }
}

/// A path under construction, linked through the stack so that a valid plan allocates none.
#[derive(Clone, Copy)]
struct P<'a> {
    parent: Option<&'a P<'a>>,
    seg: S<'a>,
}

#[derive(Clone, Copy)]
enum S<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

const ROOT: P<'static> = P { parent: None, seg: S::Root };

impl<'a> P<'a> {
    fn key(&'a self, key: &'a str) -> P<'a> {
        P { parent: Some(self), seg: S::Key(key) }
    }

    fn idx(&'a self, i: usize) -> P<'a> {
        P { parent: Some(self), seg: S::Index(i) }
    }

    fn path(&self) -> Path {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(p) = cur {
            match p.seg {
                S::Root => {}
                S::Key(k) => segs.push(Seg::Key(k.to_owned())),
                S::Index(i) => segs.push(Seg::Index(i)),
            }
            cur = p.parent;
        }
        segs.reverse();
        segs
    }

    fn at_key(&self) -> At {
        At::Key(self.path())
    }

    fn at_value(&self) -> At {
        At::Value(self.path())
    }
}

/// `tables[i].depends_on[j]` and friends, for issues raised after the walk.
fn table_path(i: usize, rest: &[Seg]) -> Path {
    let mut p = vec![Seg::Key("tables".into()), Seg::Index(i)];
    p.extend_from_slice(rest);
    p
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The entries of a mapping whose keys were checked against the format.
struct Fields<'v> {
    entries: Vec<(&'v str, &'v Value)>,
}

impl<'v> Fields<'v> {
    /// The value of `key`; an explicit `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.entries.iter().find(|(k, v)| *k == key && !v.is_null()).map(|(_, v)| *v)
    }
}

/// Settings a table takes from itself or from `defaults`.
#[derive(Default)]
struct Settings {
    targets: Option<Vec<Region>>,
    ttl_attribute: Option<String>,
    stream: Option<StreamView>,
    point_in_time_recovery: Option<bool>,
    deletion_protection: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
    min_items: Option<u64>,
    canary_keys: Option<Vec<BTreeMap<String, KeyValue>>>,
    digest: Option<bool>,
    /// `validate.hooks`, in tables only.
    hooks: Option<Vec<crate::model::Hook>>,
}

/// A dependency: (dependent, dependency, index of the entry in the dependent's `depends_on`).
type Edge = (usize, usize, usize);

struct RawTable {
    name: Option<String>,
    /// `depends_on` entries that are strings, with their index in the list.
    depends_on: Vec<(usize, String)>,
    settings: Settings,
}

#[derive(Default)]
struct Cx {
    issues: Vec<Issue>,
}

impl Cx {
    fn error(&mut self, code: Code, at: At, message: impl Into<String>) -> &mut Issue {
        self.push(Issue::new(Severity::Error, code, at, message))
    }

    fn warning(&mut self, code: Code, at: At, message: impl Into<String>) -> &mut Issue {
        self.push(Issue::new(Severity::Warning, code, at, message))
    }

    fn push(&mut self, issue: Issue) -> &mut Issue {
        let i = self.issues.len();
        self.issues.push(issue);
        &mut self.issues[i]
    }

    fn wrong_type(&mut self, v: &Value, p: &P<'_>, expected: &str) {
        let found = describe(v);
        let issue = self.error(
            Code::WrongType,
            p.at_value(),
            format!("expected {expected}, found {found}"),
        );
        issue.label(format!("expected {expected}"));
        if expected == "a string" && matches!(v, Value::Number(_) | Value::Bool(_)) {
            issue.help("quote the value to make it a string, like \"123\"");
        }
    }

    fn fields<'v>(&mut self, v: &'v Value, p: &P<'_>, known: &[&str]) -> Option<Fields<'v>> {
        let Value::Mapping(map) = v else {
            self.wrong_type(v, p, "a mapping");
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Value::String(k) = k else {
                self.error(
                    Code::UnknownKey,
                    p.at_value(),
                    format!("keys must be strings, found {}", describe(k)),
                );
                continue;
            };
            if known.contains(&k.as_str()) {
                entries.push((k.as_str(), v));
                continue;
            }
            let issue =
                self.error(Code::UnknownKey, p.key(k).at_key(), format!("unknown key `{k}`"));
            match rules::did_you_mean(k, known.iter().copied()) {
                Some(m) => issue.help(format!("did you mean `{m}`?")),
                None => issue.help(format!("expected one of: {}", known.join(", "))),
            };
        }
        Some(Fields { entries })
    }

    fn required<'v>(&mut self, f: &Fields<'v>, key: &str, p: &P<'_>) -> Option<&'v Value> {
        let v = f.get(key);
        if v.is_none() {
            let at = if matches!(p.seg, S::Root) { At::Start } else { p.at_key() };
            let msg = match p.seg {
                S::Root => format!("missing required key `{key}`"),
                _ => format!("missing required key `{key}` in `{}`", display_path(&p.path())),
            };
            self.error(Code::MissingKey, at, msg).label(format!("`{key}` is required"));
        }
        v
    }

    fn string<'v>(&mut self, v: &'v Value, p: &P<'_>) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            _ => {
                self.wrong_type(v, p, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value, p: &P<'_>) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(v, p, "true or false");
                None
            }
        }
    }

    fn list<'v>(&mut self, v: &'v Value, p: &P<'_>) -> Option<&'v [Value]> {
        match v {
            Value::Sequence(s) => Some(s),
            _ => {
                self.wrong_type(v, p, "a list");
                None
            }
        }
    }

    /// A string checked by `rule`, reporting `code` when it fails.
    fn checked(
        &mut self,
        v: &Value,
        p: &P<'_>,
        code: Code,
        rule: impl Fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let s = self.string(v, p)?;
        match rule(s) {
            Ok(()) => Some(s.to_owned()),
            Err(msg) => {
                self.error(code, p.at_value(), msg);
                None
            }
        }
    }

    fn region(&mut self, v: &Value, p: &P<'_>) -> Option<Region> {
        let s = self.string(v, p)?;
        Region::parse(s)
            .map_err(|msg| {
                let issue = self.error(Code::Region, p.at_value(), msg);
                if let Some(fixed) = fix_region(s) {
                    issue.help(format!("did you mean `{fixed}`?"));
                }
            })
            .ok()
    }

    fn duration(&mut self, f: &Fields<'_>, key: &str, p: &P<'_>) -> Option<std::time::Duration> {
        let v = f.get(key)?;
        let p = p.key(key);
        let s = self.string(v, &p)?;
        rules::parse_duration(s).map_err(|msg| self.error(Code::Duration, p.at_value(), msg)).ok()
    }
}

/// `us-east1` -> `us-east-1`, `US-EAST-1` -> `us-east-1`: the region a typo most likely meant.
fn fix_region(s: &str) -> Option<String> {
    let lower = s.trim().to_ascii_lowercase().replace('_', "-");
    let split =
        lower.find(|c: char| c.is_ascii_digit()).filter(|i| *i > 0 && !lower[..*i].ends_with('-'));
    let fixed = split.map_or(lower.clone(), |i| format!("{}-{}", &lower[..i], &lower[i..]));
    (fixed != s && rules::check_region(&fixed).is_ok()).then_some(fixed)
}

/// `tables[3].depends_on[0]`
pub(crate) fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                let _ = write!(out, ".{k}");
            }
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// Lowers a parsed document. Returns the plan when there is no error, and every issue.
pub(crate) fn lower(root: &Value) -> (Option<Plan>, Vec<Issue>) {
    let mut cx = Cx::default();
    if root.is_null() {
        cx.error(Code::EmptyPlan, At::Start, "the file holds no plan")
            .help("start from `drover schema` or an example in plans/");
        return (None, cx.issues);
    }
    let Some(top) = cx.fields(root, &ROOT, keys::TOP) else {
        return (None, cx.issues);
    };

    let version = cx.required(&top, "version", &ROOT).and_then(|v| {
        let p = ROOT.key("version");
        match v.as_u64() {
            Some(1) => Some(1),
            Some(n) => {
                cx.error(Code::Version, p.at_value(), format!("unsupported plan version {n}"))
                    .help("this drover reads version 1");
                None
            }
            None => {
                cx.wrong_type(v, &p, "a version number");
                None
            }
        }
    });
    let name = cx
        .required(&top, "name", &ROOT)
        .and_then(|v| cx.checked(v, &ROOT.key("name"), Code::PlanName, rules::check_plan_name));
    let source = cx.required(&top, "source", &ROOT).and_then(|v| lower_source(&mut cx, v));
    let iam_role_arn = cx
        .required(&top, "iam_role_arn", &ROOT)
        .and_then(|v| lower_role(&mut cx, v, source.as_ref().map(|(s, _)| s)));
    let accounts = source_accounts(&mut cx, source.as_ref(), iam_role_arn.as_deref());
    let source = source.map(|(s, _)| s);
    let objectives =
        top.get("objectives").map(|v| lower_objectives(&mut cx, v)).unwrap_or_default();
    let targets = cx
        .required(&top, "targets", &ROOT)
        .map(|v| lower_targets(&mut cx, v, source.as_ref(), &accounts))
        .unwrap_or_default();
    let defaults = top
        .get("defaults")
        .and_then(|v| {
            let p = ROOT.key("defaults");
            let f = cx.fields(v, &p, keys::SETTINGS)?;
            Some(lower_settings(&mut cx, &f, &p, &targets))
        })
        .unwrap_or_default();
    let raw_tables = cx
        .required(&top, "tables", &ROOT)
        .map(|v| lower_tables(&mut cx, v, &targets))
        .unwrap_or_default();
    let mut drill = Drill::default();
    if let Some(v) = top.get("drill") {
        let p = ROOT.key("drill");
        if let Some(f) = cx.fields(v, &p, keys::DRILL) {
            if let Some(t) = f.get("table_name").and_then(|v| cx.string(v, &p.key("table_name"))) {
                t.clone_into(&mut drill.table_name);
            }
            if let Some(m) =
                f.get("write_marker").and_then(|v| cx.boolean(v, &p.key("write_marker")))
            {
                drill.write_marker = m;
            }
            if let Some(v) = f.get("source_reads") {
                let sp = p.key("source_reads");
                if let Some(g) = cx.fields(v, &sp, keys::SOURCE_READS) {
                    if let Some(v) = g.get("provisioned_share") {
                        let kp = sp.key("provisioned_share");
                        match v.as_str().and_then(parse_percent) {
                            Some(share) => drill.source_reads.provisioned_share = share,
                            None => {
                                cx.error(Code::WrongType, kp.at_value(), "expected a share of the table's provisioned read capacity, from 1% to 100%")
                                    .help("write a percentage, like \"25%\"");
                            }
                        }
                    }
                    if let Some(v) = g.get("on_demand_units") {
                        let kp = sp.key("on_demand_units");
                        match v.as_u64().filter(|n| (1..=40_000).contains(n)) {
                            Some(n) => drill.source_reads.on_demand_units = u32::try_from(n).unwrap_or(40_000),
                            None => cx.wrong_type(v, &kp, "read capacity units per second, from 1 to 40000 (an on-demand table's default maximum)"),
                        }
                    }
                }
            }
            if let Some(d) = cx.duration(&f, "recovery_point_retention", &p) {
                let kp = p.key("recovery_point_retention");
                match whole_days(d) {
                    Some(days) => drill.recovery_point_retention_days = days,
                    None => {
                        cx.error(Code::Duration, kp.at_value(), "a recovery point's retention is whole days (AWS Backup's Lifecycle.DeleteAfterDays), from 1d")
                            .help("write it in days, like 1d or 7d");
                    }
                }
            }
        }
    }
    let mut backup_jobs = BackupJobs::default();
    if let Some(v) = top.get("backup_jobs") {
        let p = ROOT.key("backup_jobs");
        if let Some(f) = cx.fields(v, &p, keys::BACKUP_JOBS) {
            let errors_before = cx.issues.len();
            if let Some(d) = cx.duration(&f, "start_window", &p) {
                if d < std::time::Duration::from_secs(3600) || !d.as_secs().is_multiple_of(60) {
                    cx.error(Code::Duration, p.key("start_window").at_value(), "AWS Backup's start window is whole minutes, at least 60 (StartWindowMinutes)")
                        .help("write at least 1h, like 1h or 90m");
                } else {
                    backup_jobs.start_window = d;
                }
            }
            if let Some(d) = cx.duration(&f, "complete_window", &p) {
                if !d.as_secs().is_multiple_of(60) {
                    cx.error(
                        Code::Duration,
                        p.key("complete_window").at_value(),
                        "AWS Backup's complete window is whole minutes (CompleteWindowMinutes)",
                    )
                    .help("write it in minutes or hours, like 12h");
                } else {
                    backup_jobs.complete_window = d;
                }
            }
            // Compared only when both windows are valid (not a default standing in).
            if cx.issues.len() == errors_before
                && backup_jobs.complete_window <= backup_jobs.start_window
            {
                cx.error(Code::Duration, p.at_value(), format!(
                    "the complete window ({}) must be longer than the start window ({}): both count from when the job is created",
                    crate::model::format_duration(backup_jobs.complete_window),
                    crate::model::format_duration(backup_jobs.start_window)
                ));
            }
        }
    }

    let run_hooks =
        top.get("hooks").map(|v| hooks::lower_run_hooks(&mut cx, v)).unwrap_or_default();
    let notify = top.get("notify").map(|v| hooks::lower_notify(&mut cx, v)).unwrap_or_default();

    let tables = resolve_tables(&mut cx, raw_tables, &defaults, &targets);
    let graph = tables.as_ref().map(|(tables, edges)| check_graph(&mut cx, tables, edges));
    if let Some((tables, _)) = &tables {
        check_drill_template(&mut cx, &drill, tables);
    }

    let has_errors = cx.issues.iter().any(|i| i.severity == Severity::Error);
    let plan = match (version, name, source, iam_role_arn, tables, graph, has_errors) {
        (
            Some(version),
            Some(name),
            Some(source),
            Some(iam_role_arn),
            Some((tables, _)),
            Some(graph),
            false,
        ) => Some(Plan {
            version,
            name,
            source,
            iam_role_arn,
            objectives,
            targets,
            tables,
            drill,
            backup_jobs,
            hooks: run_hooks,
            notify,
            graph,
        }),
        _ => None,
    };
    (plan, cx.issues)
}

/// `25%` -> 0.25, for shares from 1% to 100%.
fn parse_percent(s: &str) -> Option<f64> {
    let n: f64 = s.strip_suffix('%')?.trim().parse().ok()?;
    (1.0..=100.0).contains(&n).then_some(n / 100.0)
}

/// A duration in whole days, from one day up to AWS Backup's longest retention (100 years).
fn whole_days(d: std::time::Duration) -> Option<u32> {
    let secs = d.as_secs();
    (secs.is_multiple_of(86_400) && secs >= 86_400)
        .then(|| u32::try_from(secs / 86_400).ok())
        .flatten()
        .filter(|d| *d <= 36_500)
}

/// A key that may be absent, given but invalid (and reported), or valid.
#[derive(Debug, Clone)]
enum Given<T> {
    Absent,
    Invalid,
    Valid(T),
}

impl<T> Given<T> {
    /// From a key's lowering: `None` when absent, `Some(None)` when reported invalid.
    fn from_checked(v: Option<Option<T>>) -> Given<T> {
        match v {
            None => Given::Absent,
            Some(None) => Given::Invalid,
            Some(Some(t)) => Given::Valid(t),
        }
    }

    fn valid(&self) -> Option<&T> {
        match self {
            Given::Valid(t) => Some(t),
            Given::Absent | Given::Invalid => None,
        }
    }

    fn into_valid(self) -> Option<T> {
        match self {
            Given::Valid(t) => Some(t),
            Given::Absent | Given::Invalid => None,
        }
    }

    /// This, unless the plan says nothing: then `other`.
    fn or(self, other: Given<T>) -> Given<T> {
        match self {
            Given::Absent => other,
            given => given,
        }
    }
}

/// An entry of the plan that is in an account: the top level (for `iam_role_arn`), the source
/// or a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Top,
    Source,
    Target(usize),
}

impl Entry {
    /// The path of `key` in this entry.
    fn path(self, key: &str) -> Path {
        let mut path = match self {
            Entry::Top => Vec::new(),
            Entry::Source => vec![Seg::Key("source".into())],
            Entry::Target(i) => vec![Seg::Key("targets".into()), Seg::Index(i)],
        };
        path.push(Seg::Key(key.to_owned()));
        path
    }

    /// `source`, `targets[1]`
    fn name(self) -> String {
        match self {
            Entry::Top => "the plan".to_owned(),
            Entry::Source => "source".to_owned(),
            Entry::Target(i) => format!("targets[{i}]"),
        }
    }
}

/// An account, and the key of the plan that says so (built into messages only on errors).
#[derive(Debug, Clone)]
struct Account {
    id: String,
    entry: Entry,
    /// `account_id`, `role_arn` or (at the top level) `iam_role_arn`.
    key: &'static str,
}

impl Account {
    fn at(&self) -> At {
        At::Value(self.entry.path(self.key))
    }

    /// "`targets[1].account_id`", "the account of `source.role_arn`"
    fn what(&self) -> String {
        let path = display_path(&self.entry.path(self.key));
        if self.key == "account_id" {
            format!("`{path}`")
        } else {
            format!("the account of `{path}`")
        }
    }

    /// A label for the place that says so.
    fn label(&self) -> &'static str {
        match self.entry {
            Entry::Target(_) => "the target's account",
            Entry::Top | Entry::Source => "the source account",
        }
    }
}

/// The account an entry pins: its `account_id`, else the account of its `role_arn`.
fn entry_account(
    entry: Entry,
    account_id: &Given<String>,
    role: &Given<AssumeRole>,
) -> Given<Account> {
    match (account_id, role) {
        (Given::Valid(id), _) => Given::Valid(Account { id: id.clone(), entry, key: "account_id" }),
        (Given::Absent, Given::Valid(role)) => {
            Given::Valid(Account { id: role.account().to_owned(), entry, key: "role_arn" })
        }
        (Given::Invalid, _) | (Given::Absent, Given::Invalid) => Given::Invalid,
        (Given::Absent, Given::Absent) => Given::Absent,
    }
}

/// The source account as the targets see it.
struct SourceAccounts {
    /// What the source pins (`source.account_id`, else the account of `source.role_arn`): the
    /// account v1 plans checked keys against.
    pinned: Given<Account>,
    /// `pinned`, else the account of the plan's `iam_role_arn` ([`Plan::source_account`]).
    effective: Given<Account>,
}

fn lower_source(cx: &mut Cx, v: &Value) -> Option<(Source, Given<Account>)> {
    let p = ROOT.key("source");
    let f = cx.fields(v, &p, keys::SOURCE)?;
    let region = cx.required(&f, "region", &p).and_then(|v| cx.region(v, &p.key("region")));
    let account_id =
        Given::from_checked(f.get("account_id").map(|v| {
            cx.checked(v, &p.key("account_id"), Code::AccountId, rules::check_account_id)
        }));
    let backup_vault = cx.required(&f, "backup_vault", &p).and_then(|v| {
        cx.checked(v, &p.key("backup_vault"), Code::VaultName, rules::check_vault_name)
    });
    let role = lower_assume_role(cx, &f, &p, region.as_ref(), &account_id);
    let account = entry_account(Entry::Source, &account_id, &role);
    let source = Source {
        region: region?,
        account_id: account_id.into_valid(),
        backup_vault: backup_vault?,
        role: role.into_valid(),
    };
    Some((source, account))
}

/// The role drover assumes for an entry (`role_arn`, `external_id`, `session_duration`),
/// checked for shape, against the entry's region's partition and against its `account_id`.
fn lower_assume_role(
    cx: &mut Cx,
    f: &Fields<'_>,
    p: &P<'_>,
    region: Option<&Region>,
    account_id: &Given<String>,
) -> Given<AssumeRole> {
    let external_id = f.get("external_id").map(|v| {
        let ep = p.key("external_id");
        let s = cx.string(v, &ep)?;
        match rules::check_external_id(s) {
            Ok(()) => Some(s.to_owned()),
            Err(msg) => {
                cx.error(Code::ExternalId, ep.at_value(), msg).help(
                    "write the external id the role's trust policy requires (its `sts:ExternalId` condition), exactly as it is there",
                );
                None
            }
        }
    });
    let session_duration = f.get("session_duration").and_then(|_| {
        let d = cx.duration(f, "session_duration", p)?;
        if rules::SESSION_DURATIONS.contains(&d) {
            return Some(d);
        }
        cx.error(
            Code::Duration,
            p.key("session_duration").at_value(),
            format!(
                "a role session lasts from 15m to 12h (STS `DurationSeconds` 900 to 43200), not {}",
                crate::model::format_duration(d)
            ),
        )
        .help("write a duration from 15m to 12h, like 1h; the role's own maximum session duration (1h unless raised) bounds it too");
        None
    });
    let Some(v) = f.get("role_arn") else {
        for key in ["external_id", "session_duration"] {
            if f.get(key).is_some() {
                cx.error(
                    Code::NoRoleArn,
                    p.key(key).at_key(),
                    format!(
                        "`{key}` without `role_arn`: it is a setting of the role drover assumes"
                    ),
                )
                .help(format!(
                    "add `role_arn` (the role drover assumes to act in this entry's account) to `{}`, or remove `{key}`",
                    display_path(&p.path())
                ));
            }
        }
        return Given::Absent;
    };
    let rp = p.key("role_arn");
    let Some(s) = cx.string(v, &rp) else { return Given::Invalid };
    let arn = match rules::check_role_arn(s) {
        Ok(arn) => arn,
        Err(msg) => {
            cx.error(Code::RoleArn, rp.at_value(), msg).help(
                "name the IAM role drover assumes to act in this entry's account, like `arn:aws:iam::123456789012:role/drover`",
            );
            return Given::Invalid;
        }
    };
    if let Some(region) = region
        && arn.partition != region.partition()
    {
        role_partition_mismatch(cx, &rp, arn.partition, "region", region);
        return Given::Invalid;
    }
    if let Given::Valid(id) = account_id
        && arn.account != id
    {
        let ap = p.key("account_id");
        cx.error(
            Code::RoleArn,
            rp.at_value(),
            format!(
                "the role is in account {} but `{}` is {id}",
                arn.account,
                display_path(&ap.path())
            ),
        )
        .related(ap.at_value(), "the entry's account")
        .help(format!(
            "drover assumes a role of the account it acts in: use a role of account {id}, or correct `account_id`"
        ));
        return Given::Invalid;
    }
    Given::Valid(AssumeRole {
        role_arn: s.to_owned(),
        external_id: external_id.flatten(),
        session_duration,
    })
}

fn lower_role(cx: &mut Cx, v: &Value, source: Option<&Source>) -> Option<String> {
    let p = ROOT.key("iam_role_arn");
    let s = cx.string(v, &p)?;
    let arn = match rules::check_role_arn(s) {
        Ok(arn) => arn,
        Err(msg) => {
            cx.error(Code::IamRoleArn, p.at_value(), msg);
            return None;
        }
    };
    let source = source?;
    if arn.partition != source.region.partition() {
        cx.error(
            Code::PartitionMismatch,
            p.at_value(),
            format!(
                "the role is in partition `{}` but the source region `{}` is in `{}`",
                arn.partition,
                source.region,
                source.region.partition()
            ),
        );
        return None;
    }
    if let Some(account) = &source.account_id
        && arn.account != account
    {
        cx.error(
            Code::IamRoleArn,
            p.at_value(),
            format!("the role is in account {} but `source.account_id` is {account}", arn.account),
        )
        .related(At::Value(ROOT.key("source").key("account_id").path()), "the plan's account");
        return None;
    }
    Some(s.to_owned())
}

fn lower_objectives(cx: &mut Cx, v: &Value) -> Objectives {
    let p = ROOT.key("objectives");
    let Some(f) = cx.fields(v, &p, keys::OBJECTIVES) else {
        return Objectives::default();
    };
    let objectives =
        Objectives { rpo: cx.duration(&f, "rpo", &p), rto: cx.duration(&f, "rto", &p) };
    if let (Some(rpo), Some(rto)) = (objectives.rpo, objectives.rto)
        && rto < rpo
    {
        cx.warning(
            Code::RtoBelowRpo,
            p.key("rto").at_value(),
            "the RTO objective is shorter than the RPO objective",
        )
        .label("recovery time objective")
        .related(p.key("rpo").at_value(), "recovery point objective")
        .help(
            "an RTO shorter than the RPO is unusual: check the units (RPO bounds data loss, \
                 RTO bounds the time to recover)",
        );
    }
    objectives
}

/// The source account as the targets see it. When `source.account_id` does not name it, the
/// plan's `iam_role_arn` does, and `source.role_arn` must be in the same account.
fn source_accounts(
    cx: &mut Cx,
    source: Option<&(Source, Given<Account>)>,
    iam_role_arn: Option<&str>,
) -> SourceAccounts {
    let Some((_, pinned)) = source else {
        return SourceAccounts { pinned: Given::Invalid, effective: Given::Invalid };
    };
    let mut pinned = pinned.clone();
    if let (Given::Valid(account), Some(iam)) = (&pinned, iam_role_arn)
        && account.key == "role_arn"
        && arn_account(iam) != account.id
    {
        cx.error(
            Code::RoleArn,
            account.at(),
            format!(
                "the role is in account {} but the plan's `iam_role_arn` is in account {}: both are roles of the source account",
                account.id,
                arn_account(iam)
            ),
        )
        .related(
            At::Value(ROOT.key("iam_role_arn").path()),
            "the AWS Backup role of the source account",
        )
        .help("drover acts in the source account with `source.role_arn` and AWS Backup backs up there with `iam_role_arn`: use roles of one account, and name it in `source.account_id`");
        pinned = Given::Invalid;
    }
    let from_iam = match iam_role_arn {
        Some(iam) => Given::Valid(Account {
            id: arn_account(iam).to_owned(),
            entry: Entry::Top,
            key: "iam_role_arn",
        }),
        None => Given::Invalid,
    };
    SourceAccounts { effective: pinned.clone().or(from_iam), pinned }
}

fn lower_targets(
    cx: &mut Cx,
    v: &Value,
    source: Option<&Source>,
    accounts: &SourceAccounts,
) -> Vec<Target> {
    let p = ROOT.key("targets");
    let Some(items) = cx.list(v, &p) else {
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(Code::NoTargets, p.at_key(), "the plan has no targets")
            .help("add at least one target region to recover into");
    }
    // The roles drover assumes, with their accounts, for the one-role-per-account check.
    let mut roles: Vec<(String, Entry, AssumeRole)> = Vec::new();
    // Every entry's account, for the one-account-without-a-role check.
    let mut places: Vec<(String, Entry)> = Vec::new();
    if let Some(account) = accounts.effective.valid() {
        places.push((account.id.clone(), Entry::Source));
        if let Some(role) = source.and_then(|s| s.role.as_ref()) {
            roles.push((account.id.clone(), Entry::Source, role.clone()));
        }
    }
    let mut targets: Vec<Target> = Vec::new();
    let mut seen: HashMap<Region, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let p = p.idx(i);
        let entry = Entry::Target(i);
        let Some(f) = cx.fields(item, &p, keys::TARGET) else { continue };
        let region = cx.required(&f, "region", &p).and_then(|v| cx.region(v, &p.key("region")));
        let account_id = Given::from_checked(f.get("account_id").map(|v| {
            cx.checked(v, &p.key("account_id"), Code::AccountId, rules::check_account_id)
        }));
        let role = lower_assume_role(cx, &f, &p, region.as_ref(), &account_id);
        let pinned = entry_account(entry, &account_id, &role);
        let account = pinned.clone().or(accounts.effective.clone());
        let crossing = match (&account, &accounts.effective) {
            (Given::Valid(target), Given::Valid(source)) if target.id != source.id => Some(target),
            _ => None,
        };
        let restore_role = lower_restore_role(cx, &f, &p, region.as_ref(), &account, crossing);
        // A role the plan names but that is invalid was reported already.
        if let Some(account) = account.valid().filter(|_| !matches!(role, Given::Invalid)) {
            places.push((account.id.clone(), entry));
            if let Some(role) = role.valid() {
                roles.push((account.id.clone(), entry, role.clone()));
            }
        }
        let vault = cx.required(&f, "backup_vault", &p).and_then(|v| {
            cx.checked(v, &p.key("backup_vault"), Code::VaultName, rules::check_vault_name)
        });
        let key =
            cx.required(&f, "kms_key_arn", &p).and_then(|v| cx.string(v, &p.key("kms_key_arn")));
        let Some(region) = region else { continue };
        let region_p = p.key("region");
        if let Some(source) = source {
            if region == source.region {
                cx.error(
                    Code::TargetIsSource,
                    region_p.at_value(),
                    format!("target region `{region}` is the source region"),
                )
                .related(At::Value(ROOT.key("source").key("region").path()), "source region")
                .help("cross-region DR recovers into another region");
                continue;
            }
            if region.partition() != source.region.partition() {
                cx.error(
                    Code::PartitionMismatch,
                    region_p.at_value(),
                    format!(
                        "target region `{region}` is in partition `{}`, the source in `{}`: AWS Backup cannot copy across partitions",
                        region.partition(),
                        source.region.partition()
                    ),
                );
                continue;
            }
        }
        if let Some(first) = seen.get(&region) {
            cx.error(
                Code::DuplicateTarget,
                region_p.at_value(),
                format!("target region `{region}` is listed twice"),
            )
            .related(
                At::Value(ROOT.key("targets").idx(*first).key("region").path()),
                "first listed here",
            );
            continue;
        }
        seen.insert(region.clone(), i);
        // Keys are checked against the account the plan pins for the target: its own, else
        // the source's (v1 plans pinned it with `source.account_id` alone).
        let key_account = pinned.or(accounts.pinned.clone());
        let key = key.and_then(|key| {
            let place = KeyPlace { region: &region, account: key_account.valid(), crossing };
            check_target_key(cx, key, &place, &p.key("kms_key_arn"))
        });
        if let (Some(backup_vault), Some(kms_key_arn)) = (vault, key) {
            targets.push(Target {
                region,
                backup_vault,
                kms_key_arn,
                account_id: account_id.into_valid(),
                role: role.into_valid(),
                iam_role_arn: restore_role,
            });
        }
    }
    check_role_conflicts(cx, &roles);
    check_roleless_accounts(cx, &places, &roles);
    targets
}

/// drover acts with the operator's own credentials in at most one account: every other
/// account of the plan needs a role to assume there. Reported at the first entry of each
/// further account without one.
fn check_roleless_accounts(
    cx: &mut Cx,
    places: &[(String, Entry)],
    roles: &[(String, Entry, AssumeRole)],
) {
    let mut roleless: Vec<(&str, Entry)> = Vec::new();
    for (account, entry) in places {
        let has_role = roles.iter().any(|(a, _, _)| a == account);
        if has_role || roleless.iter().any(|(a, _)| a == account) {
            continue;
        }
        roleless.push((account, *entry));
    }
    let Some(((first, first_entry), rest)) = roleless.split_first() else { return };
    for (account, entry) in rest {
        let key = if matches!(entry, Entry::Target(_)) { "account_id" } else { "region" };
        cx.error(
            Code::MissingRoleArn,
            At::Value(entry.path(key)),
            format!(
                "accounts {first} and {account} both name no `role_arn`: drover acts with its own credentials in one account only"
            ),
        )
        .label(format!("account {account}, without a role"))
        .related(At::Value(first_entry.path("region")), format!("account {first}, without a role"))
        .help(format!(
            "name the role drover assumes in account {account} (`role_arn`, with `external_id` if its trust policy requires one)"
        ));
    }
}

/// A target's `iam_role_arn`: the AWS Backup role that restores in the target's account. A
/// target in another account than the source's must name one.
fn lower_restore_role(
    cx: &mut Cx,
    f: &Fields<'_>,
    p: &P<'_>,
    region: Option<&Region>,
    account: &Given<Account>,
    crossing: Option<&Account>,
) -> Option<String> {
    let Some(v) = f.get("iam_role_arn") else {
        if let Some(target) = crossing {
            cx.error(
                Code::MissingRestoreRole,
                target.at(),
                format!(
                    "`{}` is in account {}, not in the source account, and names no `iam_role_arn`",
                    display_path(&p.path()),
                    target.id
                ),
            )
            .label("another account than the source's")
            .help(format!(
                "add `iam_role_arn: arn:aws:iam::{}:role/<name>` to the target: AWS Backup restores in account {} with a role of that account, not with the plan's `iam_role_arn`",
                target.id, target.id
            ));
        }
        return None;
    };
    let rp = p.key("iam_role_arn");
    let s = cx.string(v, &rp)?;
    let arn = match rules::check_role_arn(s) {
        Ok(arn) => arn,
        Err(msg) => {
            cx.error(Code::IamRoleArn, rp.at_value(), msg).help(
                "name the role AWS Backup assumes to restore in the target's account, like `arn:aws:iam::123456789012:role/drover-restore`",
            );
            return None;
        }
    };
    if let Some(region) = region
        && arn.partition != region.partition()
    {
        role_partition_mismatch(cx, &rp, arn.partition, "target region", region);
        return None;
    }
    if let Some(account) = account.valid()
        && arn.account != account.id
    {
        let inherited = !matches!(account.entry, Entry::Target(_));
        let issue = cx.error(
            Code::IamRoleArn,
            rp.at_value(),
            format!(
                "the restore role is in account {} but the target is in account {}",
                arn.account, account.id
            ),
        );
        if inherited {
            issue
                .related(
                    account.at(),
                    "the source account (the target names no account of its own)",
                )
                .help(format!(
                    "a restore runs in the target's account with a role of that account: use a role of account {}, or name the target's `account_id` when it is in another account",
                    account.id
                ));
        } else {
            issue.related(account.at(), "the target's account").help(format!(
                "a restore runs in the target's account with a role of that account: use a role of account {}",
                account.id
            ));
        }
        return None;
    }
    Some(s.to_owned())
}

/// Where a target's key must be.
struct KeyPlace<'a> {
    region: &'a Region,
    /// The account the plan pins for the target, if it does.
    account: Option<&'a Account>,
    /// The target's account, when it is not the source's.
    crossing: Option<&'a Account>,
}

fn check_target_key(cx: &mut Cx, key: &str, place: &KeyPlace<'_>, p: &P<'_>) -> Option<String> {
    let region = place.region;
    if let Some(target) = place.crossing
        && rules::is_aws_managed_alias(key)
    {
        cx.error(
            Code::AwsManagedKey,
            p.at_value(),
            format!(
                "`{key}` is an AWS-managed key, and the target is in another account than the source: a copy across accounts works only between customer-managed keys (AWS-managed keys cannot be shared with another account)"
            ),
        )
        .label("AWS-managed key")
        .related(target.at(), "the target's account")
        .help(format!(
            "create a customer-managed key in account {}, region {region}, let AWS Backup and the restore role use it, and name its key ARN (`arn:{}:kms:{region}:{}:key/<key id>`)",
            target.id,
            region.partition(),
            target.id
        ));
        return None;
    }
    let arn = match rules::check_kms_key_arn(key) {
        Ok(arn) => arn,
        Err(msg) => {
            cx.error(Code::KmsKeyArn, p.at_value(), msg);
            return None;
        }
    };
    if arn.region != region.as_str() {
        cx.error(
            Code::KmsKeyRegion,
            p.at_value(),
            format!("the KMS key is in `{}` but its target is `{region}`", arn.region),
        )
        .label("key in another region")
        .help("a restored table is encrypted with a key in its own region: use a key (or a multi-Region replica) in the target region");
        return None;
    }
    if arn.partition != region.partition() {
        cx.error(
            Code::KmsKeyArn,
            p.at_value(),
            format!(
                "the KMS key is in partition `{}`, its target in `{}`",
                arn.partition,
                region.partition()
            ),
        );
        return None;
    }
    if let Some(account) = place.account
        && arn.account != account.id
    {
        cx.error(
            Code::KmsKeyAccount,
            p.at_value(),
            format!(
                "the KMS key is in account {} but {} is {}",
                arn.account,
                account.what(),
                account.id
            ),
        )
        .related(account.at(), account.label())
        .help(format!(
            "a restored table is encrypted with a key of its target's account: use a key of account {} in {region}",
            account.id
        ));
        return None;
    }
    Some(key.to_owned())
}

/// A role ARN (at `rp`) in `partition`, for an entry whose `what` (`region`, `target region`)
/// `region` is in another partition.
fn role_partition_mismatch(cx: &mut Cx, rp: &P<'_>, partition: &str, what: &str, region: &Region) {
    cx.error(
        Code::PartitionMismatch,
        rp.at_value(),
        format!(
            "the role is in partition `{partition}` but the {what} `{region}` is in `{}`",
            region.partition()
        ),
    )
    .help(format!(
        "use a role of partition `{}` (`arn:{}:iam::...`)",
        region.partition(),
        region.partition()
    ));
}

/// One account, one role: every entry of an account that names a role names the one the
/// first entry of that account names ([`Plan::role_in`] takes the first).
fn check_role_conflicts(cx: &mut Cx, roles: &[(String, Entry, AssumeRole)]) {
    for (n, (account, entry, role)) in roles.iter().enumerate() {
        let Some((_, first_entry, first)) = roles[..n].iter().find(|(a, _, _)| a == account) else {
            continue;
        };
        // What differs, and whether each entry writes it.
        let (key, thing, things, writes) = if role.role_arn != first.role_arn {
            ("role_arn", "role", "roles", (true, true))
        } else if role.external_id != first.external_id {
            let writes = (role.external_id.is_some(), first.external_id.is_some());
            ("external_id", "external id", "external ids", writes)
        } else if role.session_duration != first.session_duration {
            let writes = (role.session_duration.is_some(), first.session_duration.is_some());
            ("session_duration", "session duration", "session durations", writes)
        } else {
            continue;
        };
        // Point at the key that differs, or at the role of an entry that does not write it.
        let at = |e: Entry, writes: bool| At::Value(e.path(if writes { key } else { "role_arn" }));
        let label = if writes.0 {
            format!("another {thing} for account {account}")
        } else {
            format!("no {thing} for account {account}")
        };
        cx.error(
            Code::RoleConflict,
            at(*entry, writes.0),
            format!(
                "`{}` and `{}` name different {things} for account {account}: drover assumes one role per account",
                first_entry.name(),
                entry.name(),
            ),
        )
        .label(label)
        .related(at(*first_entry, writes.1), format!("the first role named for account {account}"))
        .help(format!(
            "name the same `role_arn`, `external_id` and `session_duration` in every entry of account {account}, or name them once: the other entries of the account use that role"
        ));
    }
}

fn lower_settings(cx: &mut Cx, f: &Fields<'_>, p: &P<'_>, targets: &[Target]) -> Settings {
    let mut s = Settings::default();
    if let Some(v) = f.get("targets") {
        let tp = p.key("targets");
        if let Some(items) = cx.list(v, &tp) {
            if items.is_empty() {
                cx.error(
                    Code::NoTargets,
                    tp.at_value(),
                    "an empty `targets` list restores the table nowhere",
                )
                .help("remove the key to restore in every target");
            }
            let mut regions: Vec<Region> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ip = tp.idx(i);
                let Some(region) = cx.region(item, &ip) else { continue };
                if regions.contains(&region) {
                    cx.error(
                        Code::DuplicateTarget,
                        ip.at_value(),
                        format!("`{region}` is listed twice"),
                    );
                } else if !targets.iter().any(|t| t.region == region) {
                    let known: Vec<&str> = targets.iter().map(|t| t.region.as_str()).collect();
                    let issue = cx.error(
                        Code::UnknownTarget,
                        ip.at_value(),
                        format!("`{region}` is not a target of the plan"),
                    );
                    issue.help(format!("the plan's targets are: {}", known.join(", ")));
                } else {
                    regions.push(region);
                }
            }
            s.targets = Some(regions);
        }
    }
    if let Some(v) = f.get("ttl_attribute") {
        s.ttl_attribute = cx.checked(
            v,
            &p.key("ttl_attribute"),
            Code::AttributeName,
            rules::check_attribute_name,
        );
    }
    if let Some(v) = f.get("stream") {
        let sp = p.key("stream");
        if let Some(name) = cx.string(v, &sp) {
            s.stream = StreamView::ALL.iter().find(|(n, _)| *n == name).map(|(_, view)| *view);
            if s.stream.is_none() {
                let names: Vec<&str> = StreamView::ALL.iter().map(|(n, _)| *n).collect();
                let issue = cx.error(
                    Code::StreamViewType,
                    sp.at_value(),
                    format!("`{name}` is not a stream view type"),
                );
                match rules::did_you_mean(&name.to_ascii_uppercase(), names.iter().copied()) {
                    Some(m) => issue.help(format!("did you mean `{m}`?")),
                    None => issue.help(format!("expected one of: {}", names.join(", "))),
                };
            }
        }
    }
    if let Some(v) = f.get("point_in_time_recovery") {
        s.point_in_time_recovery = cx.boolean(v, &p.key("point_in_time_recovery"));
    }
    if let Some(v) = f.get("deletion_protection") {
        s.deletion_protection = cx.boolean(v, &p.key("deletion_protection"));
    }
    if let Some(v) = f.get("tags") {
        s.tags = lower_tags(cx, v, &p.key("tags"));
    }
    if let Some(v) = f.get("validate") {
        let vp = p.key("validate");
        if let Some(vf) = cx.fields(v, &vp, keys::VALIDATE) {
            if let Some(v) = vf.get("min_items") {
                s.min_items = v.as_u64();
                if s.min_items.is_none() {
                    cx.wrong_type(v, &vp.key("min_items"), "a whole number (0 or more)");
                }
            }
            if let Some(v) = vf.get("canary_keys") {
                s.canary_keys = lower_canaries(cx, v, &vp.key("canary_keys"));
            }
            if let Some(v) = vf.get("digest") {
                s.digest = cx.boolean(v, &vp.key("digest"));
            }
            if let Some(v) = vf.get("hooks") {
                let hp = vp.key("hooks");
                // `defaults` is the only settings mapping under a key; tables are list items.
                if matches!(p.seg, S::Key("defaults")) {
                    cx.error(
                        Code::UnknownKey,
                        hp.at_key(),
                        "`defaults.validate` takes no `hooks`: hooks are per table",
                    )
                    .help("move them to the `validate.hooks` of each table they check");
                } else {
                    s.hooks = Some(hooks::lower_hooks(cx, v, &hp));
                }
            }
        }
    }
    s
}

fn lower_tags(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<BTreeMap<String, String>> {
    let Value::Mapping(map) = v else {
        cx.wrong_type(v, p, "a mapping of tag keys to values");
        return None;
    };
    let mut tags = BTreeMap::new();
    for (k, v) in map {
        let Value::String(k) = k else {
            cx.error(
                Code::Tag,
                p.at_value(),
                format!("tag keys must be strings, found {}", describe(k)),
            );
            continue;
        };
        let kp = p.key(k);
        let lower = k.to_ascii_lowercase();
        let key_problem = if k.is_empty() || k.chars().count() > 128 {
            Some("tag keys must be 1 to 128 characters long".to_owned())
        } else if lower.starts_with("aws:") {
            Some("the `aws:` prefix is reserved for AWS".to_owned())
        } else if lower.starts_with("drover:") {
            Some("the `drover:` prefix is reserved for drover's ownership tags".to_owned())
        } else {
            k.chars().find(|c| !is_tag_char(*c)).map(|c| format!("tag key `{k}` contains `{c}`"))
        };
        if let Some(problem) = key_problem {
            cx.error(Code::Tag, kp.at_key(), problem)
                .help("tags allow letters, digits, spaces and `_ . : / = + - @`");
            continue;
        }
        let Some(value) = cx.string(v, &kp) else { continue };
        if value.chars().count() > 256 {
            cx.error(Code::Tag, kp.at_value(), "tag values must be at most 256 characters long");
        } else if let Some(c) = value.chars().find(|c| !is_tag_char(*c)) {
            cx.error(Code::Tag, kp.at_value(), format!("tag value contains `{c}`"))
                .help("tags allow letters, digits, spaces and `_ . : / = + - @`");
        } else {
            tags.insert(k.clone(), value.to_owned());
        }
    }
    Some(tags)
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c)
}

fn lower_canaries(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<Vec<BTreeMap<String, KeyValue>>> {
    let items = cx.list(v, p)?;
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = p.idx(i);
        let Value::Mapping(map) = item else {
            cx.wrong_type(
                item,
                &ip,
                "a mapping of key attributes to values, like {pk: \"ORDER#1\"}",
            );
            continue;
        };
        if map.is_empty() || map.len() > 2 {
            cx.error(
                Code::CanaryKey,
                ip.at_value(),
                format!(
                    "a canary key names 1 or 2 attributes (partition and sort key), found {}",
                    map.len()
                ),
            );
            continue;
        }
        let mut key = BTreeMap::new();
        for (k, v) in map {
            let Some(k) = k.as_str() else {
                cx.error(
                    Code::CanaryKey,
                    ip.at_value(),
                    "canary key attribute names must be strings",
                );
                continue;
            };
            let kp = ip.key(k);
            if let Err(msg) = rules::check_attribute_name(k) {
                cx.error(Code::AttributeName, kp.at_key(), msg);
                continue;
            }
            if let Some(value) = lower_key_value(cx, v, &kp) {
                key.insert(k.to_owned(), value);
            }
        }
        keys.push(key);
    }
    Some(keys)
}

/// A key attribute value: a plain string, or typed as in DynamoDB's JSON (`{N: "42"}`).
fn lower_key_value(cx: &mut Cx, v: &Value, p: &P<'_>) -> Option<KeyValue> {
    const EXPECTED: &str = "a string, or a typed value like {N: \"42\"} (S, N or B)";
    match v {
        Value::String(s) => Some(KeyValue::S(s.clone())),
        Value::Mapping(map) if map.len() == 1 => {
            let (t, text) = map.iter().next()?;
            let Some(t) = t.as_str() else {
                cx.wrong_type(v, p, EXPECTED);
                return None;
            };
            let tp = p.key(t);
            let text = cx.string(text, &tp)?;
            match KeyValue::parse(t, text) {
                Ok(value) => Some(value),
                Err(msg) => {
                    cx.error(Code::CanaryKey, tp.at_value(), msg);
                    None
                }
            }
        }
        Value::Number(_) => {
            cx.wrong_type(v, p, EXPECTED);
            if let Some(issue) = cx.issues.last_mut() {
                issue.help(format!(
                    "a number key is written typed, like {{N: \"{}\"}}",
                    describe_number(v)
                ));
            }
            None
        }
        _ => {
            cx.wrong_type(v, p, EXPECTED);
            None
        }
    }
}

fn describe_number(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn lower_tables(cx: &mut Cx, v: &Value, targets: &[Target]) -> Vec<Option<RawTable>> {
    let p = ROOT.key("tables");
    let Some(items) = cx.list(v, &p) else {
        return Vec::new();
    };
    if items.is_empty() {
        cx.error(Code::NoTables, p.at_key(), "the plan has no tables");
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut tables = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = p.idx(i);
        let Some(f) = cx.fields(item, &p, keys::TABLE) else {
            tables.push(None);
            continue;
        };
        let np = p.key("name");
        let name = cx
            .required(&f, "name", &p)
            .and_then(|v| cx.checked(v, &np, Code::TableName, rules::check_table_name));
        if let (Some(name), Some(Value::String(raw))) = (&name, f.get("name")) {
            if let Some(first) = seen.get(name.as_str()) {
                cx.error(
                    Code::DuplicateTable,
                    np.at_value(),
                    format!("table `{name}` is listed twice"),
                )
                .related(
                    At::Value(table_path(*first, &[Seg::Key("name".into())])),
                    "first listed here",
                );
            } else {
                seen.insert(raw, i);
            }
        }
        let mut depends_on = Vec::new();
        if let Some(v) = f.get("depends_on") {
            let dp = p.key("depends_on");
            if let Some(items) = cx.list(v, &dp) {
                for (j, dep) in items.iter().enumerate() {
                    if let Some(dep) = cx.string(dep, &dp.idx(j)) {
                        depends_on.push((j, dep.to_owned()));
                    }
                }
            }
        }
        let settings = lower_settings(cx, &f, &p, targets);
        tables.push(Some(RawTable { name, depends_on, settings }));
    }
    tables
}

/// Applies defaults, resolves dependencies by name, and checks them per target.
/// Returns `None` when tables could not be read well enough to go on.
fn resolve_tables(
    cx: &mut Cx,
    raw: Vec<Option<RawTable>>,
    defaults: &Settings,
    targets: &[Target],
) -> Option<(Vec<Table>, Vec<Edge>)> {
    let raw: Vec<RawTable> = raw.into_iter().collect::<Option<_>>()?;
    let mut ids: HashMap<&str, usize> = HashMap::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        if let Some(name) = &t.name {
            ids.entry(name.as_str()).or_insert(i);
        }
    }
    let all_targets: Vec<Region> = targets.iter().map(|t| t.region.clone()).collect();
    let mut edges: Vec<Edge> = Vec::new();
    let mut suggestions = 0;
    let mut tables = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let mut deps: Vec<TableId> = Vec::with_capacity(t.depends_on.len());
        for (j, dep) in &t.depends_on {
            let at = || At::Value(table_path(i, &[Seg::Key("depends_on".into()), Seg::Index(*j)]));
            match ids.get(dep.as_str()) {
                None => {
                    // Suggestions scan every name: bound their cost on plans full of typos.
                    let suggest = suggestions < MAX_SUGGESTIONS;
                    suggestions += 1;
                    let issue = cx.error(
                        Code::UnknownDependency,
                        at(),
                        format!("`{dep}` is not a table of the plan"),
                    );
                    if let Some(m) =
                        suggest.then(|| rules::did_you_mean(dep, ids.keys().copied())).flatten()
                    {
                        issue.help(format!("did you mean `{m}`?"));
                    }
                }
                Some(&d) if d == i => {
                    cx.error(
                        Code::SelfDependency,
                        at(),
                        format!("table `{dep}` depends on itself"),
                    );
                }
                Some(&d) if deps.contains(&TableId(d)) => {
                    cx.warning(Code::DuplicateDependency, at(), format!("`{dep}` is listed twice"));
                }
                Some(&d) => {
                    deps.push(TableId(d));
                    edges.push((i, d, *j));
                }
            }
        }
        let s = &t.settings;
        let mut tags = defaults.tags.clone().unwrap_or_default();
        tags.extend(s.tags.clone().unwrap_or_default());
        if tags.len() > MAX_PLAN_TAGS {
            let at = if s.tags.is_some() {
                At::Key(table_path(i, &[Seg::Key("tags".into())]))
            } else {
                At::Key(vec![Seg::Key("defaults".into()), Seg::Key("tags".into())])
            };
            cx.error(
                Code::Tag,
                at,
                format!("{} tags: a table takes at most {MAX_PLAN_TAGS} from the plan", tags.len()),
            )
            .help(
                "DynamoDB allows 50 tags per table and drover adds `drover:plan` and `drover:run`",
            );
        }
        tables.push(Table {
            name: t.name.clone().unwrap_or_default(),
            depends_on: deps,
            targets: s
                .targets
                .clone()
                .or_else(|| defaults.targets.clone())
                .unwrap_or_else(|| all_targets.clone()),
            ttl_attribute: s.ttl_attribute.clone().or_else(|| defaults.ttl_attribute.clone()),
            stream: s.stream.or(defaults.stream),
            point_in_time_recovery: s
                .point_in_time_recovery
                .or(defaults.point_in_time_recovery)
                .unwrap_or(false),
            deletion_protection: s
                .deletion_protection
                .or(defaults.deletion_protection)
                .unwrap_or(false),
            tags,
            validate: Validation {
                min_items: s.min_items.or(defaults.min_items),
                canary_keys: s
                    .canary_keys
                    .clone()
                    .or_else(|| defaults.canary_keys.clone())
                    .unwrap_or_default(),
                digest: s.digest.or(defaults.digest).unwrap_or(false),
                hooks: s.hooks.clone().unwrap_or_default(),
            },
        });
    }
    // Every dependency must be restored wherever its dependent is.
    for &(i, d, j) in &edges {
        let missing: Vec<&str> = tables[i]
            .targets
            .iter()
            .filter(|r| !tables[d].targets.contains(r))
            .map(Region::as_str)
            .collect();
        if !missing.is_empty() {
            cx.error(
                Code::DependencyNotInTarget,
                At::Value(table_path(i, &[Seg::Key("depends_on".into()), Seg::Index(j)])),
                format!(
                    "`{}` is restored in {} but its dependency `{}` is not",
                    tables[i].name,
                    missing.join(", "),
                    tables[d].name
                ),
            )
            .help(format!(
                "restore `{}` in those regions too, or drop them from `{}`'s targets",
                tables[d].name, tables[i].name
            ));
        }
    }
    Some((tables, edges))
}

fn check_graph(cx: &mut Cx, tables: &[Table], edges: &[Edge]) -> PlanGraph {
    let graph = PlanGraph::new(tables.len(), edges.iter().map(|&(i, d, _)| (i, d)));
    for cycle in graph.cycles() {
        let names: Vec<&str> = cycle.iter().map(|id| tables[id.0].name.as_str()).collect();
        let at_edge = |a: TableId, b: TableId| {
            let j = edges.iter().find(|&&(i, d, _)| i == a.0 && d == b.0).map_or(0, |e| e.2);
            At::Value(table_path(a.0, &[Seg::Key("depends_on".into()), Seg::Index(j)]))
        };
        let issue = cx.error(
            Code::Cycle,
            at_edge(cycle[0], cycle[1]),
            format!("dependency cycle: {}", names.join(" -> ")),
        );
        issue.label(format!("`{}` depends on `{}`", names[0], names[1])).help(
            "a table can only be restored after its dependencies: remove one of these dependencies",
        );
        for w in 1..cycle.len() - 1 {
            issue.related(
                at_edge(cycle[w], cycle[w + 1]),
                format!("`{}` depends on `{}`", names[w], names[w + 1]),
            );
        }
    }
    graph
}

fn check_drill_template(cx: &mut Cx, drill: &Drill, tables: &[Table]) {
    let p = ROOT.key("drill");
    let p = p.key("table_name");
    let parts = match rules::split_template(&drill.table_name) {
        Ok(parts) => parts,
        Err(msg) => {
            cx.error(Code::DrillTemplate, p.at_value(), msg);
            return;
        }
    };
    let has = |name: &str| parts.contains(&rules::TemplatePart::Placeholder(name));
    if !has("table") {
        cx.error(Code::DrillTemplate, p.at_value(), "the drill name template has no `{table}`")
            .help("every table needs its own drill name: include `{table}`, like \"{table}-drill-{run}\"");
        return;
    }
    for part in &parts {
        if let rules::TemplatePart::Text(text) = part
            && let Some(c) = text.chars().find(|c| !rules::is_table_name_char(*c))
        {
            cx.error(
                Code::DrillTemplate,
                p.at_value(),
                format!("the drill name template contains `{c}`, which table names cannot"),
            )
            .help("table names allow letters, digits, `_`, `.` and `-`");
            return;
        }
    }
    if !has("run") {
        cx.warning(Code::DrillTemplate, p.at_value(), "the drill name template has no `{run}`")
            .help("without `{run}`, two drills cannot run at once and a kept drill table blocks the next drill");
    }
    // The longest name the template yields, over every table and each of its targets.
    let run = "r".repeat(RUN_SHORT_ID_LEN);
    let longest = tables
        .iter()
        .flat_map(|t| t.targets.iter().map(move |r| (t, r)))
        .map(|(t, r)| drill.table_name(&t.name, &run, r))
        .max_by_key(String::len);
    if let Some(name) = longest.filter(|n| n.len() > MAX_TABLE_NAME) {
        cx.error(
            Code::DrillTemplate,
            p.at_value(),
            format!("the drill name template yields names of up to {} characters; DynamoDB allows {MAX_TABLE_NAME}", name.len()),
        )
        .help(format!("shorten the template: it yields `{}…`", &name[..40]));
    }
}

#[cfg(test)]
mod tests {
    //! The account and role rules. Every other rule is covered by tests/plans/invalid.

    /// A plan with a production account (111…) and `targets` below the us-west-2 target,
    /// which is in the production account.
    fn plan(source: &str, targets: &str) -> String {
        format!(
            r#"version: 1
name: t
source:
  region: us-east-1
  backup_vault: prod
{source}iam_role_arn: arn:aws:iam::111111111111:role/drover-backup
targets:
  - region: us-west-2
    backup_vault: dr
    kms_key_arn: arn:aws:kms:us-west-2:111111111111:key/1111aaaa-22bb-33cc-44dd-555555eeeeee
{targets}tables:
  - name: customers
"#
        )
    }

    /// A target in eu-west-1 with `extra` keys (indented by four spaces) and this key.
    fn euw1(extra: &str, key_account: &str) -> String {
        format!(
            "  - region: eu-west-1\n{extra}    backup_vault: recovery\n    kms_key_arn: arn:aws:kms:eu-west-1:{key_account}:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\n"
        )
    }

    const RECOVERY: &str = "    account_id: \"222222222222\"\n    role_arn: arn:aws:iam::222222222222:role/drover-recovery\n    iam_role_arn: arn:aws:iam::222222222222:role/drover-restore\n";

    /// The codes of the plan's diagnostics with their lines; panics on the plan's validity
    /// disagreeing with whether there are errors.
    fn codes(text: &str) -> Vec<(String, usize)> {
        let loaded = crate::load("t.yaml", text.as_bytes());
        let items = loaded.diagnostics.items();
        assert_eq!(loaded.plan.is_some(), !loaded.diagnostics.has_errors(), "{items:#?}");
        for d in items {
            assert!(d.help.is_some() || !NEW_CODES.contains(&d.code.as_str()), "{d:#?}");
        }
        items.iter().map(|d| (d.code.as_str().to_owned(), d.location.line)).collect()
    }

    const NEW_CODES: &[&str] = &[
        "role-arn",
        "external-id",
        "no-role-arn",
        "missing-restore-role",
        "aws-managed-key",
        "role-conflict",
        "missing-role-arn",
    ];

    /// The last line holding `needle` (the entries under test come last).
    fn line_of(text: &str, needle: &str) -> usize {
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().rposition(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}")) + 1
    }

    fn one(text: &str, code: &str, at: &str) {
        assert_eq!(codes(text), [(code.to_owned(), line_of(text, at))], "{text}");
    }

    #[test]
    fn a_recovery_account_with_its_own_roles_key_and_vault_is_valid() {
        let text = plan(
            "  account_id: \"111111111111\"\n  role_arn: arn:aws:iam::111111111111:role/drover-prod\n  external_id: drover-7f3a\n  session_duration: 1h\n",
            &euw1(
                &format!(
                    "{RECOVERY}    external_id: \"a+b=c,d.e@f:g/h-i_j\"\n    session_duration: 12h\n"
                ),
                "222222222222",
            ),
        );
        assert_eq!(codes(&text), []);
        // The same target in the source account needs no role of its own.
        assert_eq!(codes(&plan("", &euw1("", "111111111111"))), []);
        // ... and may name one there.
        let own = "    iam_role_arn: arn:aws:iam::111111111111:role/drover-restore\n";
        assert_eq!(codes(&plan("", &euw1(own, "111111111111"))), []);
    }

    #[test]
    fn v1_plans_keep_their_meaning() {
        // Without `source.account_id`, keys were never checked against an account: they still
        // are not (drover iam-policy asks for --account-id when the ARNs disagree).
        assert_eq!(codes(&plan("", &euw1("", "210987654321"))), []);
        // With it, a key in another account is an error, as before.
        let text = plan("  account_id: \"111111111111\"\n", &euw1("", "210987654321"));
        one(&text, "kms-key-account", "210987654321");
    }

    #[test]
    fn role_arns_are_role_arns_in_their_entrys_partition_and_account() {
        let text = plan("  role_arn: arn:aws:iam::111111111111:user/drover\n", "");
        one(&text, "role-arn", "user/drover");
        let text = plan("  role_arn: arn:aws-cn:iam::111111111111:role/drover\n", "");
        one(&text, "partition-mismatch", "aws-cn");
        let text = plan(
            "  account_id: \"111111111111\"\n  role_arn: arn:aws:iam::333333333333:role/drover\n",
            "",
        );
        one(&text, "role-arn", "333333333333");
        let text = plan(
            "",
            &euw1(
                "    account_id: \"222222222222\"\n    role_arn: arn:aws:iam::333333333333:role/r\n    iam_role_arn: arn:aws:iam::222222222222:role/restore\n",
                "222222222222",
            ),
        );
        one(&text, "role-arn", "333333333333");
        let text = plan("", &euw1("    account_id: \"2222\"\n", "222222222222"));
        one(&text, "account-id", "\"2222\"");
    }

    #[test]
    fn the_source_role_is_in_the_account_of_iam_role_arn() {
        let text = plan("  role_arn: arn:aws:iam::333333333333:role/drover\n", "");
        let diags = crate::load("t.yaml", text.as_bytes()).diagnostics;
        let d = &diags.items()[0];
        assert_eq!(
            (d.code.as_str(), d.location.line),
            ("role-arn", line_of(&text, "333333333333"))
        );
        assert!(d.message.contains("`iam_role_arn` is in account 111111111111"), "{}", d.message);
        assert_eq!(d.related[0].location.line, line_of(&text, "iam_role_arn"));
        assert_eq!(diags.items().len(), 1);
    }

    #[test]
    fn external_ids_and_session_durations_follow_sts_and_need_a_role() {
        let role = "  role_arn: arn:aws:iam::111111111111:role/drover\n";
        one(&plan(&format!("{role}  external_id: \"a b\"\n"), ""), "external-id", "a b");
        one(&plan(&format!("{role}  external_id: x\n"), ""), "external-id", "external_id");
        one(&plan(&format!("{role}  external_id: 12345\n"), ""), "wrong-type", "12345");
        one(&plan(&format!("{role}  session_duration: 14m\n"), ""), "duration", "14m");
        one(&plan(&format!("{role}  session_duration: 12h1s\n"), ""), "duration", "12h1s");
        one(&plan(&format!("{role}  session_duration: 1 hour\n"), ""), "duration", "1 hour");
        assert_eq!(codes(&plan(&format!("{role}  session_duration: 15m\n"), "")), []);
        one(&plan("  external_id: drover-7f3a\n", ""), "no-role-arn", "external_id");
        let text = plan("", &euw1("    session_duration: 1h\n", "111111111111"));
        one(&text, "no-role-arn", "session_duration");
    }

    #[test]
    fn a_target_in_another_account_restores_with_a_role_of_that_account() {
        let text = plan("", &euw1("    account_id: \"222222222222\"\n", "222222222222"));
        let line = line_of(&text, "account_id");
        // (Without a role there either, drover could not act in both accounts.)
        assert_eq!(
            codes(&text),
            [("missing-restore-role".to_owned(), line), ("missing-role-arn".to_owned(), line)]
        );
        // The target's account may come from its role alone.
        let text =
            plan("", &euw1("    role_arn: arn:aws:iam::222222222222:role/r\n", "222222222222"));
        one(&text, "missing-restore-role", "role_arn");
        // A restore role in another account than the target's.
        let restore = "    iam_role_arn: arn:aws:iam::111111111111:role/drover-restore\n";
        let text = plan(
            "",
            &euw1(
                &format!(
                    "    account_id: \"222222222222\"\n    role_arn: arn:aws:iam::222222222222:role/r\n{restore}"
                ),
                "222222222222",
            ),
        );
        one(&text, "iam-role-arn", "role/drover-restore");
        // A target in the source account with a restore role of another account.
        let restore = "    iam_role_arn: arn:aws:iam::222222222222:role/drover-restore\n";
        one(&plan("", &euw1(restore, "111111111111")), "iam-role-arn", "role/drover-restore");
        let restore = "    iam_role_arn: arn:aws-us-gov:iam::111111111111:role/drover-restore\n";
        one(&plan("", &euw1(restore, "111111111111")), "partition-mismatch", "aws-us-gov");
        let restore = "    iam_role_arn: drover-restore\n";
        one(&plan("", &euw1(restore, "111111111111")), "iam-role-arn", "drover-restore");
    }

    #[test]
    fn keys_are_in_their_targets_account() {
        // Keys of targets in another account are checked against that account.
        let text = plan("", &euw1(RECOVERY, "111111111111"));
        one(&text, "kms-key-account", "kms_key_arn");
        let text = plan(
            "",
            &euw1(&RECOVERY.replace("    account_id: \"222222222222\"\n", ""), "111111111111"),
        );
        one(&text, "kms-key-account", "kms_key_arn");
        // A source role pins the source account for the keys of the targets in it.
        let text =
            plan("  role_arn: arn:aws:iam::111111111111:role/drover\n", &euw1("", "222222222222"));
        one(&text, "kms-key-account", "kms_key_arn");
    }

    #[test]
    fn copies_across_accounts_need_customer_managed_keys() {
        let managed = |account: &str| {
            format!(
                "  - region: eu-west-1\n{RECOVERY}    backup_vault: recovery\n    kms_key_arn: arn:aws:kms:eu-west-1:{account}:alias/aws/dynamodb\n"
            )
        };
        one(&plan("", &managed("222222222222")), "aws-managed-key", "alias/aws");
        // In the source account an alias is refused as any alias is.
        let same = managed("111111111111").replace(RECOVERY, "");
        one(&plan("", &same), "kms-key-arn", "alias/aws");
    }

    #[test]
    fn one_account_one_role() {
        let prod = "  role_arn: arn:aws:iam::111111111111:role/drover-prod\n  external_id: ext-1\n";
        // The same role again, or none, is fine.
        let same =
            "    role_arn: arn:aws:iam::111111111111:role/drover-prod\n    external_id: ext-1\n";
        assert_eq!(codes(&plan(prod, &euw1(same, "111111111111"))), []);
        assert_eq!(codes(&plan(prod, &euw1("", "111111111111"))), []);
        // Another role, external id or session duration.
        let other = "    role_arn: arn:aws:iam::111111111111:role/other\n    external_id: ext-1\n";
        one(&plan(prod, &euw1(other, "111111111111")), "role-conflict", "role/other");
        let other =
            "    role_arn: arn:aws:iam::111111111111:role/drover-prod\n    external_id: ext-2\n";
        one(&plan(prod, &euw1(other, "111111111111")), "role-conflict", "ext-2");
        let other = "    role_arn: arn:aws:iam::111111111111:role/drover-prod\n";
        let text = plan(prod, &euw1(other, "111111111111"));
        one(&text, "role-conflict", "role/drover-prod");
        let other = format!("{same}    session_duration: 2h\n");
        one(&plan(prod, &euw1(&other, "111111111111")), "role-conflict", "2h");
        // Between two targets of the recovery account.
        let second = "  - region: ap-south-1\n    account_id: \"222222222222\"\n    role_arn: arn:aws:iam::222222222222:role/other\n    iam_role_arn: arn:aws:iam::222222222222:role/drover-restore\n    backup_vault: recovery\n    kms_key_arn: arn:aws:kms:ap-south-1:222222222222:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\n";
        let text = plan("", &format!("{}{second}", euw1(RECOVERY, "222222222222")));
        one(&text, "role-conflict", "role/other");
    }

    #[test]
    fn regions_stay_distinct_across_accounts() {
        let text = plan("", &euw1(RECOVERY, "222222222222").replace("eu-west-1", "us-east-1"));
        one(&text, "target-is-source", "- region: us-east-1");
    }
}
