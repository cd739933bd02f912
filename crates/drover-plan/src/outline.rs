//! What a run of a plan will do, per target: restore waves, the steps of each table, and the
//! longest dependency chain; with renderings for people (text) and tools (JSON, DOT, Mermaid).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::model::{Plan, TableId};

/// How a run recovers: a drill into isolated names, or a real failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back up the source, copy, restore under drill names, validate, tear down.
    Drill,
    /// Restore from copies already in the target vault, under the tables' own names.
    Failover,
    /// Back up every table and copy it to every target vault; no restore.
    Backup,
    /// Restore every table from point-in-time recovery to one instant, under new names
    /// (`drover recover`): no recovery point, no copy.
    Recover,
}

impl Mode {
    /// The steps each (table, target) goes through, in order.
    #[must_use]
    pub fn steps(self) -> &'static [StepKind] {
        match self {
            Mode::Drill => &[
                StepKind::RecoveryPoint,
                StepKind::Copy,
                StepKind::Restore,
                StepKind::Configure,
                StepKind::Validate,
                StepKind::Teardown,
            ],
            Mode::Failover => &[
                StepKind::RecoveryPoint,
                StepKind::Restore,
                StepKind::Configure,
                StepKind::Validate,
            ],
            Mode::Backup => &[StepKind::RecoveryPoint, StepKind::Copy],
            Mode::Recover => &[StepKind::Restore, StepKind::Configure, StepKind::Validate],
        }
    }

    /// The steps of a run of this mode restoring from point-in-time recovery (`recover`, and
    /// `drill --pitr`): no recovery point and no copy.
    #[must_use]
    pub fn pitr_steps(self) -> &'static [StepKind] {
        match self {
            Mode::Drill => {
                &[StepKind::Restore, StepKind::Configure, StepKind::Validate, StepKind::Teardown]
            }
            Mode::Failover | Mode::Recover => Mode::Recover.steps(),
            Mode::Backup => &[],
        }
    }

    /// `drill`, `failover`, `backup` or `recover`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Drill => "drill",
            Mode::Failover => "failover",
            Mode::Backup => "backup",
            Mode::Recover => "recover",
        }
    }
}

/// One step of a table's recovery in one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// Take (drill) or pick (failover) the recovery point.
    RecoveryPoint,
    /// Copy the recovery point into the target vault.
    Copy,
    /// Restore the table from the recovery point in the target region.
    Restore,
    /// Re-apply what a restore drops: PITR, TTL, stream, deletion protection, tags.
    Configure,
    /// Check the restored table.
    Validate,
    /// Delete the drill table.
    Teardown,
    /// The plan's `hooks.after_target`, once per target after every table there is validated
    /// (its table is `*`).
    Hooks,
}

impl StepKind {
    /// The step's name in output and journals.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::RecoveryPoint => "recovery-point",
            StepKind::Copy => "copy",
            StepKind::Restore => "restore",
            StepKind::Configure => "configure",
            StepKind::Validate => "validate",
            StepKind::Teardown => "teardown",
            StepKind::Hooks => "hooks",
        }
    }
}

/// The outline of a run of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Outline {
    /// Plan name.
    pub plan: String,
    /// Drill or failover.
    pub mode: Mode,
    /// Source region.
    pub source_region: String,
    /// Steps each (table, target) goes through.
    pub steps: Vec<StepKind>,
    /// One entry per target region, in plan order.
    pub targets: Vec<TargetOutline>,
}

/// The outline of one target region.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutline {
    /// Target region.
    pub region: String,
    /// Vault receiving copies.
    pub backup_vault: String,
    /// The account the target is in, for plans that span accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Number of tables restored here.
    pub tables: usize,
    /// Restore waves: tables whose dependencies are all in earlier waves.
    pub waves: Vec<Vec<String>>,
    /// Longest dependency chain, dependency first.
    pub critical_path: Vec<String>,
    /// `waves` as table ids.
    #[serde(skip)]
    pub wave_ids: Vec<Vec<TableId>>,
}

impl Outline {
    /// Outlines a run of `plan` in `mode`.
    #[must_use]
    pub fn new(plan: &Plan, mode: Mode) -> Outline {
        let names =
            |ids: &[TableId]| ids.iter().map(|id| plan.table(*id).name.clone()).collect::<Vec<_>>();
        let targets = plan
            .targets
            .iter()
            .map(|t| {
                let waves = plan.graph.waves(plan, &t.region);
                TargetOutline {
                    region: t.region.to_string(),
                    backup_vault: t.backup_vault.clone(),
                    account: plan.spans_accounts().then(|| plan.target_account(t).to_owned()),
                    tables: waves.iter().map(Vec::len).sum(),
                    waves: waves.iter().map(|w| names(w)).collect(),
                    critical_path: names(&plan.graph.critical_path(plan, &t.region, |_| 1)),
                    wave_ids: waves,
                }
            })
            .collect();
        Outline {
            plan: plan.name.clone(),
            mode,
            source_region: plan.source.region.to_string(),
            steps: mode.steps().to_vec(),
            targets,
        }
    }

    /// Human-readable text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let regions: Vec<&str> = self.targets.iter().map(|t| t.region.as_str()).collect();
        let _ = writeln!(
            out,
            "plan {} ({}): {} -> {}",
            self.plan,
            self.mode.as_str(),
            self.source_region,
            regions.join(", ")
        );
        let steps: Vec<&str> = self.steps.iter().map(|s| s.as_str()).collect();
        let _ = writeln!(out, "steps per table and target: {}", steps.join(" -> "));
        for t in &self.targets {
            let account = t.account.as_ref().map(|a| format!(", account {a}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "\ntarget {} (vault {}{account}): {} {} in {} {}",
                t.region,
                t.backup_vault,
                t.tables,
                plural(t.tables, "table", "tables"),
                t.waves.len(),
                plural(t.waves.len(), "wave", "waves")
            );
            for (i, wave) in t.waves.iter().enumerate() {
                let _ = writeln!(out, "  wave {:<3} {}", i + 1, wave.join(", "));
            }
            let _ = writeln!(
                out,
                "  longest dependency chain ({} {}): {}",
                t.critical_path.len(),
                plural(t.critical_path.len(), "table", "tables"),
                t.critical_path.join(" -> ")
            );
        }
        out
    }

    /// Graphviz DOT: one cluster per target, `dependency -> dependent` edges.
    #[must_use]
    pub fn to_dot(&self, plan: &Plan) -> String {
        let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
        let _ =
            writeln!(out, "  label={};", quote(&format!("{} ({})", self.plan, self.mode.as_str())));
        for (ti, t) in self.targets.iter().enumerate() {
            let _ = writeln!(out, "  subgraph cluster_{ti} {{\n    label={};", quote(&t.region));
            let node = |id: TableId| quote(&format!("{}/{}", t.region, plan.table(id).name));
            for &id in t.wave_ids.iter().flatten() {
                let _ = writeln!(out, "    {} [label={}];", node(id), quote(&plan.table(id).name));
            }
            for &id in t.wave_ids.iter().flatten() {
                for dep in plan.graph.dependencies(id) {
                    let _ = writeln!(out, "    {} -> {};", node(dep), node(id));
                }
            }
            out.push_str("  }\n");
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart: one subgraph per target.
    #[must_use]
    pub fn to_mermaid(&self, plan: &Plan) -> String {
        let mut out = String::from("flowchart LR\n");
        for (ti, t) in self.targets.iter().enumerate() {
            let _ = writeln!(out, "  subgraph t{ti}[\"{}\"]", t.region);
            let node = |id: TableId| format!("t{ti}_{}", id.0);
            for &id in t.wave_ids.iter().flatten() {
                let _ = writeln!(out, "    {}[\"{}\"]", node(id), plan.table(id).name);
            }
            for &id in t.wave_ids.iter().flatten() {
                for dep in plan.graph.dependencies(id) {
                    let _ = writeln!(out, "    {} --> {}", node(dep), node(id));
                }
            }
            out.push_str("  end\n");
        }
        out
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
