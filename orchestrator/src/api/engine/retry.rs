//! Writes that lose a compare-and-swap are retried on the fresh object, as Kubernetes'
//! `GuaranteedUpdate` does: only a request that itself named a stale resourceVersion or a
//! precondition (checked again on every attempt) answers 409.

use std::time::Duration;

use crate::api::error::ApiError;

/// Enough for dozens of writers on one object; a bound only so that a bug cannot spin forever.
const ATTEMPTS: u32 = 100;

/// Counts the attempts of one read-modify-write.
#[derive(Debug, Default)]
pub(super) struct Retry {
    attempts: u32,
}

impl Retry {
    /// Whether to try `e`'s write again; under heavy contention it waits a little, spread by
    /// a random amount so that the writers stop meeting each other.
    pub(super) async fn again(&mut self, e: &ApiError) -> bool {
        if !e.lost_race || self.attempts >= ATTEMPTS {
            return false;
        }
        self.attempts += 1;
        if self.attempts <= 2 {
            tokio::task::yield_now().await;
        } else {
            let spread = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 4 + 1;
            let ms = spread * u64::from(self.attempts.min(20)) / 2;
            tokio::time::sleep(Duration::from_millis(ms.max(1))).await;
        }
        true
    }
}

/// Runs `attempt` (one whole read-modify-write) again until it does not lose a race.
pub(super) async fn until_applied<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut retry = Retry::default();
    loop {
        match attempt().await {
            Err(e) if retry.again(&e).await => {}
            done => return done,
        }
    }
}
