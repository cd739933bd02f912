//! drover's executor: runs a validated plan against a cloud, step by step, in dependency
//! order, with a durable checkpoint journal so that an interrupted run resumes without
//! repeating or losing work.
//!
//! The engine talks to the cloud only through the [`ports`] (narrow async traits with drover's
//! own types), so the same code drives AWS (`drover-aws`) and the simulator (`drover-sim`). It
//! never names an AWS type.
//!
//! - [`graph`]: the steps of a run and what each waits for;
//! - [`state`]: step state machines, and replay of a journal into state;
//! - [`journal`]: the append-only, hash-chained, fsynced journal;
//! - [`engine`]: the scheduler (dependency order, limits, cancellation);
//! - [`policy`]: retries, polling and other engine settings;
//! - [`observer`]: watching a run;
//! - [`run`]: run ids and the state directory;
//! - [`preflight`]: read-only checks before a run, and failover readiness;
//! - [`report`]: reports of a run (JSON, Markdown, JUnit, HTML);
//! - [`sweep`]: what abandoned drills left behind (`drover sweep`), found by ownership tags;
//! - [`hooks`]: the plan's validation hooks, and the port that runs them;
//! - [`notify`]: events to EventBridge and SNS, delivered beside the run;
//! - [`metrics`]: readiness and runs' results as CloudWatch metrics.

pub mod clock;
mod context;
pub mod engine;
mod error;
pub mod graph;
pub mod hooks;
pub mod journal;
mod limits;
pub mod metrics;
pub mod notify;
pub mod observer;
pub mod policy;
pub mod ports;
pub mod preflight;
pub mod report;
pub mod resource_policy;
mod retry;
pub mod run;
pub mod state;
mod steps;
pub mod store;
pub mod sweep;

pub use clock::{Clock, SystemClock};
pub use engine::{Execution, Outcome, Report, execute};
pub use error::{CloudError, EngineError, ErrorKind};
pub use observer::{Observer, Silent};
pub use policy::{PollPolicy, RetryPolicy, Settings};
pub use ports::Ports;
pub use steps::{MARKER_ATTRIBUTE, MODE_TAG, PLAN_TAG, RUN_TAG};
