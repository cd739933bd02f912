//! Plan diagnostics: stable codes, locations, and the miette view of them.

use std::fmt;
use std::sync::{Arc, OnceLock};

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use serde::Serialize;

/// Stable diagnostic codes. The string form is the public contract (CI filters on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
#[non_exhaustive]
pub enum Code {
    /// The file could not be read.
    Unreadable,
    /// The file is larger than plans may be.
    FileTooLarge,
    /// The file is not UTF-8 text.
    NotUtf8,
    /// The file holds no plan.
    EmptyPlan,
    /// The YAML does not parse.
    YamlSyntax,
    /// The YAML exceeds nesting or alias-expansion limits.
    YamlLimits,
    /// A mapping has the same key twice.
    DuplicateKey,
    /// A key the format does not define.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type.
    WrongType,
    /// `version` is not a supported format version.
    Version,
    /// The plan name is invalid.
    PlanName,
    /// A region name is invalid.
    Region,
    /// Regions from different AWS partitions.
    PartitionMismatch,
    /// An account id is invalid.
    AccountId,
    /// A backup vault name is invalid.
    VaultName,
    /// The IAM role ARN is invalid.
    IamRoleArn,
    /// A KMS key ARN is invalid.
    KmsKeyArn,
    /// A KMS key is in another region than its target.
    KmsKeyRegion,
    /// A KMS key is in another account than its target.
    KmsKeyAccount,
    /// A `role_arn` (a role drover assumes) is invalid, or in another account than its entry.
    RoleArn,
    /// An `external_id` is invalid.
    ExternalId,
    /// `external_id` or `session_duration` without the `role_arn` they belong to.
    NoRoleArn,
    /// A target in another account than the source names no restore role of its own.
    MissingRestoreRole,
    /// A target in another account than the source names an AWS-managed KMS key.
    AwsManagedKey,
    /// Two entries in one account name different roles for drover to assume there.
    RoleConflict,
    /// Two accounts name no role: drover's own credentials can be in only one of them.
    MissingRoleArn,
    /// A duration is invalid.
    Duration,
    /// The RTO objective is shorter than the RPO objective.
    RtoBelowRpo,
    /// The plan has no targets.
    NoTargets,
    /// A target region is the source region.
    TargetIsSource,
    /// The same target region twice.
    DuplicateTarget,
    /// A table lists a region that is not a target.
    UnknownTarget,
    /// The plan has no tables.
    NoTables,
    /// A table name is invalid.
    TableName,
    /// The same table twice.
    DuplicateTable,
    /// `depends_on` names a table the plan does not have.
    UnknownDependency,
    /// A table depends on itself.
    SelfDependency,
    /// The same dependency twice.
    DuplicateDependency,
    /// A dependency is not restored in a target its dependent is restored in.
    DependencyNotInTarget,
    /// Dependencies form a cycle.
    Cycle,
    /// An attribute name is invalid.
    AttributeName,
    /// A stream view type is invalid.
    StreamViewType,
    /// A tag is invalid.
    Tag,
    /// A canary key is invalid.
    CanaryKey,
    /// The drill table name template is invalid.
    DrillTemplate,
    /// A hook's `name` is invalid.
    HookName,
    /// The same hook name twice in one list of hooks.
    DuplicateHook,
    /// A hook's `run` is not a non-empty list of non-empty arguments.
    HookRun,
    /// A hook's `timeout` is out of its range (1s to 24h).
    HookTimeout,
    /// `notify.eventbridge.event_bus` is neither an event bus name nor its ARN.
    EventBus,
    /// `notify.sns.topic_arn` is not an SNS topic ARN.
    TopicArn,
}

impl Code {
    /// The stable string form of the code.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unreadable => "unreadable",
            Code::FileTooLarge => "file-too-large",
            Code::NotUtf8 => "not-utf8",
            Code::EmptyPlan => "empty-plan",
            Code::YamlSyntax => "yaml-syntax",
            Code::YamlLimits => "yaml-limits",
            Code::DuplicateKey => "duplicate-key",
            Code::UnknownKey => "unknown-key",
            Code::MissingKey => "missing-key",
            Code::WrongType => "wrong-type",
            Code::Version => "version",
            Code::PlanName => "plan-name",
            Code::Region => "region",
            Code::PartitionMismatch => "partition-mismatch",
            Code::AccountId => "account-id",
            Code::VaultName => "vault-name",
            Code::IamRoleArn => "iam-role-arn",
            Code::KmsKeyArn => "kms-key-arn",
            Code::KmsKeyRegion => "kms-key-region",
            Code::KmsKeyAccount => "kms-key-account",
            Code::RoleArn => "role-arn",
            Code::ExternalId => "external-id",
            Code::NoRoleArn => "no-role-arn",
            Code::MissingRestoreRole => "missing-restore-role",
            Code::AwsManagedKey => "aws-managed-key",
            Code::RoleConflict => "role-conflict",
            Code::MissingRoleArn => "missing-role-arn",
            Code::Duration => "duration",
            Code::RtoBelowRpo => "rto-below-rpo",
            Code::NoTargets => "no-targets",
            Code::TargetIsSource => "target-is-source",
            Code::DuplicateTarget => "duplicate-target",
            Code::UnknownTarget => "unknown-target",
            Code::NoTables => "no-tables",
            Code::TableName => "table-name",
            Code::DuplicateTable => "duplicate-table",
            Code::UnknownDependency => "unknown-dependency",
            Code::SelfDependency => "self-dependency",
            Code::DuplicateDependency => "duplicate-dependency",
            Code::DependencyNotInTarget => "dependency-not-in-target",
            Code::Cycle => "cycle",
            Code::AttributeName => "attribute-name",
            Code::StreamViewType => "stream-view-type",
            Code::Tag => "tag",
            Code::CanaryKey => "canary-key",
            Code::DrillTemplate => "drill-template",
            Code::HookName => "hook-name",
            Code::DuplicateHook => "duplicate-hook",
            Code::HookRun => "hook-run",
            Code::HookTimeout => "hook-timeout",
            Code::EventBus => "event-bus",
            Code::TopicArn => "topic-arn",
        }
    }
}

impl From<Code> for &'static str {
    fn from(c: Code) -> Self {
        c.as_str()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The plan is still valid.
    Warning,
    /// The plan is invalid.
    Error,
}

/// A place in the plan text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Byte offset.
    pub offset: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
    /// Line, 1-based.
    pub line: usize,
    /// Column in characters, 1-based.
    pub column: usize,
}

/// A secondary label: another place that takes part in the problem.
#[derive(Debug, Clone)]
pub struct Related {
    /// Where.
    pub location: Location,
    /// What happens there.
    pub label: String,
}

/// One problem found in a plan.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when there is something to say.
    pub help: Option<String>,
    /// Where (the primary label).
    pub location: Location,
    /// Text of the primary label.
    pub label: String,
    /// Other places involved (for example every edge of a cycle).
    pub related: Vec<Related>,
}

/// All diagnostics of one plan file, with its text, ready to render.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    source: Arc<Source>,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(name: &str, text: String, mut items: Vec<Diagnostic>) -> Diagnostics {
        items.sort_by_key(|d| (d.location.offset, d.code));
        let source = Source { name: name.to_owned(), text, line_starts: OnceLock::new() };
        Diagnostics { source: Arc::new(source), items }
    }

    /// The diagnostics, in file order.
    #[must_use]
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Whether any diagnostic is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Whether there is nothing to report.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each diagnostic as a miette report borrowing the plan text, for rendering.
    pub fn reports(&self) -> impl Iterator<Item = Report<'_>> {
        self.items.iter().map(|d| Report { diagnostic: d, source: &self.source })
    }
}

/// One diagnostic with its source text, as a [`miette::Diagnostic`].
#[derive(Debug)]
pub struct Report<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a Source,
}

/// The most text a snippet shows. A longer one (long lines, labels far apart) shows the span
/// and [`CLIPPED_CONTEXT_BYTES`] either side of it on its line, or, for a span longer than
/// this, nothing (miette then shows the labels apart).
const MAX_SNIPPET_BYTES: usize = 4096;
/// Bytes either side of a span shown from a long line.
const CLIPPED_CONTEXT_BYTES: usize = 256;

/// The plan text, as miette reads it to show snippets.
///
/// miette's `SourceCode` for text finds a span by reading the text from its start, and shows
/// whole lines: a plan with thousands of diagnostics took time quadratic in its size to render
/// (10,000 tables with a misspelt key each: 23 s), and a long line was copied into every
/// diagnostic on it (a 60 KB line with 10,000 duplicate keys: 3.3 GB of output). This one
/// starts reading a few lines before the span, at a line start found in an index, and gives
/// exactly what miette's would give, unless that is more than [`MAX_SNIPPET_BYTES`].
#[derive(Debug)]
struct Source {
    name: String,
    text: String,
    /// Where each line starts, lines ending as miette ends them (`\n`, `\r\n` or `\r`); built
    /// on the first snippet (a valid plan never needs it).
    line_starts: OnceLock<Vec<usize>>,
}

impl Source {
    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            let bytes = self.text.as_bytes();
            let mut starts = vec![0];
            let mut i = 0;
            while i < bytes.len() {
                i += match bytes[i] {
                    b'\r' if bytes.get(i + 1) == Some(&b'\n') => 2,
                    _ => 1,
                };
                if matches!(bytes[i - 1], b'\r' | b'\n') {
                    starts.push(i);
                }
            }
            starts
        })
    }

    /// The span and what surrounds it on its lines, cut to [`CLIPPED_CONTEXT_BYTES`] either
    /// side; from the span itself without context before (miette's own choice then, which
    /// places the header's line and column).
    fn clipped(
        &self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<MietteSpanContents<'_>, MietteError> {
        let (text, starts) = (&self.text, self.line_starts());
        let (offset, end) = (span.offset(), span.offset() + span.len());
        if span.len() > MAX_SNIPPET_BYTES {
            return Err(MietteError::OutOfBounds);
        }
        let line_of = |at: usize| starts.partition_point(|s| *s <= at).saturating_sub(1);
        let (line, last) = (line_of(offset), line_of(end));
        let line_start = starts[line];
        let line_end = starts
            .get(last + 1)
            .map_or(text.len(), |next| next - if text[..*next].ends_with("\r\n") { 2 } else { 1 });
        let mut from = if before == 0 {
            offset
        } else {
            offset.saturating_sub(CLIPPED_CONTEXT_BYTES).max(line_start)
        };
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let mut to = (end + CLIPPED_CONTEXT_BYTES).min(line_end.max(end)).min(text.len());
        while !text.is_char_boundary(to) {
            to += 1;
        }
        Ok(MietteSpanContents::new_named(
            self.name.clone(),
            &text.as_bytes()[from..to],
            SourceSpan::new(from.into(), to - from),
            line,
            from - line_start,
            last + after + 1,
        ))
    }
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let starts = self.line_starts();
        let line_of = |at: usize| starts.partition_point(|s| *s <= at).saturating_sub(1);
        // The span's line, less the lines of context before it and one more: reading from
        // there, miette sees the same lines before the span as from the start of the text.
        let first = line_of(span.offset()).saturating_sub(context_lines_before.saturating_add(1));
        let start = starts[first];
        let end = span.offset().saturating_add(span.len());
        let last = line_of(end).saturating_add(context_lines_after).saturating_add(2);
        let stop = starts.get(last).copied().unwrap_or(self.text.len());
        if stop - start > MAX_SNIPPET_BYTES && end <= self.text.len() {
            let clipped = self.clipped(span, context_lines_before, context_lines_after)?;
            return Ok(Box::new(clipped));
        }
        let inner = SourceSpan::new((span.offset() - start).into(), span.len());
        let contents =
            self.text[start..].read_span(&inner, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            contents.data(),
            SourceSpan::new((contents.span().offset() + start).into(), contents.span().len()),
            contents.line() + first,
            contents.column(),
            contents.line_count() + first,
        )))
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (d, text) = (self.diagnostic, &self.source.text);
        // A label longer than a snippet (a huge scalar) underlines its first part.
        let span = |l: &Location| {
            let mut len = l.len.min(MAX_SNIPPET_BYTES);
            while len > 0 && !text.is_char_boundary(l.offset + len) {
                len -= 1;
            }
            SourceSpan::new(l.offset.into(), len)
        };
        let primary = LabeledSpan::new_primary_with_span(Some(d.label.clone()), span(&d.location));
        let related = d
            .related
            .iter()
            .map(move |r| LabeledSpan::new_with_span(Some(r.label.clone()), span(&r.location)));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found with the `plan` fuzz target's timeout (tests/fuzz): rendering took time quadratic
    /// in the size of a plan with many diagnostics, because miette read every snippet from the
    /// start of the text. The indexed source must read exactly what miette's own reads.
    #[test]
    fn snippets_read_from_a_line_index_match_miettes_own() {
        let text = "a: 1\nbb: [x, y]\r\ncc: é\rd\n\n  e: \"f\"\r\n\r\ng: h";
        let source =
            Source { name: "t.yaml".into(), text: text.into(), line_starts: OnceLock::new() };
        for offset in 0..=text.len() {
            for len in [0, 1, 3, 9] {
                for context in [0, 1, 2] {
                    let span = SourceSpan::new(offset.into(), len);
                    let ours = source.read_span(&span, context, context);
                    let theirs = text.read_span(&span, context, context);
                    match (ours, theirs) {
                        (Ok(ours), Ok(theirs)) => {
                            let view = |c: &dyn SpanContents<'_>| {
                                (c.data().to_vec(), *c.span(), c.line(), c.column(), c.line_count())
                            };
                            assert_eq!(view(&*ours), view(&*theirs), "{offset} {len} {context}");
                            assert_eq!(ours.name(), Some("t.yaml"));
                        }
                        (Err(_), Err(_)) => {}
                        (ours, theirs) => panic!(
                            "{offset} {len} {context}: {:?} vs {:?}",
                            ours.is_ok(),
                            theirs.is_ok()
                        ),
                    }
                }
            }
        }
    }

    /// Found with the `plan` fuzz target's timeout (tests/fuzz): every diagnostic on a long
    /// line showed the whole line (60 KB with 10,000 duplicate keys: 3.3 GB of output).
    #[test]
    fn long_lines_are_cut_around_the_span() {
        let text = format!("{{{}}}", "a: 1, ".repeat(20_000));
        let source = Source { name: "t.yaml".into(), text, line_starts: OnceLock::new() };
        let span = SourceSpan::new(60_001.into(), 4);
        for context in [0, 1, 2] {
            let c = source.read_span(&span, context, context).unwrap();
            assert!(c.data().len() <= 4 + 2 * CLIPPED_CONTEXT_BYTES, "{context}");
            let (start, len) = (c.span().offset(), c.span().len());
            assert!(start <= 60_001 && 60_005 <= start + len, "{context}");
            assert_eq!((c.line(), c.column()), (0, start), "{context}");
        }
        // Without context (the header's place), from the span itself.
        assert_eq!(source.read_span(&span, 0, 0).unwrap().column(), 60_001);
        // A span longer than a snippet is not shown.
        assert!(source.read_span(&SourceSpan::new(0.into(), 50_000), 1, 1).is_err());
    }
}
