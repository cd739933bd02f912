//! The step graph of a run: every (table, target, kind) step and what it waits for.
//!
//! Scheduling follows this DAG, not waves: a copy starts as soon as its recovery point
//! exists; a restore starts when its copy is done and every `depends_on` table is validated
//! in that target.
//!
//! A drill's teardown in a target waits for every validation there to finish. That is a
//! [`Barrier`] (one per target), not an edge from each validation to each teardown: n² edges
//! cost 100 million entries and gigabytes for 10,000 tables, and the scheduler looked at every
//! teardown again each time a validation ended.

use std::collections::HashMap;

use drover_plan::{Mode, Plan, StepKind, TableId};

use crate::state::{Header, StepKey};

/// The table of a target's `after_target` hooks step: all of them.
pub const ALL_TABLES: &str = "*";

/// What a run does, as far as its steps go: its mode, whether a drill tears down, and where
/// its data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The run's mode.
    pub mode: Mode,
    /// A drill's teardown steps.
    pub teardown: bool,
    /// Restores from point-in-time recovery (`recover`, `drill --pitr`): no recovery point and
    /// no copy.
    pub pitr: bool,
    /// A point-in-time run into the source region (`--into-source`) instead of the targets.
    pub into_source: bool,
}

impl Shape {
    /// A run of `mode` (point-in-time for `recover`, into the targets).
    #[must_use]
    pub fn new(mode: Mode, teardown: bool) -> Shape {
        Shape { mode, teardown, pitr: mode == Mode::Recover, into_source: false }
    }

    /// A point-in-time run of `mode` (`recover`, `drill --pitr`), into the targets or the
    /// source region; without teardown.
    #[must_use]
    pub fn pitr(mode: Mode, into_source: bool) -> Shape {
        Shape { mode, teardown: false, pitr: true, into_source }
    }

    /// The shape of the run `header` starts; `teardown` as the engine decides it.
    #[must_use]
    pub fn of(header: &Header, teardown: bool) -> Shape {
        let pitr = header.options.pitr.as_ref();
        Shape {
            mode: header.mode,
            teardown: teardown && header.mode == Mode::Drill,
            pitr: pitr.is_some() || header.mode == Mode::Recover,
            into_source: pitr.is_some_and(|p| p.into_source),
        }
    }

    /// The steps each (table, target) goes through, in order.
    #[must_use]
    pub fn steps(self) -> &'static [StepKind] {
        if self.pitr { self.mode.pitr_steps() } else { self.mode.steps() }
    }

    /// The regions tables are restored into, each with its tables (plan order): the plan's
    /// targets, or the source region for a point-in-time run `--into-source`.
    #[must_use]
    pub fn places(self, plan: &Plan) -> Vec<(String, Vec<TableId>)> {
        let ids = |region: Option<&drover_plan::Region>| -> Vec<TableId> {
            plan.tables
                .iter()
                .enumerate()
                .filter(|(_, t)| region.is_none_or(|r| t.targets.contains(r)))
                .map(|(i, _)| TableId(i))
                .collect()
        };
        if self.pitr && self.into_source {
            return vec![(plan.source.region.to_string(), ids(None))];
        }
        plan.targets.iter().map(|t| (t.region.to_string(), ids(Some(&t.region)))).collect()
    }
}

/// How a step waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The other step must succeed; if it fails, this one is blocked.
    Success,
    /// The other step must be finished, whatever its outcome (teardown waits this way).
    Finished,
}

/// A set of steps that other steps wait for as a whole: the waiters may start once every
/// member has finished, whatever its outcome ([`Wait::Finished`] on each member).
#[derive(Debug, Clone, Default)]
pub struct Barrier {
    /// The steps it waits for.
    pub members: Vec<usize>,
    /// The steps that wait for it.
    pub waiters: Vec<usize>,
}

/// Every step of a run with its prerequisites, in a deterministic order.
#[derive(Debug, Clone)]
pub struct StepGraph {
    steps: Vec<StepKey>,
    index: HashMap<StepKey, usize>,
    waits: Vec<Vec<(usize, Wait)>>,
    /// The steps that wait for each step.
    dependents: Vec<Vec<usize>>,
    /// Barriers: a drill's teardown steps of a target wait for its validations through one.
    barriers: Vec<Barrier>,
    /// The barrier each step is a member of, and the one it waits for.
    member_of: Vec<Option<usize>>,
    waits_for: Vec<Option<usize>>,
    /// Longest chain of expected work from each step to the end of the run.
    priority: Vec<u64>,
}

/// Rough relative durations, for ordering ready steps (critical path first).
fn weight(kind: StepKind) -> u64 {
    match kind {
        StepKind::RecoveryPoint => 3,
        StepKind::Copy => 6,
        StepKind::Restore => 10,
        StepKind::Configure | StepKind::Validate | StepKind::Teardown | StepKind::Hooks => 1,
    }
}

impl StepGraph {
    /// The steps of a `mode` run of `plan` from recovery points (point-in-time for
    /// `recover`); `teardown` adds a drill's teardown steps.
    #[must_use]
    pub fn new(plan: &Plan, mode: Mode, teardown: bool) -> StepGraph {
        StepGraph::with_weights(plan, Shape::new(mode, teardown), &|_| None)
    }

    /// The steps of a run of this shape.
    #[must_use]
    pub fn shaped(plan: &Plan, shape: Shape) -> StepGraph {
        StepGraph::with_weights(plan, shape, &|_| None)
    }

    /// As [`StepGraph::new`], with expected durations (ms) of steps for priorities; steps
    /// without one weigh by their kind.
    #[must_use]
    pub fn with_weights(
        plan: &Plan,
        shape: Shape,
        expected: &dyn Fn(&StepKey) -> Option<u64>,
    ) -> StepGraph {
        let Shape { mode, teardown, pitr, .. } = shape;
        let mut g = StepGraph {
            steps: Vec::new(),
            index: HashMap::new(),
            waits: Vec::new(),
            dependents: Vec::new(),
            barriers: Vec::new(),
            member_of: Vec::new(),
            waits_for: Vec::new(),
            priority: Vec::new(),
        };
        let key = |t: &str, r: Option<&str>, kind| StepKey {
            table: t.to_owned(),
            target: r.map(str::to_owned),
            kind,
        };
        if mode != Mode::Failover && !pitr {
            for t in &plan.tables {
                g.add(key(&t.name, None, StepKind::RecoveryPoint), Vec::new());
            }
        }
        // Tables in dependency order, so that every step comes after what it waits for.
        let order = plan.graph.topological_order();
        for (region, here) in shape.places(plan) {
            let r = Some(region.as_str());
            let mut member = vec![false; plan.tables.len()];
            for id in here {
                member[id.0] = true;
            }
            let ids: Vec<TableId> = order.iter().copied().filter(|id| member[id.0]).collect();
            for &id in &ids {
                let t = plan.table(id);
                if mode == Mode::Backup {
                    g.add(
                        key(&t.name, r, StepKind::Copy),
                        vec![(key(&t.name, None, StepKind::RecoveryPoint), Wait::Success)],
                    );
                    continue;
                }
                let source_step = match mode {
                    _ if pitr => None,
                    Mode::Drill | Mode::Backup => {
                        g.add(
                            key(&t.name, r, StepKind::Copy),
                            vec![(key(&t.name, None, StepKind::RecoveryPoint), Wait::Success)],
                        );
                        Some(key(&t.name, r, StepKind::Copy))
                    }
                    Mode::Failover | Mode::Recover => {
                        g.add(key(&t.name, r, StepKind::RecoveryPoint), Vec::new());
                        Some(key(&t.name, r, StepKind::RecoveryPoint))
                    }
                };
                let mut restore_waits: Vec<(StepKey, Wait)> =
                    source_step.into_iter().map(|s| (s, Wait::Success)).collect();
                for dep in &t.depends_on {
                    restore_waits
                        .push((key(&plan.table(*dep).name, r, StepKind::Validate), Wait::Success));
                }
                g.add(key(&t.name, r, StepKind::Restore), restore_waits);
                g.add(
                    key(&t.name, r, StepKind::Configure),
                    vec![(key(&t.name, r, StepKind::Restore), Wait::Success)],
                );
                g.add(
                    key(&t.name, r, StepKind::Validate),
                    vec![(key(&t.name, r, StepKind::Configure), Wait::Success)],
                );
            }
            // The plan's after_target hooks, once every table here is validated.
            let hooks = (mode != Mode::Backup && !plan.hooks.after_target.is_empty()).then(|| {
                let waits = ids
                    .iter()
                    .map(|id| (key(&plan.table(*id).name, r, StepKind::Validate), Wait::Success))
                    .collect();
                g.add(key(ALL_TABLES, r, StepKind::Hooks), waits)
            });
            if mode == Mode::Drill && teardown {
                let b = g.barriers.len();
                let mut barrier = Barrier::default();
                for id in &ids {
                    if let Some(&v) =
                        g.index.get(&key(&plan.table(*id).name, r, StepKind::Validate))
                    {
                        g.member_of[v] = Some(b);
                        barrier.members.push(v);
                    }
                }
                // Teardown also waits for the hooks that read the tables.
                if let Some(h) = hooks {
                    g.member_of[h] = Some(b);
                    barrier.members.push(h);
                }
                for &id in &ids {
                    let t = plan.table(id);
                    let i = g.add(key(&t.name, r, StepKind::Teardown), Vec::new());
                    g.waits_for[i] = Some(b);
                    barrier.waiters.push(i);
                }
                g.barriers.push(barrier);
            }
        }
        g.compute_priorities(expected);
        g
    }

    fn add(&mut self, key: StepKey, waits: Vec<(StepKey, Wait)>) -> usize {
        let i = self.steps.len();
        // Callers add steps after what they wait for (tables in dependency order).
        let waits =
            waits.into_iter().filter_map(|(k, w)| self.index.get(&k).map(|&j| (j, w))).collect();
        self.index.insert(key.clone(), i);
        self.steps.push(key);
        self.waits.push(waits);
        self.member_of.push(None);
        self.waits_for.push(None);
        i
    }

    fn compute_priorities(&mut self, expected: &dyn Fn(&StepKey) -> Option<u64>) {
        let n = self.steps.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, waits) in self.waits.iter().enumerate() {
            for (j, _) in waits {
                dependents[*j].push(i);
            }
        }
        // Steps are added after their prerequisites (a barrier's waiters after its members),
        // so reverse order is a valid order here.
        let mut priority = vec![0u64; n];
        let mut barrier_priority = vec![0u64; self.barriers.len()];
        for i in (0..n).rev() {
            let after = dependents[i].iter().map(|d| priority[*d]).max().unwrap_or(0);
            let after = self.member_of[i].map_or(after, |b| after.max(barrier_priority[b]));
            let own =
                expected(&self.steps[i]).unwrap_or_else(|| weight(self.steps[i].kind) * 60_000);
            priority[i] = after + own;
            if let Some(b) = self.waits_for[i] {
                barrier_priority[b] = barrier_priority[b].max(priority[i]);
            }
        }
        self.priority = priority;
        self.dependents = dependents;
    }

    /// The steps that wait for step `i`.
    #[must_use]
    pub fn dependents(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }

    /// All steps, prerequisites first.
    #[must_use]
    pub fn steps(&self) -> &[StepKey] {
        &self.steps
    }

    /// The position of a step.
    #[must_use]
    pub fn position(&self, key: &StepKey) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// What step `i` waits for, step by step (and see [`StepGraph::barrier_waited`]).
    #[must_use]
    pub fn waits(&self, i: usize) -> &[(usize, Wait)] {
        &self.waits[i]
    }

    /// The barrier step `i` waits for (a drill's teardown: every validation in its target),
    /// if any.
    #[must_use]
    pub fn barrier_waited(&self, i: usize) -> Option<usize> {
        self.waits_for[i]
    }

    /// The barrier step `i` is a member of, if any.
    #[must_use]
    pub fn barrier_of(&self, i: usize) -> Option<usize> {
        self.member_of[i]
    }

    /// The barriers.
    #[must_use]
    pub fn barriers(&self) -> &[Barrier] {
        &self.barriers
    }

    /// Scheduling priority of step `i` (larger first): the expected work left after it.
    #[must_use]
    pub fn priority(&self, i: usize) -> u64 {
        self.priority[i]
    }

    /// Number of steps.
    #[must_use]
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether there is no step.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
