//! The scheduler: drives every step of a run through its state machine, in dependency order,
//! within concurrency limits, journaling each transition before acting on it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_plan::{Mode, Plan, StepKind};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::context::{Book, Shared, lock, scope_of};
use crate::error::EngineError;
use crate::graph::{Shape, StepGraph, Wait};
use crate::journal::Journal;
use crate::limits::{Class, Limiter, class_name};
use crate::metrics;
use crate::notify::{self, Channels, Notifier};
use crate::observer::Observer;
use crate::policy::Settings;
use crate::ports::Ports;
use crate::state::{Phase, RunEvent, RunState, StepEvent, StepKey};

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// Some steps failed (and their dependents were blocked); `resume` retries them.
    Failed {
        /// The failed steps.
        failed: Vec<StepKey>,
        /// How many steps were blocked.
        blocked: usize,
    },
    /// Stopped by cancellation (Ctrl-C); `resume` continues.
    Interrupted,
}

/// Everything a run needs.
pub struct Execution {
    /// The validated plan.
    pub plan: Plan,
    /// The open journal (created or resumed) and the state it replays to.
    pub journal: Journal,
    /// State rebuilt from the journal.
    pub state: RunState,
    /// The cloud.
    pub ports: Ports,
    /// Engine settings.
    pub settings: Settings,
    /// Cancels the run (Ctrl-C).
    pub cancel: CancellationToken,
    /// Progress.
    pub observer: Arc<dyn Observer>,
    /// Runs the plan's validation hooks (`None`: they are not run, and say so: an estimate).
    pub hooks: Option<Arc<dyn crate::hooks::HookRunner>>,
}

/// What a finished (or stopped) execution reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The final state.
    pub state: RunState,
    /// Highest number of steps in flight per (region, class of work).
    pub peak_concurrency: BTreeMap<String, usize>,
}

/// Runs (or resumes) the run to its end, or until cancelled.
///
/// # Errors
/// Journal failures (disk full, a simulated crash) and internal errors stop the run; the
/// journal then holds everything done so far and `resume` continues from it.
///
/// # Cancel safety
/// Not cancel safe: cancel through `Execution::cancel`, which journals the interruption.
pub async fn execute(exec: Execution) -> Result<Report, EngineError> {
    let Execution { plan, journal, state, ports, settings, cancel, observer, hooks } = exec;
    let mode = state.header.mode;
    let teardown = mode == Mode::Drill && (!state.header.options.keep || state.teardown_requested);
    let shape = Shape::of(&state.header, teardown);
    let graph = Arc::new(match &settings.expected_ms {
        Some(expected) => StepGraph::with_weights(&plan, shape, &|k| expected.get(k).copied()),
        None => StepGraph::shaped(&plan, shape),
    });
    let mut journal = journal;
    journal.set_durable(!settings.volatile_journal);
    let run_id = state.header.run_id.clone();
    let short_id = crate::run::short_id(&run_id);
    // Events: the run's start now, each failed step from the observer, its end below.
    let notifier = Notifier::start(
        Channels::of(&plan, &state.header.options.notify),
        ports.events.clone(),
        settings.notify_retry,
    );
    let observer: Arc<dyn Observer> = match &notifier {
        Some(n) => {
            n.send(notify::run_started(&state, !state.steps.is_empty(), ports.clock.now()));
            Arc::new(notify::Notifying::new(observer, plan.clone(), n))
        }
        None => observer,
    };
    let shared = Arc::new(Shared {
        plan,
        run_id,
        short_id,
        pitr: state.header.options.pitr.clone(),
        hooks,
        ports,
        settings,
        book: Mutex::new(Book { journal, state }),
        limiter: Mutex::new(Limiter::default()),
        observer,
    });

    let outcome = run_to_end(&shared, &graph, &cancel, teardown).await;
    // Nothing is left in flight when the run returns, whatever its outcome (an object
    // journal's last group is written or has failed).
    shared.durability().settle().await;
    let outcome = outcome?;
    let state = shared.state();
    if let Some(notifier) = notifier {
        notifier.send(notify::run_finished(&shared.plan, &state, shared.ports.clock.now()));
        // An interrupted run (Ctrl-C, a lost lease) does not wait long for its last event.
        let within = if outcome == Outcome::Interrupted {
            Duration::from_secs(10)
        } else {
            shared.settings.notify_retry.give_up_after + Duration::from_secs(30)
        };
        let delivery = notifier.close(within).await;
        tracing::info!(delivered = delivery.delivered, failed = delivery.failed, "events");
    }
    if state.header.options.publish_metrics {
        let data = metrics::run(&crate::report::RunReport::new(&shared.plan, &state));
        let published = metrics::publish(shared.ports.metrics.as_ref(), &data).await;
        for e in &published.errors {
            tracing::warn!(error = %e, "the run's metrics were not put; the report has them");
        }
    }
    let peak_concurrency = shared
        .peaks()
        .into_iter()
        .map(|((region, class), n)| (format!("{region} {}", class_name(class)), n))
        .collect();
    Ok(Report { outcome, state, peak_concurrency })
}

/// Chooses failover cuts, schedules the steps, and records how the run ended.
async fn run_to_end(
    shared: &Arc<Shared>,
    graph: &Arc<StepGraph>,
    cancel: &CancellationToken,
    teardown: bool,
) -> Result<Outcome, EngineError> {
    let mode = shared.mode();
    if mode == Mode::Failover && !shared.settings.teardown_only {
        for target in &shared.plan.targets {
            crate::steps::choose_cut(shared, target.region.as_str()).await?;
        }
    }
    let outcome = schedule(shared, graph, cancel).await?;
    if outcome == Outcome::Interrupted {
        shared.record_run(RunEvent::Interrupted).await?;
    } else {
        if mode == Mode::Drill {
            crate::steps::remove_markers(shared).await?;
            if teardown {
                crate::steps::delete_source_points(shared).await?;
            }
        }
        if !shared.settings.teardown_only {
            let success = outcome == Outcome::Succeeded;
            crate::steps::after_run(shared, success).await?;
            shared.record_run(RunEvent::Finished { success }).await?;
        } else if let Some(success) = ended(&shared.state()) {
            // A teardown-only pass leaves the run's outcome as it was: a run that had ended
            // (every step besides teardown finished) ends again, now with its teardown; an
            // interrupted run stays unfinished, for `resume`. (`teardown-requested` makes it
            // unfinished meanwhile, so that `drover sweep` keeps off it.)
            shared.record_run(RunEvent::Finished { success }).await?;
        }
    }
    Ok(outcome)
}

/// Whether a run had ended before a teardown-only pass (every step besides teardown is
/// succeeded, failed or blocked), and if so whether every step, teardown included, succeeded.
fn ended(state: &crate::state::RunState) -> Option<bool> {
    let mut others = state.steps.iter().filter(|(k, _)| k.kind != StepKind::Teardown).peekable();
    others.peek()?;
    others.all(|(_, s)| s.phase.is_terminal()).then(|| {
        state.steps.values().all(|s| matches!(s.phase, crate::state::Phase::Succeeded { .. }))
    })
}

/// Step `i` finished (or was blocked): its dependents are looked at again, and a barrier's
/// waiters once its last member has finished.
fn step_ended(graph: &StepGraph, open: &mut [usize], i: usize, candidates: &mut Vec<usize>) {
    candidates.extend_from_slice(graph.dependents(i));
    if let Some(b) = graph.barrier_of(i) {
        open[b] = open[b].saturating_sub(1);
        if open[b] == 0 {
            candidates.extend_from_slice(&graph.barriers()[b].waiters);
        }
    }
}

/// Each step's scope (region, class of work) as an index into the list of scopes.
fn scopes(shared: &Shared, graph: &StepGraph) -> (Vec<usize>, Vec<(String, Class)>) {
    let mut index: std::collections::BTreeMap<(String, Class), usize> =
        std::collections::BTreeMap::new();
    let ids = graph
        .steps()
        .iter()
        .map(|key| {
            let scope = scope_of(&shared.plan, key);
            let next = index.len();
            *index.entry(scope).or_insert(next)
        })
        .collect();
    let mut scopes: Vec<((String, Class), usize)> = index.into_iter().collect();
    scopes.sort_by_key(|(_, id)| *id);
    (ids, scopes.into_iter().map(|(scope, _)| scope).collect())
}

async fn schedule(
    shared: &Arc<Shared>,
    graph: &Arc<StepGraph>,
    cancel: &CancellationToken,
) -> Result<Outcome, EngineError> {
    let mut running: JoinSet<(usize, Result<(), EngineError>)> = JoinSet::new();
    let mut in_flight = vec![false; graph.len()];
    let teardown_only = shared.settings.teardown_only;
    let steps = graph.steps();
    // Steps to look at, and steps that are ready but wait for a slot of their scope (most
    // work left first). A step is looked at again only when something it waits for
    // finishes, and a barrier's waiters when its last member does, so a run costs time in
    // proportion to its steps and edges, not their product.
    let mut candidates: Vec<usize> = (0..graph.len()).collect();
    let (scope_ids, scopes) = scopes(shared, graph);
    let mut ready: Vec<std::collections::BTreeSet<(std::cmp::Reverse<u64>, usize)>> =
        vec![std::collections::BTreeSet::new(); scopes.len()];
    let finished = |p: &Phase| {
        matches!(p, Phase::Succeeded { .. } | Phase::Failed { .. } | Phase::Blocked { .. })
    };
    // Members of each barrier not finished yet.
    let mut open: Vec<usize> = shared.with_state(|state| {
        graph
            .barriers()
            .iter()
            .map(|b| b.members.iter().filter(|&&m| !finished(state.phase(&steps[m]))).count())
            .collect()
    });
    loop {
        while !candidates.is_empty() {
            // Decide under one lock, act (journal) after it. A step may be listed twice (two
            // of its dependencies finished or were blocked together): look at it once.
            candidates.sort_unstable();
            candidates.dedup();
            let mut blocked = Vec::new();
            shared.with_state(|state| {
                let phase = |i: usize| state.phase(&steps[i]);
                for i in candidates.drain(..) {
                    if in_flight[i] || (teardown_only && steps[i].kind != StepKind::Teardown) {
                        continue;
                    }
                    let queue = &mut ready[scope_ids[i]];
                    match phase(i) {
                        Phase::Pending => {}
                        Phase::Running | Phase::Requested { .. } | Phase::Attached { .. } => {
                            // Started by a previous process: carry on.
                            queue.insert((std::cmp::Reverse(graph.priority(i)), i));
                            continue;
                        }
                        _ => continue,
                    }
                    let mut blocked_by = None;
                    let mut waiting =
                        !teardown_only && graph.barrier_waited(i).is_some_and(|b| open[b] > 0);
                    let waits = if teardown_only { &[][..] } else { graph.waits(i) };
                    for &(j, wait) in waits {
                        match (phase(j), wait) {
                            (Phase::Succeeded { .. }, _)
                            | (Phase::Failed { .. } | Phase::Blocked { .. }, Wait::Finished) => {}
                            (Phase::Failed { .. }, Wait::Success) => {
                                blocked_by = Some(steps[j].clone())
                            }
                            (Phase::Blocked { by }, Wait::Success) => blocked_by = Some(by.clone()),
                            _ => waiting = true,
                        }
                    }
                    if let Some(by) = blocked_by {
                        blocked.push((i, by));
                    } else if !waiting {
                        queue.insert((std::cmp::Reverse(graph.priority(i)), i));
                    }
                }
            });
            for (i, by) in blocked {
                shared.record(&steps[i], StepEvent::Blocked { by }).await?;
                // Blocks propagate through dependents.
                step_ended(graph, &mut open, i, &mut candidates);
            }
        }
        if !cancel.is_cancelled() {
            // Each scope's most urgent steps while it has slots; started in priority order.
            let mut started = Vec::new();
            {
                let mut limiter = lock(&shared.limiter);
                for (id, queue) in ready.iter_mut().enumerate() {
                    while let Some(&first) = queue.first() {
                        if !limiter.try_acquire(&scopes[id], &shared.settings.limits) {
                            break;
                        }
                        queue.pop_first();
                        started.push(first);
                    }
                }
            }
            started.sort_unstable();
            for (_, i) in started {
                let key = steps[i].clone();
                let scope = scopes[scope_ids[i]].clone();
                in_flight[i] = true;
                let shared = Arc::clone(shared);
                running.spawn(async move {
                    let result = crate::steps::drive(&shared, &key).await;
                    lock(&shared.limiter).release(&scope);
                    (i, result)
                });
            }
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                match joined {
                    Ok((i, Ok(()))) => {
                        in_flight[i] = false;
                        if shared.with_state(|state| finished(state.phase(&steps[i]))) {
                            step_ended(graph, &mut open, i, &mut candidates);
                        } else {
                            candidates.extend_from_slice(graph.dependents(i));
                        }
                    }
                    Ok((_, Err(e))) => {
                        running.abort_all();
                        return Err(e);
                    }
                    Err(e) => {
                        running.abort_all();
                        return Err(EngineError::Refused(format!("internal error: a step task ended abnormally: {e}")));
                    }
                }
            }
            () = cancel.cancelled() => {
                // Jobs in the cloud go on; the journal knows them, and resume re-attaches.
                running.abort_all();
                while running.join_next().await.is_some() {}
                return Ok(Outcome::Interrupted);
            }
        }
    }
    if cancel.is_cancelled() {
        return Ok(Outcome::Interrupted);
    }
    let state = shared.state();
    let mut failed = Vec::new();
    let mut blocked = 0;
    for key in graph.steps() {
        if shared.settings.teardown_only && key.kind != StepKind::Teardown {
            continue;
        }
        match state.phase(key) {
            Phase::Failed { .. } => failed.push(key.clone()),
            Phase::Blocked { .. } => blocked += 1,
            _ => {}
        }
    }
    Ok(if failed.is_empty() && blocked == 0 {
        Outcome::Succeeded
    } else {
        Outcome::Failed { failed, blocked }
    })
}
