//! Retrying the calls made outside a run's steps (preflight, sweep): throttling and passing
//! faults are asked again with exponential backoff, for at most a policy's budget. (A run's
//! steps retry through `context.rs`'s `call`, which also lowers concurrency on throttling.)

use std::future::Future;

use crate::error::CloudError;
use crate::policy::RetryPolicy;
use crate::ports::{CloudResult, Ports};

/// Calls `op`, retrying throttling and passing faults with exponential backoff for at most
/// `retry.give_up_after`.
pub(crate) async fn patiently<T, F, Fut>(
    ports: &Ports,
    retry: &RetryPolicy,
    mut op: F,
) -> CloudResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
{
    let started = ports.clock.monotonic();
    let mut wait = retry.initial;
    loop {
        match op().await {
            Err(e) if e.kind.is_retryable() => {
                let waited = ports.clock.monotonic().saturating_sub(started);
                if waited >= retry.give_up_after {
                    return Err(CloudError::new(
                        e.kind,
                        e.op.clone(),
                        format!(
                            "{} (still failing after {}s of retries)",
                            e.message,
                            waited.as_secs()
                        ),
                    ));
                }
                ports.clock.sleep(wait).await;
                wait = (wait * 2).min(retry.max);
            }
            result => return result,
        }
    }
}
