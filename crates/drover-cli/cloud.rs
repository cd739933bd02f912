//! Builds the cloud a run talks to from the command line (new runs) or from a run's journal
//! header (resumed runs), so that `resume` needs no flags (`--profile` and `--endpoint-url`
//! may override the recorded ones).

use std::path::Path;
use std::sync::Arc;

use drover_engine::{Clock, Ports, ScaledClock, SystemClock};
use drover_plan::{Mode, Plan};
use drover_sim::{Faults, SimCloud};
use serde::{Deserialize, Serialize};

use crate::args::{AwsArgs, CloudArg, SimArgs};

/// How old the recovery points are that the simulator puts in target vaults for a failover
/// (as an account with an hourly backup schedule and copy rules would hold).
const SIM_COPY_AGE_MS: i64 = 30 * 60 * 1000;

/// The cloud settings recorded in a run's header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum CloudSpec {
    /// The simulated cloud, persisted in the run's directory.
    Sim(SimSpec),
    /// AWS, through the standard credential chain.
    Aws(drover_aws::AwsOptions),
}

/// Settings of a simulated cloud.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct SimSpec {
    items: u64,
    speed: f64,
    seed: u64,
    throttle: f64,
    /// Wall-clock time at which simulated time started (simulated time = this + elapsed wall
    /// time × speed).
    origin_ms: i64,
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
    /// A cloud for a new run.
    pub(crate) fn new(
        kind: CloudArg,
        aws: &AwsArgs,
        sim: &SimArgs,
        plan: &Plan,
        mode: Mode,
    ) -> Result<Cloud, String> {
        match kind {
            CloudArg::Aws => Ok(Cloud::aws(aws.over(drover_aws::AwsOptions::default()))),
            CloudArg::Sim => {
                if !(sim.sim_speed.is_finite() && sim.sim_speed > 0.0) {
                    return Err("--sim-speed must be a positive number".to_owned());
                }
                if !(0.0..=1.0).contains(&sim.sim_throttle) {
                    return Err("--sim-throttle must be between 0 and 1".to_owned());
                }
                let origin_ms = SystemClock::new().now();
                let spec = SimSpec {
                    items: sim.sim_items,
                    speed: sim.sim_speed,
                    seed: sim.sim_seed,
                    throttle: sim.sim_throttle,
                    origin_ms,
                };
                Ok(Cloud::sim(spec, plan, mode, None))
            }
        }
    }

    /// The cloud of an existing run, from its header.
    pub(crate) fn reopen(
        spec: &serde_json::Value,
        aws: &AwsArgs,
        plan: &Plan,
        mode: Mode,
        run_dir: &Path,
    ) -> Result<Cloud, String> {
        let spec: CloudSpec = serde_json::from_value(spec.clone()).map_err(|e| {
            format!("the run's journal names a cloud this drover does not know: {e}")
        })?;
        match spec {
            CloudSpec::Aws(recorded) => Ok(Cloud::aws(aws.over(recorded))),
            CloudSpec::Sim(sim) => Ok(Cloud::sim(sim, plan, mode, Some(run_dir))),
        }
    }

    fn aws(options: drover_aws::AwsOptions) -> Cloud {
        let cloud = drover_aws::AwsCloud::new(options.clone());
        let ports = Ports {
            backup: Arc::new(cloud.clone()),
            tables: Arc::new(cloud.clone()),
            keys: Arc::new(cloud),
            clock: Arc::new(SystemClock::new()),
        };
        Cloud { ports, spec: CloudSpec::Aws(options), sim: None }
    }

    fn sim(spec: SimSpec, plan: &Plan, mode: Mode, existing: Option<&Path>) -> Cloud {
        let SimSpec { items, speed, seed, throttle, origin_ms } = spec;
        let clock: Arc<dyn Clock> = Arc::new(ScaledClock::new(origin_ms, origin_ms, speed));
        let loaded = existing.and_then(|dir| SimCloud::load(&sim_state(dir), clock.clone()).ok());
        let sim = loaded.unwrap_or_else(|| {
            let account =
                plan.source.account_id.clone().unwrap_or_else(|| "123456789012".to_owned());
            let sim = SimCloud::new(&account, seed, clock.clone());
            sim.set_realism(drover_sim::Realism::aws().without_noise());
            sim.seed_from_plan(plan, items);
            if mode == Mode::Failover {
                sim.seed_copies(plan, SIM_COPY_AGE_MS);
            }
            sim.set_faults(Faults { throttle_rate: throttle, ..Faults::default() });
            sim
        });
        let ports = Ports {
            backup: Arc::new(sim.clone()),
            tables: Arc::new(sim.clone()),
            keys: Arc::new(sim.clone()),
            clock,
        };
        Cloud { ports, spec: CloudSpec::Sim(spec), sim: Some(sim) }
    }

    /// Starts saving the simulator's world in the run's directory (after every change).
    pub(crate) fn persist(&mut self, run_dir: &Path) -> Result<(), String> {
        if let Some(sim) = self.sim.take() {
            let sim = sim.persist_to(&sim_state(run_dir)).map_err(|e| e.to_string())?;
            self.ports.backup = Arc::new(sim.clone());
            self.ports.tables = Arc::new(sim.clone());
            self.ports.keys = Arc::new(sim.clone());
            self.sim = Some(sim);
        }
        Ok(())
    }
}
