//! drover's DR plan language: YAML text to a validated [`Plan`] and its dependency graph.
//!
//! This crate is pure: it reads the text it is handed and nothing else (no files, no network,
//! no clock, no async). [`load`] never stops at the first problem: it returns every
//! [`Diagnostic`] with its place in the text, and a plan only when there is no error.
//!
//! ```
//! let text = br#"
//! version: 1
//! name: demo
//! source: {region: us-east-1, backup_vault: prod-vault}
//! iam_role_arn: arn:aws:iam::123456789012:role/drover-backup
//! targets:
//!   - region: us-west-2
//!     backup_vault: dr-vault
//!     kms_key_arn: arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
//! tables:
//!   - name: customers
//!   - name: orders
//!     depends_on: [customers]
//! "#;
//! let loaded = drover_plan::load("demo.yaml", text);
//! let plan = loaded.plan.expect("valid");
//! let usw2 = &plan.targets[0].region;
//! let waves = plan.graph.waves(&plan, usw2);
//! assert_eq!(waves.len(), 2);
//! ```

mod diag;
mod graph;
mod lower;
mod model;
mod outline;
mod parse;
mod rules;
mod schema;

pub use diag::{Code, Diagnostic, Diagnostics, Location, Related, Report, Severity};
pub use graph::PlanGraph;
pub use model::{
    AssumeRole, BackupJobs, DEFAULT_DRILL_RETENTION_DAYS, DEFAULT_DRILL_TEMPLATE,
    DEFAULT_HOOK_TIMEOUT, Drill, EventBridge, Hook, KeyValue, Notify, Objectives, Plan,
    RUN_SHORT_ID_LEN, Region, RunHooks, Sns, Source, SourceReads, StreamView, Table, TableId,
    Target, Validation, arn_account, format_duration,
};
pub use outline::{Mode, Outline, StepKind, TargetOutline};
pub use rules::{
    RECOVER_PLACEHOLDERS, check_event_bus_arn, check_recover_template, check_sns_topic_arn,
    check_table_name, parse_duration,
};
pub use schema::JSON_SCHEMA;

use lower::{At, Issue};
use parse::{LineIndex, SpanIndex, SyntaxKind};

/// Plans larger than this are refused before parsing (a 10,000-table plan is about 2 MB).
pub const MAX_PLAN_BYTES: usize = 16 * 1024 * 1024;

/// The result of loading a plan: the plan when it is valid, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The validated plan; `None` when any diagnostic is an error.
    pub plan: Option<Plan>,
    /// Every problem found, errors and warnings, in file order.
    pub diagnostics: Diagnostics,
}

/// Parses and validates a plan. `name` is how diagnostics refer to the file.
///
/// Never panics; bad input (binary, huge, deeply nested, alias bombs) yields a diagnostic.
#[must_use]
pub fn load(name: &str, bytes: &[u8]) -> Loaded {
    if bytes.len() > MAX_PLAN_BYTES {
        let issue = Issue::new(
            Severity::Error,
            Code::FileTooLarge,
            At::Start,
            format!(
                "the file is {} bytes; plans are limited to {} bytes",
                bytes.len(),
                MAX_PLAN_BYTES
            ),
        );
        return finish(name, String::new(), vec![issue], None);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(e) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let lossy_offset = String::from_utf8_lossy(&bytes[..e.valid_up_to()]).len();
            let lines = LineIndex::new(&text);
            let loc = lines.location(lossy_offset, 1);
            let issue = Issue::new(
                Severity::Error,
                Code::NotUtf8,
                At::LineCol(loc.line, loc.column),
                format!("the file is not UTF-8 text (invalid byte at offset {})", e.valid_up_to()),
            );
            return finish(name, text, vec![issue], None);
        }
    };
    let value = match parse::parse_value(&text) {
        Ok(value) => value,
        Err(e) => {
            let (code, help) = match e.kind {
                SyntaxKind::Syntax => (Code::YamlSyntax, None),
                SyntaxKind::Limits => (
                    Code::YamlLimits,
                    Some("plans nest at most 128 levels and cannot expand aliases without bound"),
                ),
                SyntaxKind::DuplicateKey => (Code::DuplicateKey, None),
                SyntaxKind::MultipleDocuments => {
                    (Code::YamlSyntax, Some("a plan file holds one YAML document: remove `---`"))
                }
            };
            let issues = if matches!(e.kind, SyntaxKind::DuplicateKey) {
                duplicate_keys(&text)
            } else {
                Vec::new()
            };
            let issues = if issues.is_empty() {
                let line_col = match e.kind {
                    SyntaxKind::MultipleDocuments => {
                        parse::second_document_line(&text).map(|l| (l, 1))
                    }
                    _ => e.line_col,
                };
                let at = line_col.map_or(At::Start, |(l, c)| At::LineCol(l, c));
                let mut issue = Issue::new(Severity::Error, code, at, e.message);
                issue.help = help.map(str::to_owned);
                vec![issue]
            } else {
                issues
            };
            return finish(name, text, issues, None);
        }
    };
    let (plan, issues) = lower::lower(&value);
    drop(value);
    finish(name, text, issues, plan)
}

/// Every repeated key, found by the marker-aware parser (serde_yaml reports only the first,
/// at its mapping).
fn duplicate_keys(text: &str) -> Vec<Issue> {
    let lines = LineIndex::new(text);
    let index = SpanIndex::build(text, &lines);
    index
        .duplicates
        .iter()
        .map(|(path, at, first)| {
            let key = match path.last() {
                Some(parse::Seg::Key(k)) => k.as_str(),
                _ => "",
            };
            let mut issue = Issue::new(
                Severity::Error,
                Code::DuplicateKey,
                At::LineCol(at.line, at.column),
                format!("`{key}` appears twice in the same mapping"),
            );
            issue.related.push((At::LineCol(first.line, first.column), "first here".to_owned()));
            issue
        })
        .collect()
}

fn finish(name: &str, text: String, issues: Vec<Issue>, plan: Option<Plan>) -> Loaded {
    let items = if issues.is_empty() { Vec::new() } else { locate(&text, issues) };
    Loaded { plan, diagnostics: Diagnostics::new(name, text, items) }
}

/// Turns paths into places, reading the text with markers once.
fn locate(text: &str, issues: Vec<Issue>) -> Vec<Diagnostic> {
    let lines = LineIndex::new(text);
    let needs_index = issues.iter().any(|i| {
        matches!(i.at, At::Key(_) | At::Value(_))
            || i.related.iter().any(|(a, _)| matches!(a, At::Key(_) | At::Value(_)))
    });
    let index = needs_index.then(|| SpanIndex::build(text, &lines));
    let place = |at: &At| -> Location {
        match at {
            At::Start => lines.location(0, 0),
            At::LineCol(line, col) => {
                let offset = lines.offset(*line, col.saturating_sub(1));
                lines.token_at(offset)
            }
            At::Key(path) | At::Value(path) => {
                let Some((node, missing)) = index.as_ref().and_then(|i| i.nearest(path)) else {
                    return lines.location(0, 0);
                };
                let want_key = matches!(at, At::Key(_)) || node.is_container || missing > 0;
                match node.key {
                    Some(key) if want_key => key,
                    _ => node.value,
                }
            }
        }
    };
    issues
        .into_iter()
        .map(|issue| {
            let location = place(&issue.at);
            let label = issue.label.unwrap_or_else(|| default_label(issue.code));
            Diagnostic {
                code: issue.code,
                severity: issue.severity,
                message: issue.message,
                help: issue.help,
                location,
                label,
                related: issue
                    .related
                    .iter()
                    .map(|(at, label)| Related { location: place(at), label: label.clone() })
                    .collect(),
            }
        })
        .collect()
}

fn default_label(code: Code) -> String {
    match code {
        Code::UnknownKey => "unknown key",
        Code::MissingKey => "required key missing",
        Code::DuplicateKey | Code::DuplicateTable | Code::DuplicateTarget => "listed again here",
        Code::DuplicateDependency => "listed again here",
        Code::UnknownDependency => "no such table",
        Code::SelfDependency => "depends on itself",
        Code::UnknownTarget => "not a target",
        Code::WrongType => "wrong type",
        Code::YamlSyntax | Code::YamlLimits => "here",
        _ => "invalid",
    }
    .to_owned()
}
