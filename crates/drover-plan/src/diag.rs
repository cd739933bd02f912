//! Plan diagnostics: stable codes, locations, and the miette view of them.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};
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
    /// A KMS key is in another account than the plan's.
    KmsKeyAccount,
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
    source: Arc<NamedSource<String>>,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(name: &str, text: String, mut items: Vec<Diagnostic>) -> Diagnostics {
        items.sort_by_key(|d| (d.location.offset, d.code));
        Diagnostics { source: Arc::new(NamedSource::new(name, text)), items }
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
    source: &'a NamedSource<String>,
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
        let d = self.diagnostic;
        let span = |l: &Location| SourceSpan::new(l.offset.into(), l.len);
        let primary = LabeledSpan::new_primary_with_span(Some(d.label.clone()), span(&d.location));
        let related = d
            .related
            .iter()
            .map(move |r| LabeledSpan::new_with_span(Some(r.label.clone()), span(&r.location)));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}
