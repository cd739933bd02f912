//! `drover drill`, `failover`, `resume` and `teardown`: start or continue a run and report
//! how it ended.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use drover_engine::graph::Shape;
use drover_engine::journal::{JournalError, Record};
use drover_engine::state::{
    DEFAULT_PITR_TEMPLATE, Header, Limits, Pitr, PitrNames, PitrTime, RunEvent, RunOptions,
    RunState,
};
use drover_engine::store::lease::Taking;
use drover_engine::store::{Location, Store};
use drover_engine::{Clock, Execution, Outcome, Settings, SystemClock, execute, run};
use drover_plan::{Mode, Plan};
use tokio_util::sync::CancellationToken;

use crate::args::{
    AwsArgs, CloudArg, DrillArgs, FailoverArgs, InstantArgs, LogFormat, RecoverArgs, ResumeArgs,
    RunArgs, SimSpeed, StateArgs, TeardownArgs,
};
use crate::cloud::Cloud;
use crate::exit::{CliError, Exit};
use crate::output;
use crate::pace::{self, Pacing};
use crate::progress::Progress;
use crate::state_store;
use crate::status;
use crate::support::{load_plan, runtime_for};

/// The wait before a drill's backups: as asked (and journaled), else the documented minute.
fn backup_settle(ms: Option<u64>) -> std::time::Duration {
    ms.map_or(drover_engine::policy::BACKUP_SETTLE, std::time::Duration::from_millis)
}

/// Polling, with the first and shortest wait as asked (and journaled).
fn poll(interval_ms: Option<u64>) -> drover_engine::PollPolicy {
    let default = drover_engine::PollPolicy::default();
    match interval_ms {
        Some(ms) => {
            drover_engine::PollPolicy { initial: std::time::Duration::from_millis(ms), ..default }
        }
        None => default,
    }
}

fn limits(args: &RunArgs) -> Limits {
    let l = &args.limits;
    Limits {
        backups: usize::from(l.max_backups),
        copies: usize::from(l.max_copies),
        restores: usize::from(l.max_restores),
        table_ops: usize::from(l.max_table_ops),
    }
}

pub(crate) fn drill(args: &DrillArgs, log: LogFormat) -> Result<Exit, CliError> {
    if !args.pitr && (args.instant.given() || args.into_source) {
        output::error(
            "--to, --before-minutes, --latest and --into-source rehearse a point-in-time recovery: add --pitr",
        );
        return Ok(Exit::Usage);
    }
    let pitr = args.pitr.then(|| Ask {
        instant: args.instant.clone(),
        into_source: args.into_source,
        // A drill's tables carry the plan's drill names.
        names: PitrNames::Template(DEFAULT_PITR_TEMPLATE.to_owned()),
    });
    start(&args.run, Mode::Drill, Started { keep: args.keep, cut_at: None, pitr }, log)
}

/// `drover recover`: asks before restoring under the plan's own names.
pub(crate) fn recover(args: &RecoverArgs, log: LogFormat) -> Result<Exit, CliError> {
    if !args.instant.given() {
        output::error(
            "name the instant to recover to: --to TIME (UTC, just before the damage), --before-minutes N or --latest",
        );
        return Ok(Exit::Usage);
    }
    if args.names_from_plan
        && !args.yes
        && let Some(exit) = confirm(&args.run.plan, "--names-from-plan", "recovery", &|plan| {
            format!(
                "This recovers plan `{}` ({} tables) under the tables' own names.",
                plan.name,
                plan.tables.len()
            )
        })
    {
        return Ok(exit);
    }
    let names = if args.names_from_plan {
        PitrNames::Plan
    } else {
        PitrNames::Template(
            args.name_template.clone().unwrap_or_else(|| DEFAULT_PITR_TEMPLATE.to_owned()),
        )
    };
    let pitr = Some(Ask { instant: args.instant.clone(), into_source: args.into_source, names });
    start(&args.run, Mode::Recover, Started { keep: false, cut_at: None, pitr }, log)
}

pub(crate) fn backup(args: &RunArgs, log: LogFormat) -> Result<Exit, CliError> {
    start(args, Mode::Backup, Started::default(), log)
}

/// What only some modes of run are started with.
#[derive(Debug, Clone, Default)]
struct Started {
    /// A drill's `--keep`.
    keep: bool,
    /// A failover's `--at`.
    cut_at: Option<i64>,
    /// A point-in-time run's instant, names and place.
    pitr: Option<Ask>,
}

/// A point-in-time recovery as asked for on the command line.
#[derive(Debug, Clone)]
struct Ask {
    instant: InstantArgs,
    into_source: bool,
    names: PitrNames,
}

/// The instant asked for, in whole seconds: `--to`, `--before-minutes` from now, or (by
/// default) the latest instant every table can be restored to (DescribeContinuousBackups).
async fn choose_instant(ask: &Ask, plan: &Plan, cloud: &Cloud, now: i64) -> Result<Pitr, String> {
    let second = |ms: i64| ms.div_euclid(1000) * 1000;
    let (at, requested) = match (ask.instant.to, ask.instant.before_minutes) {
        (Some(to), _) => (second(to), PitrTime::To),
        (None, Some(m)) => {
            (second(now - i64::from(m) * 60_000), PitrTime::BeforeMinutes { minutes: m })
        }
        (None, None) => {
            let windows = drover_engine::preflight::pitr::windows(plan, &cloud.ports).await;
            let at = drover_engine::preflight::pitr::latest_common(&windows)
                .map_err(|e| format!("no instant for --latest: {e}"))?;
            (at, PitrTime::Latest)
        }
    };
    if at > now {
        return Err(format!(
            "{} is in the future: recover to an instant before now",
            run::format_time(at)
        ));
    }
    Ok(Pitr {
        at,
        requested,
        chosen_at: now,
        into_source: ask.into_source,
        names: ask.names.clone(),
    })
}

/// Every name a point-in-time run restores into is a table name, and no two tables of a
/// region share one.
fn check_pitr_names(plan: &Plan, shape: Shape, pitr: &Pitr, short_id: &str) -> Result<(), String> {
    let src = plan.source.region.as_str();
    for (region, ids) in shape.places(plan) {
        let mut seen = std::collections::BTreeMap::new();
        for id in ids {
            let table = &plan.table(id).name;
            let name = run::restored_name(plan, shape.mode, Some(pitr), table, &region, short_id);
            drover_plan::check_table_name(&name).map_err(|e| {
                format!("`{table}` would be restored as {e}: change --name-template")
            })?;
            if region == src && pitr.names != PitrNames::Plan && plan.table_by_name(&name).is_some()
            {
                return Err(format!(
                    "`{table}` would be restored beside the source as `{name}`, a table of the plan: change --name-template"
                ));
            }
            if let Some(other) = seen.insert(name.clone(), table) {
                return Err(format!(
                    "`{other}` and `{table}` would both be restored as `{name}` in {region}: change --name-template"
                ));
            }
        }
    }
    Ok(())
}

/// Asks, on a terminal, for the plan name before a run that restores under production names
/// (`what` needs it: a failover, `--names-from-plan`): `None` when confirmed, else how to exit
/// (usage off a terminal, which must pass --yes; failure when not confirmed).
fn confirm(
    plan_path: &std::path::Path,
    what: &str,
    run: &str,
    says: &dyn Fn(&Plan) -> String,
) -> Option<Exit> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        output::error(&format!(
            "{what} restores the tables under their production names; confirm with --yes"
        ));
        return Some(Exit::Usage);
    }
    let Some((plan, _)) = load_plan(plan_path) else { return Some(Exit::Failure) };
    output::stderr(&format!("{}\nType the plan name to continue:", says(&plan)));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() || answer.trim() != plan.name {
        output::error(&format!("{run} not confirmed; nothing was done"));
        return Some(Exit::Failure);
    }
    None
}

pub(crate) fn failover(args: &FailoverArgs, log: LogFormat) -> Result<Exit, CliError> {
    if !args.yes
        && let Some(exit) = confirm(&args.run.plan, "a failover", "failover", &|plan| {
            let regions: Vec<&str> = plan.targets.iter().map(|t| t.region.as_str()).collect();
            format!(
                "This fails over plan `{}` ({} tables) into {}, restoring the tables under their own names.",
                plan.name,
                plan.tables.len(),
                regions.join(", ")
            )
        })
    {
        return Ok(exit);
    }
    start(&args.run, Mode::Failover, Started { keep: false, cut_at: args.at, pitr: None }, log)
}

fn start(args: &RunArgs, mode: Mode, started: Started, log: LogFormat) -> Result<Exit, CliError> {
    let Some((plan, bytes)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let run_id = match &args.run_id {
        Some(id) => {
            if let Err(e) = run::check_run_id(id) {
                output::error(&e);
                return Ok(Exit::Usage);
            }
            id.clone()
        }
        None => {
            run::new_run_id(&plan.name, SystemClock::new().now(), u64::from(std::process::id()))
        }
    };
    let location = match args.state.location() {
        Ok(location) => location,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Usage);
        }
    };
    if args.cloud == CloudArg::Sim && !matches!(location, Location::Dir(_)) {
        output::error(
            "a `--cloud sim` run is an offline test double: its journal and its simulated world \
             stay in a local state directory; drop --state (or use a directory)",
        );
        return Ok(Exit::Usage);
    }
    let rt = runtime_for(args.cloud)?;
    // A simulated cloud's clock is the runtime's (virtual) one.
    let _entered = rt.enter();
    let mut cloud = match Cloud::new(args.cloud, &args.aws, &args.sim, &plan, mode, &run_id) {
        Ok(cloud) => cloud,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Usage);
        }
    };
    let Started { keep, cut_at, pitr: ask } = started;
    rt.block_on(async {
        let store = match state_store::open(&args.state, &cloud.aws_options(), args.lease.lease_ttl)
            .await
        {
            Ok(store) => store,
            Err(e) => {
                output::error(&e);
                return Ok(Exit::Failure);
            }
        };
        let taking = Taking { ttl: args.lease.lease_ttl, wait: std::time::Duration::ZERO };
        let hold = match state_store::hold(&store, &run_id, taking).await {
            Ok(hold) => hold,
            Err(e) => {
                output::error(&e);
                return Ok(Exit::Failure);
            }
        };
        let short_id = run::short_id(&run_id);
        let pitr = match &ask {
            None => None,
            Some(ask) => {
                if !crate::checks::reachable(&plan, mode, &cloud).await {
                    hold.release().await;
                    return Ok(Exit::Failure);
                }
                let chosen = choose_instant(ask, &plan, &cloud, cloud.ports.clock.now()).await;
                let pitr = match chosen {
                    Ok(pitr) => pitr,
                    Err(e) => {
                        output::error(&e);
                        hold.release().await;
                        return Ok(Exit::Failure);
                    }
                };
                let shape = Shape::pitr(mode, pitr.into_source);
                if let Err(e) = check_pitr_names(&plan, shape, &pitr, &short_id) {
                    output::error(&e);
                    hold.release().await;
                    return Ok(Exit::Usage);
                }
                Some((shape, pitr))
            }
        };
        if !args.skip_preflight {
            let ok = match &pitr {
                Some((shape, pitr)) => {
                    crate::checks::before_pitr_run(&plan, *shape, pitr, &cloud, &store, &short_id)
                        .await
                }
                None => crate::checks::before_run(&plan, mode, &cloud, &store, &short_id).await,
            };
            if !ok {
                hold.release().await;
                return Ok(Exit::Failure);
            }
        } else if mode == Mode::Failover
            && let Err(e) = run::check_failover_names(&plan, cloud.ports.tables.as_ref()).await
        {
            // Even without preflight, a failover never overwrites a table.
            output::error(&e.to_string());
            hold.release().await;
            return Ok(Exit::Failure);
        }
        let header = Header {
            run_id: run_id.clone(),
            mode,
            plan_name: plan.name.clone(),
            plan_hash: run::plan_hash(&bytes),
            plan_path: args.plan.display().to_string(),
            plan_text: String::from_utf8_lossy(&bytes).into_owned(),
            drover_version: env!("CARGO_PKG_VERSION").to_owned(),
            options: RunOptions {
                keep,
                limits: limits(args),
                cloud: serde_json::to_value(&cloud.spec).unwrap_or_default(),
                cut_at,
                backup_settle_ms: args.backup_settle,
                poll_interval_ms: args.poll_interval,
                source_read_units: args.source_read_units,
                notify: args.notify.channels(),
                publish_metrics: args.notify.publish_metrics,
                pitr: pitr.map(|(_, p)| p),
            },
        };
        let (journal, state) = match store.create(header, cloud.ports.clock.now()).await {
            Ok(created) => created,
            Err(e) => {
                output::error(&e.to_string());
                hold.release().await;
                return Ok(Exit::Failure);
            }
        };
        if let Some(dir) = store.dir()
            && let Err(e) = cloud.persist(&run::run_dir(dir, &run_id))
        {
            output::error(&e);
            hold.release().await;
            return Ok(Exit::Failure);
        }
        output::stderr(&format!(
            "{} {run_id} started (state in {})",
            mode.as_str(),
            store.location()
        ));
        if let Some(p) = &state.header.options.pitr {
            output::stderr(&format!(
                "every table is restored to {} (point-in-time recovery)",
                run::format_time(p.at)
            ));
        }
        let estimate_mode = if state.header.options.pitr.is_some() { Mode::Recover } else { mode };
        let expected = expected_durations(&plan, estimate_mode, &cloud, &store).await;
        let settings = Settings {
            limits: limits(args),
            scan_segments: 4,
            expected_ms: expected,
            backup_settle: backup_settle(args.backup_settle),
            poll: poll(args.poll_interval),
            source_read_units: args.source_read_units,
            // A simulated world's own log is written without syncing: syncing the journal
            // would guard against nothing (both survive a SIGKILL, as written data does).
            volatile_journal: cloud.sim_model().is_some(),
            ..Settings::default()
        };
        let run = Ready { plan, journal, state, cloud, settings, store, hold };
        execute_run(run, args.sim_speed, log).await
    })
}

pub(crate) fn resume(args: &ResumeArgs, log: LogFormat) -> Result<Exit, CliError> {
    let taking = Taking { ttl: args.lease.lease_ttl, wait: args.wait };
    let how = Continue { force: args.force, teardown: false, taking };
    continue_run(&args.state, &args.run_id, &args.aws, how, log)
}

pub(crate) fn teardown(args: &TeardownArgs, log: LogFormat) -> Result<Exit, CliError> {
    let taking = Taking { ttl: args.lease.lease_ttl, wait: args.wait };
    let how = Continue { force: false, teardown: true, taking };
    continue_run(&args.state, &args.run_id, &args.aws, how, log)
}

/// How a run is continued.
#[derive(Debug, Clone, Copy)]
struct Continue {
    /// Use a changed plan file.
    force: bool,
    /// Only tear the drill down.
    teardown: bool,
    /// How to take the run's lease.
    taking: Taking,
}

fn continue_run(
    state_args: &StateArgs,
    run_id: &str,
    aws: &AwsArgs,
    how: Continue,
    log: LogFormat,
) -> Result<Exit, CliError> {
    // Checked before the id names a path.
    if let Err(e) = run::check_run_id(run_id) {
        output::error(&e);
        return Ok(Exit::Usage);
    }
    let location = match state_args.location() {
        Ok(location) => location,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Usage);
        }
    };
    // A directory's run may be simulated, and a simulated run's runtime has a virtual clock:
    // its header says which. A bucket never holds simulated runs.
    let kind = match &location {
        Location::Dir(dir) => match run::read_header(dir, run_id) {
            Some(header) if header.options.simulated() => CloudArg::Sim,
            _ => CloudArg::Aws,
        },
        Location::S3 { .. } => CloudArg::Aws,
    };
    let rt = runtime_for(kind)?;
    // A simulated world's time resumes where the journal stopped.
    let _entered = rt.enter();
    rt.block_on(continue_on(state_args, run_id, aws, how, log))
}

async fn continue_on(
    state_args: &StateArgs,
    run_id: &str,
    aws: &AwsArgs,
    how: Continue,
    log: LogFormat,
) -> Result<Exit, CliError> {
    let Continue { force, teardown, taking } = how;
    let store = match state_store::open(
        state_args,
        &aws.over(drover_aws::AwsOptions::default()),
        taking.ttl,
    )
    .await
    {
        Ok(store) => store,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    let hold = match state_store::hold(&store, run_id, taking).await {
        Ok(hold) => hold,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    let mut opened = match store.open(run_id).await {
        Ok(opened) => opened,
        Err(e) => {
            output::error(&e.to_string());
            hold.release().await;
            return Ok(Exit::Failure);
        }
    };
    if let Some(torn) = &opened.torn {
        output::stderr(&format!(
            "warning: the journal's last record (line {}) was torn by a crash ({}); it was discarded and its step is redone",
            torn.line, torn.reason
        ));
    }
    let header = opened.state.header.clone();
    let refuse = async |hold: state_store::Hold, message: &str| {
        output::error(message);
        hold.release().await;
        Ok(Exit::Failure)
    };
    if teardown && header.mode != Mode::Drill {
        let message =
            format!("run {run_id} is a {}; only drills have a teardown", header.mode.as_str());
        return refuse(hold, &message).await;
    }
    if !teardown && opened.state.finished == Some(true) {
        output::stderr(&format!("run {run_id} has already succeeded; nothing to resume"));
        output::stdout_line(&status::render(&opened.state))?;
        hold.release().await;
        return Ok(Exit::Success);
    }
    // The plan: the file when it is unchanged (or --force), else the journal's copy.
    let mut plan_replaced = None;
    let text = match std::fs::read(&header.plan_path) {
        Ok(bytes) if run::plan_hash(&bytes) == header.plan_hash => bytes,
        Ok(bytes) if force => {
            plan_replaced = Some(run::plan_hash(&bytes));
            output::stderr(&format!(
                "warning: {} changed since the run started; using it (--force)",
                header.plan_path
            ));
            bytes
        }
        Ok(_) => {
            let message = format!(
                "{} changed since run {run_id} started (its hash no longer matches the journal's); \
                 restore the file, or resume with --force to use the new plan",
                header.plan_path
            );
            return refuse(hold, &message).await;
        }
        Err(_) => {
            output::stderr(&format!(
                "note: {} is not readable; using the plan copy in the journal",
                header.plan_path
            ));
            header.plan_text.clone().into_bytes()
        }
    };
    let loaded = drover_plan::load(&header.plan_path, &text);
    let Some(plan) = loaded.plan else {
        output::stderr(&output::render_diagnostics(&loaded.diagnostics, false));
        return refuse(hold, "the run's plan is not valid").await;
    };
    if header.options.simulated() && store.dir().is_none() {
        let message = format!(
            "run {run_id} is a simulated run, whose world lives in a local state directory, not \
             in {}; it cannot be resumed from here",
            store.location()
        );
        return refuse(hold, &message).await;
    }
    let run_dir = store.dir().map(|dir| run::run_dir(dir, run_id));
    let reopened = Cloud::reopen(
        &header.options.cloud,
        aws,
        &plan,
        header.mode,
        run_dir.as_deref().unwrap_or(std::path::Path::new(".")),
        opened.state.last_at,
        run_id,
    );
    let cloud = match reopened {
        Ok(mut cloud) => match run_dir.as_deref().map_or(Ok(()), |dir| cloud.persist(dir)) {
            Ok(()) => cloud,
            Err(e) => return refuse(hold, &e).await,
        },
        Err(e) => return refuse(hold, &e).await,
    };
    // A resumed run has no preflight: say at once when AWS cannot be reached or refuses
    // drover, rather than after its steps have retried for minutes.
    if !crate::checks::reachable(&plan, header.mode, &cloud).await {
        hold.release().await;
        return Ok(Exit::Failure);
    }
    let now = cloud.ports.clock.now();
    let prepared = if teardown {
        opened
            .journal
            .append(now, Record::Run { event: RunEvent::TeardownRequested })
            .map_err(|e| e.to_string())
            .and_then(|entry| opened.state.apply(&entry))
    } else {
        run::prepare_resume(&mut opened.journal, &mut opened.state, now, plan_replaced)
            .map_err(|e| e.to_string())
    };
    let prepared = match prepared {
        Ok(()) => opened.journal.flush().await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = prepared {
        let holder = state_store::holder_now(&store, run_id).await;
        let message = match holder {
            Some(holder) => format!("{e}; {holder}"),
            None => e,
        };
        return refuse(hold, &message).await;
    }
    output::stderr(&format!("{} {run_id}", if teardown { "tearing down" } else { "resuming" }));
    let expected = expected_durations(&plan, header.mode, &cloud, &store).await;
    let settings = Settings {
        expected_ms: expected,
        limits: header.options.limits,
        scan_segments: 4,
        teardown_only: teardown,
        backup_settle: backup_settle(header.options.backup_settle_ms),
        poll: poll(header.options.poll_interval_ms),
        source_read_units: header.options.source_read_units,
        volatile_journal: cloud.sim_model().is_some(),
        ..Settings::default()
    };
    let run =
        Ready { plan, journal: opened.journal, state: opened.state, cloud, settings, store, hold };
    execute_run(run, None, log).await
}

/// Expected step durations from the source tables' sizes and the duration model (calibrated
/// from the state directory's past runs when there are any): the scheduler's priorities, and
/// when to poll jobs that report no progress (copies). `None` when the sizes cannot be read
/// (a failover never reads the source).
async fn expected_durations(
    plan: &Plan,
    mode: Mode,
    cloud: &Cloud,
    store: &Store,
) -> Option<Arc<std::collections::BTreeMap<drover_engine::state::StepKey, u64>>> {
    if mode == Mode::Failover {
        return None;
    }
    let sizes = crate::estimate::source_sizes(plan, cloud).await.ok()?;
    // A simulated world's durations come from its own model (never from the state directory's
    // history: a simulated run is a function of its plan, options and seed).
    let model = match cloud.sim_model() {
        Some(model) => drover_sim::DurationModel { noise: 0.0, ..model },
        None => {
            let defaults =
                drover_sim::DurationModel { noise: 0.0, ..drover_sim::DurationModel::default() };
            // A bucket's past runs are not read for this (that would cost a read of every
            // run's journal at each start): `plan --estimate --history s3://...` does.
            match store {
                Store::Dir(dir) => {
                    drover_sim::estimate::calibrate(&drover_sim::estimate::history(dir), defaults).0
                }
                Store::Bucket(_) => defaults,
            }
        }
    };
    Some(Arc::new(drover_sim::estimate::expected_durations(plan, mode, &sizes, &model)))
}

/// A run ready to execute: its plan, journal, state, cloud, settings, and hold on its store.
struct Ready {
    plan: Plan,
    journal: drover_engine::journal::Journal,
    state: RunState,
    cloud: Cloud,
    settings: Settings,
    store: Store,
    hold: state_store::Hold,
}

async fn execute_run(
    run: Ready,
    sim_speed: Option<SimSpeed>,
    log: LogFormat,
) -> Result<Exit, CliError> {
    let Ready { plan, journal, state, cloud, settings, store, hold } = run;
    let simulated = cloud.sim_model().is_some();
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::Instant::now();
    // A simulated run is paced for people watching; the pacer stops with the run.
    let _pacer = simulated.then(|| {
        let bound = settings.expected_ms.as_deref().map_or(0, |expected| {
            pace::lower_bound(
                &plan,
                Shape::of(&state.header, false),
                expected,
                &settings.limits,
                settings.backup_settle,
            )
        });
        let pacer =
            tokio::spawn(pace::run(cloud.ports.clock.clone(), Pacing::new(sim_speed, bound)));
        AbortOnDrop(pacer)
    });
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        interrupted().await;
        on_signal.cancel();
    });
    // The lease is renewed while the run executes; losing it stops the run.
    let held = hold.keep(&cancel);
    let progress = Arc::new(Progress::new(log, &plan, &state, &settings));
    let run_id = state.header.run_id.clone();
    let hooks = crate::hooks::ProcessHooks::new(std::path::Path::new(&state.header.plan_path));
    let result = execute(Execution {
        plan,
        journal,
        state,
        ports: cloud.ports.clone(),
        settings,
        cancel,
        observer: progress.clone(),
        hooks: Some(Arc::new(hooks)),
    })
    .await;
    let lost = held.lost();
    let lost_journal =
        matches!(&result, Err(drover_engine::EngineError::Journal(JournalError::Lost { .. })));
    if lost_journal {
        // Not this process's any more: its lease (if still held) is released below, and the
        // holder now is said.
        if let Some(holder) = state_store::holder_now(&store, &run_id).await {
            output::stderr(&holder);
        }
    }
    // Released however the run ended (Ctrl-C included), so that the next `resume`, anywhere,
    // proceeds at once.
    held.release().await;
    if let Some(why) = lost {
        output::error(&format!("run {run_id} stopped: {why}"));
        output::stderr(&format!(
            "the journal keeps everything done so far: `drover resume {run_id}` continues"
        ));
        return Ok(Exit::Failure);
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            output::error(&format!("run {run_id} stopped: {e}"));
            if !lost_journal {
                output::stderr(&format!(
                    "the journal keeps everything done so far: `drover resume {run_id}` continues"
                ));
            }
            return Ok(Exit::Failure);
        }
    };
    progress.finish(&report.state);
    output::stdout_line(&status::render(&report.state))?;
    crate::ci::after_run(&report.state);
    if simulated {
        output::stderr(&format!("simulated in {:.1}s of real time", wall.elapsed().as_secs_f64()));
    }
    Ok(match report.outcome {
        Outcome::Succeeded => Exit::Success,
        Outcome::Failed { .. } => {
            output::stderr(&format!(
                "run {run_id} failed; fix the cause and `drover resume {run_id}` retries the failed steps"
            ));
            Exit::Failure
        }
        Outcome::Interrupted => {
            output::stderr(&format!(
                "interrupted; `drover resume {run_id}` continues where the run stopped"
            ));
            Exit::Interrupted
        }
    })
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what CI systems send a cancelled job):
/// either stops the run as Ctrl-C does, journaled and with its lease released.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Aborts a task when dropped (the pacer, when the run ends however it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
