//! Watching a run: progress displays and logs observe journaled transitions and retries.

use std::time::Duration;

use crate::error::CloudError;
use crate::state::{RunState, StepEvent, StepKey};

/// Watches a run (progress displays, logs). Called with the journal lock held: be quick.
pub trait Observer: Send + Sync {
    /// A step transition was journaled. `state` already holds it, and `state.last_at` is its
    /// journal time: the run's clock (simulated time on the simulator), not the wall clock.
    fn step(&self, _key: &StepKey, _event: &StepEvent, _state: &RunState) {}
    /// A cloud call is being retried.
    fn retry(&self, _key: &StepKey, _error: &CloudError, _wait: Duration) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Observer for Silent {}
