//! Command-line arguments (clap). Validation beyond what clap checks happens in each command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cross-region disaster recovery for Amazon DynamoDB, as code.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check plans and report every problem (exit 0 valid, 1 invalid, 2 usage)
    Validate(ValidateArgs),
    /// Show what a run of a plan does: restore waves, steps, longest dependency chain
    Plan(PlanArgs),
    /// Print the JSON Schema of the plan format (for editors)
    Schema,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Plan files to check
    #[arg(required = true, value_name = "PLAN")]
    pub(crate) plans: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub(crate) format: ValidateFormat,
    /// Fail (exit 1) on warnings too
    #[arg(long)]
    pub(crate) deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    /// Diagnostics with source snippets
    Text,
    /// `{"plans":[{"path","valid","diagnostics":[...]}]}`
    Json,
    /// GitHub Actions workflow annotations
    Github,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Plan file
    #[arg(value_name = "PLAN")]
    pub(crate) plan: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub(crate) format: PlanFormat,
    /// Which run to outline
    #[arg(long, value_enum, default_value_t = ModeArg::Drill)]
    pub(crate) mode: ModeArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    /// Waves and chains for people
    Text,
    /// Machine-readable outline
    Json,
    /// Graphviz DOT
    Dot,
    /// Mermaid flowchart
    Mermaid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Restore under drill names, validate, tear down
    Drill,
    /// Restore for real from copies in the target vaults
    Failover,
}

impl From<ModeArg> for drover_plan::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Drill => drover_plan::Mode::Drill,
            ModeArg::Failover => drover_plan::Mode::Failover,
        }
    }
}
