//! Time, behind a port: real, or virtual (tokio's paused clock: tests, estimates and
//! simulated runs).

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::Millis;

/// Wall-clock time, elapsed time, and sleeping.
///
/// Two readings, because a machine's wall clock can jump (NTP steps, a VM resumed, an
/// operator's fix): [`Clock::now`] stamps records and is compared with the service's
/// timestamps (recovery point ages, job ages); [`Clock::monotonic`] measures how long
/// something took (retry budgets) and never goes backwards.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
    /// Time since a fixed, arbitrary origin; never goes backwards and ignores wall-clock
    /// jumps.
    fn monotonic(&self) -> Duration;
    /// Waits `d` of this clock's time.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future only stops the wait.
    async fn sleep(&self, d: Duration);
}

/// Real time: the system clock, tokio's timer. Under `tokio::time::pause()` both follow
/// tokio's virtual time, so tests run hours of jobs in milliseconds.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin_millis: Millis,
    origin: tokio::time::Instant,
}

impl SystemClock {
    /// A clock that starts at the system's current time.
    #[must_use]
    #[allow(clippy::disallowed_methods)]
    pub fn new() -> SystemClock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        SystemClock::starting_at(now)
    }

    /// A clock whose "now" starts at `millis` and advances with tokio's time.
    #[must_use]
    pub fn starting_at(millis: Millis) -> SystemClock {
        SystemClock { origin_millis: millis, origin: tokio::time::Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Millis {
        let elapsed = self.origin.elapsed().as_millis();
        self.origin_millis + i64::try_from(elapsed).unwrap_or(i64::MAX / 2)
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
