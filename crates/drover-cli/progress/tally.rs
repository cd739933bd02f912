//! What the run display shows, computed from the step graph, the expected step durations and
//! the run's state: tables done per target, steps in flight by class of work, the time left
//! and the critical path's current step. Pure: the state's journal times are "now", so a
//! simulated run is measured in simulated time and the same events give the same figures.

use std::collections::{BTreeMap, HashMap};

use drover_engine::graph::{StepGraph, Wait};
use drover_engine::ports::Millis;
use drover_engine::state::{Limits, Phase, RunState, StepKey};
use drover_plan::{Mode, Plan, StepKind};

/// The steps of the run and what to expect of them.
pub(crate) struct Tally {
    graph: StepGraph,
    /// Expected duration (ms) of each step of `graph`, by position.
    expected: Vec<u64>,
    /// Whether `expected` comes from the estimator (else only kind weights: no time left).
    estimated: bool,
    /// The step whose success counts a table as done in a target.
    milestone: StepKind,
    /// Target regions, in plan order.
    targets: Vec<String>,
    source_region: String,
    limits: Limits,
    /// Only teardown steps run (`drover teardown`).
    teardown_only: bool,
    /// The counts as of the last transition, kept up to date one transition at a time
    /// ([`Tally::counts_after`]): the display asks after every transition, and a pass over
    /// every step each time costs a 10,000-table run minutes.
    cache: std::sync::Mutex<Option<CountCache>>,
}

/// Where each (table, target) stands, and the counts per target they add up to.
struct CountCache {
    rows: HashMap<(String, String), Row>,
    counts: BTreeMap<String, TargetCount>,
}

/// Where a table stands in a target, for [`TargetCount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    Done,
    Failed,
    Blocked,
    Other,
}

impl TargetCount {
    fn add(&mut self, row: Row, by: i64) {
        let field = match row {
            Row::Done => &mut self.done,
            Row::Failed => &mut self.failed,
            Row::Blocked => &mut self.blocked,
            Row::Other => return,
        };
        *field = field.saturating_add_signed(by);
    }
}

/// Tables of one target: done (validated; copied in a backup run) out of all, and of the others
/// how many failed (a step of theirs failed) or are blocked (by another table's failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TargetCount {
    pub(crate) done: u64,
    pub(crate) total: u64,
    pub(crate) failed: u64,
    pub(crate) blocked: u64,
}

/// Steps in flight (started, not finished), by the class of work whose limit they count
/// against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct InFlight {
    pub(crate) backups: usize,
    pub(crate) copies: usize,
    pub(crate) restores: usize,
    pub(crate) table_ops: usize,
}

/// What is left, as of the state's last journal time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forecast {
    /// Time left for the whole run (ms); `None` without expected durations.
    pub(crate) left_ms: Option<u64>,
    /// Time left until each target's last table is done (ms), by target.
    pub(crate) target_left_ms: BTreeMap<String, Option<u64>>,
    /// The step the longest remaining chain goes through now, and whether it is running
    /// (else it waits: for a limit, or for the step before it to be scheduled).
    pub(crate) critical: Option<(StepKey, bool)>,
}

/// Rough durations of steps without an estimate: orders the critical path only.
fn fallback_ms(kind: StepKind) -> u64 {
    60_000
        * match kind {
            StepKind::RecoveryPoint => 3,
            StepKind::Copy => 6,
            StepKind::Restore => 10,
            StepKind::Configure | StepKind::Validate | StepKind::Teardown | StepKind::Hooks => 1,
        }
}

fn in_flight_phase(phase: &Phase) -> bool {
    matches!(phase, Phase::Running | Phase::Requested { .. } | Phase::Attached { .. })
}

/// The class of work a step counts against (the engine's `scope_of`): 0 backups, 1 copies,
/// 2 restores, 3 table operations.
fn class(key: &StepKey) -> usize {
    match key.kind {
        StepKind::RecoveryPoint if key.target.is_none() => 0,
        StepKind::Copy => 1,
        StepKind::Restore => 2,
        _ => 3,
    }
}

impl Tally {
    /// The tally of a `state.header.mode` run of `plan`, as the engine builds its graph
    /// (a drill tears down unless kept, or when a teardown was asked for).
    pub(crate) fn new(
        plan: &Plan,
        state: &RunState,
        expected: Option<&BTreeMap<StepKey, u64>>,
        teardown_only: bool,
    ) -> Tally {
        let mode = state.header.mode;
        let teardown =
            mode == Mode::Drill && (!state.header.options.keep || state.teardown_requested);
        let graph =
            StepGraph::shaped(plan, drover_engine::graph::Shape::of(&state.header, teardown));
        let expected_ms = graph
            .steps()
            .iter()
            .map(|k| {
                expected.and_then(|e| e.get(k).copied()).unwrap_or_else(|| fallback_ms(k.kind))
            })
            .collect();
        Tally {
            graph,
            expected: expected_ms,
            estimated: expected.is_some(),
            milestone: if mode == Mode::Backup { StepKind::Copy } else { StepKind::Validate },
            targets: plan.targets.iter().map(|t| t.region.to_string()).collect(),
            source_region: plan.source.region.to_string(),
            limits: state.header.options.limits,
            teardown_only,
            cache: std::sync::Mutex::new(None),
        }
    }

    /// Where `table` stands in `target`: done (its milestone succeeded, whatever came after),
    /// failed (a step of it there, or its source recovery point, failed), blocked, or neither.
    fn row(&self, state: &RunState, table: &str, target: &str) -> Row {
        let key = |target: Option<&str>, kind| StepKey {
            table: table.to_owned(),
            target: target.map(str::to_owned),
            kind,
        };
        if matches!(state.phase(&key(Some(target), self.milestone)), Phase::Succeeded { .. }) {
            return Row::Done;
        }
        let kinds = [
            StepKind::RecoveryPoint,
            StepKind::Copy,
            StepKind::Restore,
            StepKind::Configure,
            StepKind::Validate,
            StepKind::Teardown,
        ];
        let phases: Vec<&Phase> = kinds
            .iter()
            .map(|k| state.phase(&key(Some(target), *k)))
            .chain([state.phase(&key(None, StepKind::RecoveryPoint))])
            .collect();
        if phases.iter().any(|p| matches!(p, Phase::Failed { .. })) {
            Row::Failed
        } else if phases.iter().any(|p| matches!(p, Phase::Blocked { .. })) {
            Row::Blocked
        } else {
            Row::Other
        }
    }

    /// [`Tally::counts`] after the transition of `key` (`state` has it), from the counts
    /// before it: only the rows the step belongs to are looked at again (the first call
    /// counts them all).
    pub(crate) fn counts_after(
        &self,
        state: &RunState,
        key: &StepKey,
    ) -> BTreeMap<String, TargetCount> {
        let mut guard = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cache = guard.get_or_insert_with(|| {
            let mut rows = HashMap::new();
            let mut counts: BTreeMap<String, TargetCount> =
                self.targets.iter().map(|t| (t.clone(), TargetCount::default())).collect();
            for k in self.graph.steps() {
                let Some(target) = k.target.as_deref() else { continue };
                if k.kind != self.milestone {
                    continue;
                }
                let row = self.row(state, &k.table, target);
                let c = counts.entry(target.to_owned()).or_default();
                c.total += 1;
                c.add(row, 1);
                rows.insert((k.table.clone(), target.to_owned()), row);
            }
            CountCache { rows, counts }
        });
        let targets: Vec<&str> = match key.target.as_deref() {
            Some(t) => vec![t],
            None => self.targets.iter().map(String::as_str).collect(),
        };
        for target in targets {
            let row_key = (key.table.clone(), target.to_owned());
            let Some(&before) = cache.rows.get(&row_key) else { continue };
            let after = self.row(state, &key.table, target);
            if after != before {
                let c = cache.counts.entry(target.to_owned()).or_default();
                c.add(before, -1);
                c.add(after, 1);
                cache.rows.insert(row_key, after);
            }
        }
        cache.counts.clone()
    }

    /// Target regions, in plan order.
    pub(crate) fn targets(&self) -> &[String] {
        &self.targets
    }

    /// What counts a table as done: "validated", or "copied" in a backup run.
    pub(crate) fn done_word(&self) -> &'static str {
        if self.milestone == StepKind::Copy { "copied" } else { "validated" }
    }

    /// The tables of each target: done, failed, blocked, of all (one pass over the state: the
    /// engine calls observers with its journal lock held).
    pub(crate) fn counts(&self, state: &RunState) -> BTreeMap<String, TargetCount> {
        // (table, region or none for the source) -> (a step failed, a step is blocked).
        let mut flags: HashMap<(&str, Option<&str>), (bool, bool)> = HashMap::new();
        for (k, s) in &state.steps {
            let failed = matches!(s.phase, Phase::Failed { .. });
            let blocked = matches!(s.phase, Phase::Blocked { .. });
            if failed || blocked {
                let f = flags.entry((k.table.as_str(), k.target.as_deref())).or_default();
                f.0 |= failed;
                f.1 |= blocked;
            }
        }
        let mut counts: BTreeMap<String, TargetCount> =
            self.targets.iter().map(|t| (t.clone(), TargetCount::default())).collect();
        for key in self.graph.steps() {
            let Some(target) = key.target.as_deref() else { continue };
            if key.kind != self.milestone {
                continue;
            }
            let c = counts.entry(target.to_owned()).or_default();
            c.total += 1;
            if matches!(state.phase(key), Phase::Succeeded { .. }) {
                // Done, whatever comes after (a failed teardown is a failure line of its own).
                c.done += 1;
                continue;
            }
            // Its steps in the target, and its recovery point in the source region.
            let here = flags.get(&(key.table.as_str(), Some(target))).copied().unwrap_or_default();
            let source = flags.get(&(key.table.as_str(), None)).copied().unwrap_or_default();
            if here.0 || source.0 {
                c.failed += 1;
            } else if here.1 || source.1 {
                c.blocked += 1;
            }
        }
        counts
    }

    /// Steps in flight, by class of work.
    pub(crate) fn in_flight(&self, state: &RunState) -> InFlight {
        let mut f = InFlight::default();
        for (key, step) in &state.steps {
            if in_flight_phase(&step.phase) {
                match class(key) {
                    0 => f.backups += 1,
                    1 => f.copies += 1,
                    2 => f.restores += 1,
                    _ => f.table_ops += 1,
                }
            }
        }
        f
    }

    /// Time left and the critical path, as of `state.last_at`.
    ///
    /// Each step still to run ends after the latest of what it waits for, plus its expected
    /// duration (less the time it has run, when it is running): the longest remaining chain,
    /// which ignores limits. Limits add a second bound: the work left in a (region, class of
    /// work) divided by its limit. The time left is the larger of the two. Steps that cannot
    /// run any more (failed, blocked, or waiting for a failed step) count for nothing.
    pub(crate) fn forecast(&self, state: &RunState) -> Forecast {
        let now = state.last_at;
        let n = self.graph.len();
        let mut finish = vec![0u64; n];
        let mut pred: Vec<Option<usize>> = vec![None; n];
        // Won't run (again): finished, or doomed by a failure.
        let mut over = vec![false; n];
        let mut dead = vec![false; n];
        let mut running = vec![false; n];
        let mut work: BTreeMap<(String, usize), u64> = BTreeMap::new();
        let mut barriers: HashMap<usize, Option<usize>> = HashMap::new();
        for i in 0..n {
            let key = &self.graph.steps()[i];
            let phase = state.phase(key);
            if phase.is_terminal() {
                over[i] = true;
                dead[i] = !matches!(phase, Phase::Succeeded { .. });
                continue;
            }
            let waits = self.graph.waits(i);
            let doomed = waits.iter().any(|&(j, w)| w == Wait::Success && dead[j]);
            if doomed || (self.teardown_only && key.kind != StepKind::Teardown) {
                over[i] = true;
                dead[i] = doomed;
                continue;
            }
            let own = self.expected[i];
            let left = if in_flight_phase(phase) {
                running[i] = true;
                let began = state.steps.get(key).and_then(|s| s.began_at).unwrap_or(now);
                own.saturating_sub(elapsed(began, now))
            } else {
                let mut start = 0;
                let latest = |j: usize, start: &mut u64, pred: &mut Option<usize>| {
                    if !over[j] && (pred.is_none() || finish[j] > *start) {
                        *start = finish[j];
                        *pred = Some(j);
                    }
                };
                for &(j, _) in waits {
                    latest(j, &mut start, &mut pred[i]);
                }
                // A teardown waits for every validation of its target (a barrier): the latest
                // of them, found once per barrier.
                if let Some(b) = self.graph.barrier_waited(i) {
                    let by = *barriers.entry(b).or_insert_with(|| {
                        let (mut at, mut by) = (0, None);
                        for &m in &self.graph.barriers()[b].members {
                            latest(m, &mut at, &mut by);
                        }
                        by
                    });
                    if let Some(by) = by {
                        latest(by, &mut start, &mut pred[i]);
                    }
                }
                finish[i] = start;
                own
            };
            finish[i] += left;
            let region = key.target.clone().unwrap_or_else(|| self.source_region.clone());
            *work.entry((region, class(key))).or_default() += left;
        }
        let bound = |region: Option<&str>| {
            work.iter()
                .filter(|((r, c), _)| {
                    region.is_none_or(|t| r == t || (*c == 0 && *r == self.source_region))
                })
                .map(|((_, c), ms)| ms.div_ceil(self.limit(*c)))
                .max()
                .unwrap_or(0)
        };
        let live = |i: &usize| !over[*i];
        let end = (0..n).filter(live).max_by_key(|&i| (finish[i], std::cmp::Reverse(i)));
        let critical = end.map(|mut i| {
            while let Some(p) = pred[i] {
                i = p;
            }
            (self.graph.steps()[i].clone(), running[i])
        });
        let left_ms = self.estimated.then(|| end.map_or(0, |i| finish[i]).max(bound(None)));
        let target_left_ms = self
            .targets
            .iter()
            .map(|t| {
                let chain = (0..n)
                    .filter(live)
                    .filter(|&i| {
                        let k = &self.graph.steps()[i];
                        k.kind == self.milestone && k.target.as_deref() == Some(t)
                    })
                    .map(|i| finish[i])
                    .max();
                // A target with no table left to do is done, whatever its region's other work.
                let left = chain.map(|c| c.max(bound(Some(t))));
                (t.clone(), self.estimated.then_some(left.unwrap_or(0)))
            })
            .collect();
        Forecast { left_ms, target_left_ms, critical }
    }

    fn limit(&self, class: usize) -> u64 {
        let l = match class {
            0 => self.limits.backups,
            1 => self.limits.copies,
            2 => self.limits.restores,
            _ => self.limits.table_ops,
        };
        u64::try_from(l.max(1)).unwrap_or(u64::MAX)
    }
}

/// Milliseconds from `from` to `to` (zero when `to` is earlier).
pub(crate) fn elapsed(from: Millis, to: Millis) -> u64 {
    u64::try_from(to.saturating_sub(from)).unwrap_or(0)
}

/// A duration for people: `45s`, `12m04s`, `3h07m`.
pub(crate) fn human(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_engine::journal::{Entry, Record};
    use drover_engine::state::{Header, RunOptions, StepEvent, StepOutput};

    const PLAN: &str = "\
version: 1
name: chain
source: {region: us-east-1, account_id: \"123456789012\", backup_vault: vault}
iam_role_arn: arn:aws:iam::123456789012:role/r
targets:
  - {region: us-west-2, backup_vault: dr-vault, kms_key_arn: \"arn:aws:kms:us-west-2:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee\"}
tables:
  - name: users
  - name: posts
    depends_on: [users]
drill: {table_name: \"{table}-drill-{run}\"}
";

    fn plan() -> Plan {
        drover_plan::load("chain.yaml", PLAN.as_bytes()).plan.unwrap()
    }

    fn state(limits: Limits) -> RunState {
        let header = Header {
            run_id: "chain-20261124t000000z-aaaa0001".into(),
            mode: Mode::Drill,
            plan_name: "chain".into(),
            plan_hash: String::new(),
            plan_path: "chain.yaml".into(),
            plan_text: PLAN.into(),
            drover_version: "0".into(),
            options: RunOptions {
                keep: false,
                limits,
                cloud: serde_json::json!({"kind": "sim"}),
                cut_at: None,
                backup_settle_ms: None,
                poll_interval_ms: None,
                source_read_units: None,
                notify: Default::default(),
                publish_metrics: false,
                pitr: None,
            },
        };
        RunState::new(header, 0)
    }

    fn key(table: &str, target: Option<&str>, kind: StepKind) -> StepKey {
        StepKey { table: table.into(), target: target.map(str::to_owned), kind }
    }

    fn apply(state: &mut RunState, at: Millis, key: &StepKey, event: StepEvent) {
        let entry =
            Entry { seq: state.records + 1, at, record: Record::Step { step: key.clone(), event } };
        state.apply(&entry).unwrap();
    }

    /// Every step takes a minute, except restores (10 minutes).
    fn expected(plan: &Plan) -> BTreeMap<StepKey, u64> {
        StepGraph::new(plan, Mode::Drill, true)
            .steps()
            .iter()
            .map(|k| (k.clone(), if k.kind == StepKind::Restore { 600_000 } else { 60_000 }))
            .collect()
    }

    const MIN: u64 = 60_000;
    const W: Option<&str> = Some("us-west-2");

    #[test]
    fn the_time_left_is_the_longest_remaining_chain_and_follows_the_journal_clock() {
        let plan = plan();
        let exp = expected(&plan);
        let unlimited = Limits { backups: 50, copies: 50, restores: 50, table_ops: 50 };
        let mut st = state(unlimited);
        let tally = Tally::new(&plan, &st, Some(&exp), false);
        // posts: point, copy, then restore after users' validation: users' chain (1+1+10+1+1) then posts'
        // restore, configure, validate (10+1+1), then teardown (1).
        let f = tally.forecast(&st);
        assert_eq!(f.left_ms, Some(27 * MIN));
        assert_eq!(f.target_left_ms["us-west-2"], Some(26 * MIN));
        assert_eq!(f.critical, Some((key("users", None, StepKind::RecoveryPoint), false)));
        // Half a minute into users' recovery point: half a minute less.
        let rp = key("users", None, StepKind::RecoveryPoint);
        apply(&mut st, 0, &rp, StepEvent::Began);
        apply(&mut st, 30_000, &rp, StepEvent::JobRequested { token: "t".into() });
        let f = tally.forecast(&st);
        assert_eq!(f.left_ms, Some(27 * MIN - 30_000));
        assert_eq!(f.critical, Some((rp.clone(), true)));
        // Overdue: the step counts as ending now.
        apply(&mut st, 5 * MIN as Millis, &rp, StepEvent::JobStarted { job_id: "j".into() });
        assert_eq!(tally.forecast(&st).left_ms, Some(26 * MIN));
    }

    #[test]
    fn limits_bound_the_time_left_and_failures_drop_what_they_block() {
        let plan = plan();
        let exp = expected(&plan);
        let one = Limits { backups: 50, copies: 50, restores: 1, table_ops: 50 };
        let mut st = state(one);
        let tally = Tally::new(&plan, &st, Some(&exp), false);
        // Restores one at a time: 20 minutes of restores, under the 27-minute chain anyway.
        assert_eq!(tally.forecast(&st).left_ms, Some(27 * MIN));
        // Without the dependency, the chain is 15 minutes, but the two restores take 20.
        let apart = PLAN.replace("    depends_on: [users]\n", "");
        let apart = drover_plan::load("apart.yaml", apart.as_bytes()).plan.unwrap();
        let f = Tally::new(&apart, &st, Some(&exp), false).forecast(&st);
        assert_eq!(f.left_ms, Some(20 * MIN));
        assert_eq!(f.target_left_ms["us-west-2"], Some(20 * MIN));
        // users' copy fails: users is failed, posts blocked (its restore waits for users'
        // validation); only posts' point and copy and the teardowns are left.
        let copy = key("users", W, StepKind::Copy);
        for (at, e) in
            [(0, StepEvent::Began), (1, StepEvent::Failed { kind: None, message: "no".into() })]
        {
            apply(&mut st, at, &copy, e);
        }
        let f = tally.forecast(&st);
        assert_eq!(f.left_ms, Some(2 * MIN));
        assert_eq!(f.target_left_ms["us-west-2"], Some(0), "no table can be validated any more");
        let c = tally.counts(&st)["us-west-2"];
        assert_eq!(c, TargetCount { done: 0, total: 2, failed: 1, blocked: 0 });
        let blocked = key("posts", W, StepKind::Restore);
        apply(&mut st, 2, &blocked, StepEvent::Blocked { by: key("users", W, StepKind::Validate) });
        let c = tally.counts(&st)["us-west-2"];
        assert_eq!(c, TargetCount { done: 0, total: 2, failed: 1, blocked: 1 });
    }

    #[test]
    fn counts_kept_one_transition_at_a_time_equal_counts_from_the_whole_state() {
        let plan = plan();
        let mut st = state(Limits::default());
        let tally = Tally::new(&plan, &st, None, false);
        let failed = || StepEvent::Failed { kind: None, message: "no".into() };
        let events = [
            (key("users", None, StepKind::RecoveryPoint), StepEvent::Began),
            (key("users", W, StepKind::Copy), StepEvent::Began),
            (key("users", W, StepKind::Copy), failed()),
            (
                key("posts", W, StepKind::Restore),
                StepEvent::Blocked { by: key("users", W, StepKind::Validate) },
            ),
            (key("users", W, StepKind::Copy), StepEvent::Retried),
            (key("users", W, StepKind::Validate), StepEvent::Began),
            (
                key("users", W, StepKind::Validate),
                StepEvent::Succeeded(StepOutput::Validate { checks: Vec::new(), digest: None }),
            ),
            (key("posts", None, StepKind::RecoveryPoint), StepEvent::Began),
            (key("posts", None, StepKind::RecoveryPoint), failed()),
        ];
        for (at, (k, e)) in events.into_iter().enumerate() {
            apply(&mut st, i64::try_from(at).unwrap(), &k, e);
            assert_eq!(tally.counts_after(&st, &k), tally.counts(&st), "after {k}");
        }
        assert_eq!(tally.counts(&st)["us-west-2"].done, 1);
    }

    #[test]
    fn counts_and_flight_follow_the_state_and_no_estimate_means_no_time() {
        let plan = plan();
        let mut st = state(Limits::default());
        let tally = Tally::new(&plan, &st, None, false);
        assert_eq!(tally.forecast(&st).left_ms, None);
        assert_eq!(tally.forecast(&st).target_left_ms["us-west-2"], None);
        let validate = key("users", W, StepKind::Validate);
        apply(&mut st, 0, &validate, StepEvent::Began);
        let f = tally.in_flight(&st);
        assert_eq!(f, InFlight { table_ops: 1, ..InFlight::default() });
        let output = StepOutput::Validate { checks: Vec::new(), digest: None };
        apply(&mut st, 1, &validate, StepEvent::Succeeded(output));
        assert_eq!(tally.counts(&st)["us-west-2"].done, 1);
        assert_eq!(tally.in_flight(&st), InFlight::default());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(1), "1s");
        assert_eq!(human(45_000), "45s");
        assert_eq!(human(724_000), "12m04s");
        assert_eq!(human(3_600_000), "1h00m");
        assert_eq!(human(11_220_000), "3h07m");
        assert_eq!(elapsed(10, 5), 0);
    }
}
