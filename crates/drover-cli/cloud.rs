//! Builds the cloud a run talks to from the command line (new runs) or from a run's journal
//! header (resumed runs), so that `resume` needs no flags (`--profile` and `--endpoint-url`
//! may override the recorded ones).

use std::path::Path;
use std::sync::Arc;

use drover_engine::ports::Millis;
use drover_engine::{Clock, Ports, SystemClock};
use drover_plan::{Mode, Plan};
use drover_sim::{DurationModel, Faults, SimCloud};
use serde::{Deserialize, Serialize};

use crate::args::{AwsArgs, CloudArg, SimArgs};

/// How old the recovery points are that the simulator puts in target vaults for a failover
/// (as an account with an hourly backup schedule and copy rules would hold).
const SIM_COPY_AGE_MS: i64 = 30 * 60 * 1000;

/// When simulated time starts for a new simulated world: 2026-01-01T00:00:00Z, a fixed
/// instant, so that a simulated run is a function of its plan, options and seed alone (the
/// estimator starts there too).
pub(crate) const SIM_EPOCH: Millis = 1_767_225_600_000;

/// The cloud settings recorded in a run's header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum CloudSpec {
    /// The simulated cloud, persisted in the run's directory.
    Sim(SimSpec),
    /// AWS, through the standard credential chain.
    Aws(drover_aws::AwsOptions),
}

/// Settings of a simulated world. How fast a run is paced is not one of them: pacing never
/// changes a simulated run (journals of older drovers also carry `speed` and `origin_ms`,
/// which are ignored).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct SimSpec {
    items: u64,
    seed: u64,
    throttle: f64,
    /// Relative noise of job durations (older journals: the model's default).
    #[serde(default = "default_noise")]
    noise: f64,
}

fn default_noise() -> f64 {
    DurationModel::default().noise
}

impl SimSpec {
    /// The duration model of the world.
    pub(crate) fn model(&self) -> DurationModel {
        DurationModel { noise: self.noise, ..DurationModel::default() }
    }
}

pub(crate) struct Cloud {
    pub(crate) ports: Ports,
    pub(crate) spec: CloudSpec,
    sim: Option<SimCloud>,
}

fn sim_state(run_dir: &Path) -> std::path::PathBuf {
    run_dir.join("sim.json")
}

impl Cloud {
    /// A cloud for a new run, or for a command that reads one. A simulated cloud's time is
    /// tokio's: build it inside the runtime that runs it ([`crate::support::sim_runtime`] for
    /// runs, whose time is virtual). On AWS, drover acts in each of the plan's accounts with
    /// the role the plan names there, in STS sessions named after `session` (the run id, or
    /// the command).
    pub(crate) fn new(
        kind: CloudArg,
        aws: &AwsArgs,
        sim: &SimArgs,
        plan: &Plan,
        mode: Mode,
        session: &str,
    ) -> Result<Cloud, String> {
        match kind {
            CloudArg::Aws => {
                if let Some(flag) = sim.first_given() {
                    return Err(format!(
                        "{flag} is an option of the simulated cloud; add `--cloud sim`, or drop {flag}"
                    ));
                }
                Ok(Cloud::aws(aws.over(drover_aws::AwsOptions::default()), plan, session))
            }
            CloudArg::Sim => {
                let throttle = sim.sim_throttle.unwrap_or(0.0);
                if !(0.0..=1.0).contains(&throttle) {
                    return Err("--sim-throttle must be between 0 and 1".to_owned());
                }
                let noise = sim.sim_noise.unwrap_or_else(default_noise);
                if !(0.0..=1.0).contains(&noise) {
                    return Err("--sim-noise must be between 0 and 1".to_owned());
                }
                let spec = SimSpec {
                    items: sim.sim_items.unwrap_or(1000),
                    seed: sim.sim_seed.unwrap_or(1),
                    throttle,
                    noise,
                };
                Cloud::sim(spec, plan, mode, None, SIM_EPOCH)
            }
        }
    }

    /// The cloud of an existing run, from its header. A simulated world's time resumes at
    /// `at` (the run's last journal record) or where the world stopped, whichever is later;
    /// a world that cannot be loaded is an error (never a fresh world in its place). On AWS
    /// the roles are assumed again, in sessions named after `session` (the run id).
    pub(crate) fn reopen(
        spec: &serde_json::Value,
        aws: &AwsArgs,
        plan: &Plan,
        mode: Mode,
        run_dir: &Path,
        at: Millis,
        session: &str,
    ) -> Result<Cloud, String> {
        let spec: CloudSpec = serde_json::from_value(spec.clone()).map_err(|e| {
            format!("the run's journal names a cloud this drover does not know: {e}")
        })?;
        match spec {
            CloudSpec::Aws(recorded) => Ok(Cloud::aws(aws.over(recorded), plan, session)),
            CloudSpec::Sim(sim) => Cloud::sim(sim, plan, mode, Some(run_dir), at),
        }
    }

    fn aws(options: drover_aws::AwsOptions, plan: &Plan, session: &str) -> Cloud {
        let accounts = drover_aws::Accounts::of_plan(plan, session);
        let cloud = drover_aws::AwsCloud::with_accounts(options.clone(), accounts);
        let ports = Ports {
            backup: Arc::new(cloud.clone()),
            tables: Arc::new(cloud.clone()),
            keys: Arc::new(cloud.clone()),
            identity: Arc::new(cloud.clone()),
            events: Arc::new(cloud.clone()),
            metrics: Arc::new(cloud),
            clock: Arc::new(SystemClock::new()),
        };
        Cloud { ports, spec: CloudSpec::Aws(options), sim: None }
    }

    /// The simulated cloud: the run's saved world when there is one, else a new world seeded
    /// from the plan; its clock starts at `at`.
    fn sim(
        spec: SimSpec,
        plan: &Plan,
        mode: Mode,
        existing: Option<&Path>,
        at: Millis,
    ) -> Result<Cloud, String> {
        let SimSpec { items, seed, throttle, .. } = spec;
        let state = existing.map(sim_state).filter(|path| path.exists());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::starting_at(at));
        let sim = match state {
            Some(path) => {
                let loaded = SimCloud::load(&path, clock.clone()).map_err(|e| {
                    format!("{e}; the run's simulated world cannot be resumed (start a new run)")
                })?;
                // Its time resumes where the journal or the world stopped, whichever is later.
                match loaded.time() {
                    Some(t) if t > at => loaded.with_clock(Arc::new(SystemClock::starting_at(t))),
                    _ => loaded,
                }
            }
            None => {
                let account =
                    plan.source.account_id.clone().unwrap_or_else(|| "123456789012".to_owned());
                let sim = SimCloud::new(&account, seed, clock.clone());
                sim.set_model(spec.model());
                sim.set_realism(drover_sim::Realism::aws().without_noise());
                sim.seed_from_plan(plan, items);
                if mode == Mode::Failover {
                    sim.seed_copies(plan, SIM_COPY_AGE_MS);
                }
                sim.set_faults(Faults { throttle_rate: throttle, ..Faults::default() });
                sim
            }
        };
        Ok(Cloud { ports: sim.ports(), spec: CloudSpec::Sim(spec), sim: Some(sim) })
    }

    /// How this cloud reaches AWS (the defaults for a simulated one): a state bucket is
    /// reached the same way.
    pub(crate) fn aws_options(&self) -> drover_aws::AwsOptions {
        match &self.spec {
            CloudSpec::Aws(options) => options.clone(),
            CloudSpec::Sim(_) => drover_aws::AwsOptions::default(),
        }
    }

    /// The simulated world's duration model, for a simulated cloud.
    pub(crate) fn sim_model(&self) -> Option<DurationModel> {
        match &self.spec {
            CloudSpec::Sim(spec) => Some(spec.model()),
            CloudSpec::Aws(_) => None,
        }
    }

    /// Starts saving the simulator's world in the run's directory (after every change; the
    /// ports are handles on the same world, so they save too).
    pub(crate) fn persist(&mut self, run_dir: &Path) -> Result<(), String> {
        if let Some(sim) = self.sim.take() {
            self.sim = Some(sim.persist_to(&sim_state(run_dir)).map_err(|e| e.to_string())?);
        }
        Ok(())
    }
}
