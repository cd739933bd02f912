//! `drover sweep`: lists what abandoned drills of a plan left behind (drover_engine::sweep
//! finds and decides), then deletes it once confirmed: `--yes`, or the plan name typed on a
//! terminal, as `failover` asks. `--dry-run` only lists. Exit 0 when everything that qualified
//! is gone, 1 when something failed, could not be read, or was not confirmed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use drover_engine::run;
use drover_engine::store::Store;
use drover_engine::sweep::{self, Kind, Options, Sweep};
use drover_plan::Plan;

use crate::access::{self, Instead, Side};
use crate::args::{AwsArgs, CloudArg, StatusFormat, SweepArgs};
use crate::cloud::Cloud;
use crate::exit::{CliError, Exit};
use crate::output;
use crate::state_store;
use crate::support::{load_plan, runtime_for};

pub(crate) fn run(args: &SweepArgs) -> Result<Exit, CliError> {
    let Some((plan, _)) = load_plan(&args.plan) else { return Ok(Exit::Failure) };
    let opts = Options { older_than: Duration::from_millis(args.older_than), ..Options::default() };
    // Simulated worlds answer in virtual time: their deletions are waited out at once.
    let rt = runtime_for(args.cloud.cloud)?;
    let _entered = rt.enter();
    let aws = args.cloud.aws.over(drover_aws::AwsOptions::default());
    let store = match rt.block_on(state_store::open(
        &args.state,
        &aws,
        drover_engine::store::lease::DEFAULT_TTL,
    )) {
        Ok(store) => store,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    let clouds = match clouds(args, &plan, &store) {
        Ok(clouds) => clouds,
        Err(e) => {
            output::error(&e);
            return Ok(Exit::Failure);
        }
    };
    let mut found: Vec<(Cloud, Sweep)> = Vec::new();
    for cloud in clouds {
        // Told once, before every region's reads are retried in turn.
        if let Err(sentence) =
            rt.block_on(access::check(&plan, Side::Target(None), &cloud, Instead::Sim))
        {
            output::error(&sentence);
            return Ok(Exit::Failure);
        }
        let s = rt.block_on(sweep::find(&plan, &cloud.ports, &store, &opts));
        found.push((cloud, s));
    }
    let listing = merged(&plan, &store, &opts, &found);
    let qualifying = listing.to_delete();
    if args.dry_run || qualifying == 0 {
        show(args.format, &listing, args.dry_run)?;
        return Ok(finish(&listing));
    }
    if !args.yes {
        show(args.format, &listing, false)?;
        if !confirmed(&plan, &listing)? {
            return Ok(Exit::Failure);
        }
    }
    for (cloud, s) in &mut found {
        rt.block_on(sweep::delete(&plan, &cloud.ports, &store, s, &opts));
    }
    let done = merged(&plan, &store, &opts, &found);
    show(args.format, &done, false)?;
    Ok(finish(&done))
}

/// Asks on a terminal, as `failover` does; refuses elsewhere, saying what to do.
fn confirmed(plan: &Plan, listing: &Sweep) -> Result<bool, CliError> {
    let stdin = std::io::stdin();
    let n = listing.to_delete();
    if !stdin.is_terminal() {
        output::error(&format!(
            "{n} resource(s) listed above qualify; nothing was deleted: run `drover sweep` again \
             with --yes to delete them (or --dry-run to only list)"
        ));
        return Ok(false);
    }
    let count = |kind: Kind| {
        listing.items.iter().filter(|i| i.kind == kind && i.action == sweep::Action::Delete).count()
    };
    output::stderr(&format!(
        "This deletes {} drill table(s) and {} drill recovery point(s) of plan `{}`, listed \
         above.\nType the plan name to continue:",
        count(Kind::Table),
        count(Kind::RecoveryPoint),
        plan.name
    ));
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() || answer.trim() != plan.name {
        output::error("sweep not confirmed; nothing was deleted");
        return Ok(false);
    }
    Ok(true)
}

fn show(format: StatusFormat, s: &Sweep, listing_only: bool) -> Result<(), CliError> {
    match format {
        StatusFormat::Text => output::stdout_line(&s.render(listing_only)),
        StatusFormat::Json => output::stdout_line(&s.to_json(listing_only).to_string()),
    }
}

fn finish(s: &Sweep) -> Exit {
    if s.count(sweep::Action::Failed) > 0 {
        output::error(
            "some resources could not be deleted (the service's message is in the listing); fix \
             the cause and sweep again",
        );
        Exit::Failure
    } else if !s.errors.is_empty() {
        output::error(
            "not everything could be read (see the listing); fix the cause and sweep again",
        );
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// One listing of what every cloud's sweep found.
fn merged(plan: &Plan, store: &Store, opts: &Options, found: &[(Cloud, Sweep)]) -> Sweep {
    let mut all = Sweep::new(plan, store, opts);
    for (_, s) in found {
        all.merge(s.clone());
    }
    all
}

/// The clouds to sweep: AWS, or each simulated world a finished `--cloud sim` run of the plan
/// left in the state directory (a world of an unfinished run belongs to that run: left alone).
fn clouds(args: &SweepArgs, plan: &Plan, store: &Store) -> Result<Vec<Cloud>, String> {
    let c = &args.cloud;
    if c.cloud == CloudArg::Aws {
        return Ok(vec![Cloud::new(
            c.cloud,
            &c.aws,
            &c.sim,
            plan,
            drover_plan::Mode::Drill,
            "sweep",
        )?]);
    }
    let Some(state_dir) = store.dir() else {
        return Err(format!(
            "simulated worlds live in local state directories, not in {}; sweep them with a \
             directory --state",
            store.location()
        ));
    };
    let mut out = Vec::new();
    for (id, state) in run::list(state_dir) {
        let Ok(state) = state else { continue };
        let header = &state.header;
        let dir = run::run_dir(state_dir, &id);
        let sim = header.options.cloud.get("kind").and_then(|k| k.as_str()) == Some("sim");
        if !sim || header.plan_name != plan.name || !dir.join("sim.json").exists() {
            continue;
        }
        if state.finished.is_none() {
            output::stderr(&format!(
                "note: run {id} is unfinished; its simulated world is left alone (finish it with \
                 `drover resume {id}`, then sweep again)"
            ));
            continue;
        }
        out.push(Cloud::reopen(
            &header.options.cloud,
            &AwsArgs::default(),
            plan,
            header.mode,
            &dir,
            state.last_at,
            "sweep",
        )?);
    }
    if out.is_empty() {
        output::stderr(&format!(
            "note: no finished `--cloud sim` run of plan `{}` in {}: no simulated world to sweep",
            plan.name,
            state_dir.display()
        ));
    }
    Ok(out)
}
