//! Retry delays for (re)subscription and calls.
//!
//! Two shapes are needed: exponential with a cap (the scheduler's resubscription, capped near the
//! master's 15 s heartbeat) and uniform random in `[0, max]` (the executor's resubscription, which
//! must land inside the agent's short `--executor_reregistration_timeout` window; this is what
//! Mesos' own executor library does with `MESOS_SUBSCRIPTION_BACKOFF_MAX`).

use std::future::Future;
use std::time::Duration;

use rand::RngExt as _;
use tokio::time::Instant;

use super::client::ApiError;

#[derive(Debug, Clone)]
enum Shape {
    Exponential { initial: Duration, next: Duration },
    Uniform,
}

/// A sequence of retry delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    shape: Shape,
    max: Duration,
}

impl Backoff {
    /// `initial`, doubling up to `max`, each delay jittered to 50–100 % of its value.
    pub fn exponential(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            shape: Shape::Exponential {
                initial,
                next: initial.min(max),
            },
            max,
        }
    }

    /// Uniformly random delays in `[0, max]`.
    pub fn uniform(max: Duration) -> Backoff {
        Backoff {
            shape: Shape::Uniform,
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let mut rng = rand::rng();
        match &mut self.shape {
            Shape::Exponential { next, .. } => {
                let current = *next;
                *next = (*next * 2).min(self.max);
                current.mul_f64(rng.random_range(0.5..=1.0))
            }
            Shape::Uniform => self.max.mul_f64(rng.random_range(0.0..=1.0)),
        }
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        if let Shape::Exponential { initial, next } = &mut self.shape {
            *next = (*initial).min(self.max);
        }
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not retryable, or `deadline`
/// passes (then the last error is returned).
pub async fn retry<T, F, Fut>(
    mut backoff: Backoff,
    deadline: Option<Instant>,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => {
                let wake = Instant::now() + backoff.next_delay();
                if let Some(deadline) = deadline
                    && wake >= deadline
                {
                    return Err(error);
                }
                tracing::debug!(%error, "retrying");
                tokio::time::sleep_until(wake).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_up_to_the_cap() {
        let mut backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(4));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.next_delay()).collect();
        let bounds = [1, 2, 4, 4, 4];
        for (delay, bound) in delays.iter().zip(bounds) {
            let bound = Duration::from_secs(bound);
            assert!(
                *delay <= bound && *delay >= bound / 2,
                "{delay:?} vs {bound:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn uniform_stays_within_its_bound() {
        let mut backoff = Backoff::uniform(Duration::from_millis(2000));
        for _ in 0..1000 {
            assert!(backoff.next_delay() <= Duration::from_millis(2000));
        }
    }
}
