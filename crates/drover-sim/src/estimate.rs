//! RTO estimates: the executor itself, run against the simulator in virtual time, with table
//! sizes and a duration model (documented defaults, or calibrated from past runs' journals).
//! Not a formula: the same scheduler, limits, polling and dependency order as a real run, and
//! the same AWS behaviours ([`default_realism`]: restored tables settling, PITR enabled late,
//! tags shown late, one backup or copy job per table, ...), without the random noise.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_engine::journal::Journal;
use drover_engine::ports::Millis;
use drover_engine::state::{
    DEFAULT_PITR_TEMPLATE, Header, Limits, Phase, Pitr, PitrNames, PitrTime, RunOptions, RunState,
    StepKey, StepOutput,
};
use drover_engine::{Execution, Settings, Silent, SystemClock, execute, report, run};
use drover_plan::{Mode, Plan, StepKind};
use serde::Serialize;

use crate::{DurationModel, ITEM_BYTES, JobKind, Realism, SimCloud};

/// When estimated runs start (any fixed time: estimates are durations).
const T0: Millis = 1_767_225_600_000;

/// How long before the run an estimated recovery restores to (`--before-minutes 10`).
const RECOVER_BEFORE_MS: Millis = 10 * 60_000;

/// The estimate of one target region.
#[derive(Debug, Clone, Serialize)]
pub struct TargetEstimate {
    /// Target region.
    pub region: String,
    /// From the start of the run to the last table validated in this region.
    pub rto_ms: Millis,
    /// The chain of steps that decides it, with durations.
    pub critical_path: Vec<(String, Millis)>,
    /// Tables on the critical path, longest share first, with their time on it.
    pub dominating: Vec<(String, Millis)>,
}

/// An estimate of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// Drill or failover.
    pub mode: Mode,
    /// Per target, in plan order.
    pub targets: Vec<TargetEstimate>,
    /// The whole run: the slowest target.
    pub rto_ms: Millis,
    /// The model used.
    pub model: DurationModel,
}

/// Sizes (bytes) of the plan's tables; tables not listed count as empty.
pub type Sizes = BTreeMap<String, u64>;

/// The AWS behaviours estimates and simulations model unless told otherwise:
/// [`Realism::aws`] without its noise ([`Realism::without_noise`]: no passing server faults,
/// no copy queue), so that an estimate is a function of the plan, the sizes and the model.
#[must_use]
pub fn default_realism() -> Realism {
    Realism::aws().without_noise()
}

/// How a simulated run is set up ([`Simulation::run`]).
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Job durations.
    pub model: DurationModel,
    /// The executor's concurrency limits.
    pub limits: Limits,
    /// Seed of the simulated world (the model's noise, ids, realism's random draws).
    pub seed: u64,
    /// Whether the journal syncs every append, as a real run's does (overhead benchmarks).
    pub durable: bool,
    /// The AWS behaviours modelled.
    pub realism: Realism,
}

impl Simulation {
    /// A simulation with `model` and `limits`, seed 0, a volatile journal and
    /// [`default_realism`].
    #[must_use]
    pub fn new(model: DurationModel, limits: Limits) -> Simulation {
        Simulation { model, limits, seed: 0, durable: false, realism: default_realism() }
    }
}

/// Expected step durations (ms) for a run of `plan` on tables of `sizes`, by `model`: the
/// executor's priorities.
#[must_use]
pub fn expected_durations(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: &DurationModel,
) -> BTreeMap<StepKey, u64> {
    let graph = drover_engine::graph::StepGraph::new(plan, mode, false);
    graph
        .steps()
        .iter()
        .map(|k| {
            let bytes = sizes.get(&k.table).copied().unwrap_or(0);
            let ms = match k.kind {
                StepKind::RecoveryPoint if mode == Mode::Failover => 0,
                StepKind::RecoveryPoint => model.expected_ms(JobKind::Backup, bytes),
                StepKind::Copy => model.expected_ms(JobKind::Copy, bytes),
                StepKind::Restore if mode == Mode::Recover => model.pitr_restore_ms(bytes),
                StepKind::Restore => model.expected_ms(JobKind::Restore, bytes),
                StepKind::Validate => model.scan_ms(bytes, 4),
                StepKind::Configure | StepKind::Teardown | StepKind::Hooks => 0,
            };
            (k.clone(), u64::try_from(ms).unwrap_or(0))
        })
        .collect()
}

/// Estimates a `mode` run of `plan`, with [`default_realism`].
///
/// # Errors
/// The simulated run could not be set up or did not complete (a message).
pub fn estimate(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
    limits: Limits,
) -> Result<Estimate, String> {
    estimate_with(plan, mode, sizes, model, limits, &default_realism())
}

/// Estimates a `mode` run of `plan`, modelling `realism`.
///
/// # Errors
/// The simulated run could not be set up or did not complete (a message).
pub fn estimate_with(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
    limits: Limits,
    realism: &Realism,
) -> Result<Estimate, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| format!("cannot start the estimator: {e}"))?;
    let simulation = Simulation { realism: realism.clone(), ..Simulation::new(model, limits) };
    let (state, _) = rt.block_on(simulation.run(plan, mode, sizes))?;
    let mut targets = Vec::new();
    for target in &plan.targets {
        let region = target.region.to_string();
        let end = state
            .steps
            .iter()
            .filter(|(k, s)| {
                k.target.as_deref() == Some(region.as_str())
                    && k.kind == StepKind::Validate
                    && s.ended_at.is_some()
            })
            .filter_map(|(_, s)| s.ended_at)
            .max()
            .unwrap_or(state.started_at);
        let path = report::critical_path(plan, &state, Some(&region));
        let mut per_table: BTreeMap<String, Millis> = BTreeMap::new();
        for (k, d) in &path {
            *per_table.entry(k.table.clone()).or_default() += d;
        }
        let mut dominating: Vec<(String, Millis)> = per_table.into_iter().collect();
        dominating.sort_by_key(|(t, d)| (std::cmp::Reverse(*d), t.clone()));
        targets.push(TargetEstimate {
            region,
            rto_ms: end - state.started_at,
            critical_path: path.into_iter().map(|(k, d)| (k.to_string(), d)).collect(),
            dominating,
        });
    }
    let rto_ms = targets.iter().map(|t| t.rto_ms).max().unwrap_or(0);
    Ok(Estimate { mode, targets, rto_ms, model })
}

/// Runs the executor on a simulated world of `sizes`, in (paused) virtual time, with
/// [`default_realism`]; returns the final state. `seed` varies the model's noise.
///
/// # Errors
/// Set-up failures or a run that did not succeed.
pub async fn simulate(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
    limits: Limits,
    seed: u64,
) -> Result<RunState, String> {
    simulate_on(plan, mode, sizes, model, limits, seed).await.map(|(state, _)| state)
}

/// As [`simulate`], also returning the simulated world (job times, call counts).
///
/// # Errors
/// Set-up failures or a run that did not succeed.
pub async fn simulate_on(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
    limits: Limits,
    seed: u64,
) -> Result<(RunState, SimCloud), String> {
    simulate_with(plan, mode, sizes, model, limits, seed, false).await
}

/// As [`simulate_on`], choosing whether the journal syncs every append (`durable`), as a
/// real run's does (overhead benchmarks).
///
/// # Errors
/// Set-up failures or a run that did not succeed.
pub async fn simulate_with(
    plan: &Plan,
    mode: Mode,
    sizes: &Sizes,
    model: DurationModel,
    limits: Limits,
    seed: u64,
    durable: bool,
) -> Result<(RunState, SimCloud), String> {
    let simulation = Simulation { seed, durable, ..Simulation::new(model, limits) };
    simulation.run(plan, mode, sizes).await
}

impl Simulation {
    /// Runs the executor on a simulated world of `sizes`, in (paused) virtual time; returns
    /// the final state and the simulated world (job times, call counts, realism's effects).
    ///
    /// # Errors
    /// Set-up failures or a run that did not succeed.
    pub async fn run(
        &self,
        plan: &Plan,
        mode: Mode,
        sizes: &Sizes,
    ) -> Result<(RunState, SimCloud), String> {
        let Simulation { model, limits, seed, durable, .. } = *self;
        let clock = Arc::new(SystemClock::starting_at(T0));
        let sim = SimCloud::new(
            plan.source.account_id.as_deref().unwrap_or("123456789012"),
            seed,
            clock.clone(),
        );
        sim.set_model(model);
        sim.set_realism(self.realism.clone());
        sim.seed_from_plan(plan, 0);
        for t in &plan.tables {
            // The canary items the plan seeds count towards the size.
            let canaries = u64::try_from(t.validate.canary_keys.len()).unwrap_or(0);
            let items =
                (sizes.get(&t.name).copied().unwrap_or(0) / ITEM_BYTES).saturating_sub(canaries);
            sim.with(|w| w.set_generated_items(plan.source.region.as_str(), &t.name, items));
        }
        if mode == Mode::Failover {
            sim.seed_copies(plan, 0);
        }
        // A recovery restores every source table (each with PITR on for its whole recovery
        // period) to one instant ten minutes before the run: inside every window.
        let pitr = (mode == Mode::Recover).then(|| {
            for t in &plan.tables {
                sim.seed_point_in_time_recovery(plan.source.region.as_str(), &t.name);
            }
            Pitr {
                at: T0 - RECOVER_BEFORE_MS,
                requested: PitrTime::BeforeMinutes { minutes: 10 },
                chosen_at: T0,
                into_source: false,
                names: PitrNames::Template(DEFAULT_PITR_TEMPLATE.to_owned()),
            }
        });
        let dir = std::env::temp_dir().join(format!(
            "drover-estimate-{}-{seed}-{}",
            std::process::id(),
            nonce()
        ));
        let run_id = run::new_run_id(&plan.name, T0, seed);
        let header = Header {
            run_id: run_id.clone(),
            mode,
            plan_name: plan.name.clone(),
            plan_hash: String::new(),
            plan_path: String::new(),
            plan_text: String::new(),
            drover_version: env!("CARGO_PKG_VERSION").to_owned(),
            options: RunOptions {
                keep: true,
                limits,
                cloud: serde_json::json!({"kind": "estimate"}),
                cut_at: None,
                backup_settle_ms: None,
                poll_interval_ms: None,
                source_read_units: None,
                notify: Default::default(),
                publish_metrics: false,
                pitr,
            },
        };
        let result = async {
            let (journal, state) = run::create(&dir, header, T0).map_err(|e| e.to_string())?;
            let noiseless = DurationModel { noise: 0.0, ..model };
            let settings = Settings {
                limits,
                scan_segments: 4,
                expected_ms: Some(Arc::new(expected_durations(plan, mode, sizes, &noiseless))),
                volatile_journal: !durable,
                ..Settings::default()
            };
            let ports = sim.ports();
            let report = execute(Execution {
                plan: plan.clone(),
                journal,
                state,
                ports,
                settings,
                cancel: tokio_util::sync::CancellationToken::new(),
                observer: Arc::new(Silent),
                hooks: None,
            })
            .await
            .map_err(|e| e.to_string())?;
            if let Some((key, step)) =
                report.state.steps.iter().find(|(_, s)| matches!(s.phase, Phase::Failed { .. }))
            {
                return Err(format!("the simulated run failed at {key}: {:?}", step.phase));
            }
            Ok(report.state)
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        result.map(|state| (state, sim))
    }
}

fn nonce() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A duration model fitted to past runs: for each kind of job, `duration = base + bytes /
/// rate` by least squares over the succeeded steps of the given runs (sizes from their
/// recovery points); kinds without at least two sizes keep `defaults`. Point-in-time restores
/// (`pitr-restore`) are fitted the same way from the restore steps of point-in-time runs (the
/// source's size journaled with each). Returns the model and how many samples each kind had.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn calibrate(
    runs: &[RunState],
    defaults: DurationModel,
) -> (DurationModel, BTreeMap<&'static str, usize>) {
    let mut samples: BTreeMap<&'static str, Vec<(f64, f64)>> = BTreeMap::new();
    for state in runs {
        let size_of = |table: &str| {
            state.steps.iter().find_map(|(k, s)| match &s.phase {
                Phase::Succeeded {
                    output: StepOutput::RecoveryPoint { size_bytes: Some(b), .. },
                } if k.table == table => Some(*b),
                _ => None,
            })
        };
        for (k, s) in &state.steps {
            let (Phase::Succeeded { .. }, Some(b), Some(e)) = (&s.phase, s.began_at, s.ended_at)
            else {
                continue;
            };
            let pitr = matches!(
                &s.phase,
                Phase::Succeeded { output: StepOutput::Restore { pitr: Some(_), .. } }
            );
            let kind = match k.kind {
                StepKind::RecoveryPoint if k.target.is_none() => "backup",
                StepKind::Copy => "copy",
                // A point-in-time restore has no job: the step's own time, from the call to
                // the table ready (its describes before the call take no time to speak of).
                StepKind::Restore if pitr => "pitr-restore",
                StepKind::Restore => "restore",
                _ => continue,
            };
            let size = match &s.phase {
                Phase::Succeeded { output: StepOutput::Restore { pitr: Some(p), .. } } => {
                    p.size_bytes
                }
                _ => size_of(&k.table),
            };
            if let Some(bytes) = size {
                samples
                    .entry(kind)
                    .or_default()
                    .push((bytes as f64 / 1e6, (e - b) as f64 / 1000.0));
            }
        }
    }
    let mut model = defaults;
    let mut counts = BTreeMap::new();
    for (kind, points) in &samples {
        counts.insert(*kind, points.len());
        let Some((base, per_mb)) = fit(points) else { continue };
        let rate = if per_mb > 0.0 { 1.0 / per_mb } else { f64::INFINITY };
        match *kind {
            "backup" => (model.backup_base_s, model.backup_mb_s) = (base, rate),
            "copy" => (model.copy_base_s, model.copy_mb_s) = (base, rate),
            "pitr-restore" => (model.pitr_restore_base_s, model.pitr_restore_mb_s) = (base, rate),
            _ => (model.restore_base_s, model.restore_mb_s) = (base, rate),
        }
    }
    (model, counts)
}

/// Least squares `y = a + b x` with `a, b >= 0`; `None` without two distinct `x`.
#[allow(clippy::cast_precision_loss)]
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if points.len() < 2 || sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = (sxy / sxx).max(0.0);
    let a = (my - b * mx).max(0.0);
    Some((a, b))
}

/// Reads every run journal under `dir` (a state directory, or a directory of them).
#[must_use]
pub fn history(dir: &std::path::Path) -> Vec<RunState> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "journal.jsonl")
                && let Ok((entries, _)) = Journal::read(&path)
                && let Ok(state) = RunState::replay(&entries)
            {
                out.push(state);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_recovers_a_linear_model() {
        let points: Vec<(f64, f64)> =
            [10.0, 100.0, 1000.0].iter().map(|mb| (*mb, 300.0 + mb / 25.0)).collect();
        let (a, b) = fit(&points).unwrap();
        assert!((a - 300.0).abs() < 1e-6 && (1.0 / b - 25.0).abs() < 1e-6, "{a} {b}");
        assert_eq!(fit(&[(1.0, 2.0)]), None);
        assert_eq!(fit(&[(1.0, 2.0), (1.0, 3.0)]), None);
    }
}
