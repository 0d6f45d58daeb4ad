//! CrashLoopBackOff timing: the first restart is immediate, then 10 s, 20 s, 40 s... up to
//! 5 minutes; a container that ran 10 minutes without failing starts over. A pod sandbox the
//! runtime refused waits 1 s, 2 s... up to 10 s (the kubelet's pod worker waits 10 s). Pure.

use std::time::{Duration, Instant};

pub const START: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without failing gets its back-off reset.
pub const RESET: Duration = Duration::from_secs(600);

/// After a run that ended (started at `started`, if known) with `current` back-off: when the
/// container may run again (None: now) and the back-off for the next time.
pub fn after_exit(
    current: Duration,
    started: Option<Instant>,
    now: Instant,
) -> (Option<Instant>, Duration) {
    let ran_long = started.is_some_and(|s| now.saturating_duration_since(s) > RESET);
    let current = if ran_long { Duration::ZERO } else { current };
    let retry_at = (!current.is_zero()).then(|| now + current);
    let next = if current.is_zero() { START } else { (current * 2).min(MAX) };
    (retry_at, next)
}

/// The first wait after a failed sandbox creation, and the longest.
pub const SANDBOX_START: Duration = Duration::from_secs(1);
pub const SANDBOX_MAX: Duration = Duration::from_secs(10);

/// After the runtime refused to make a pod's sandbox: the back-off before the next try.
pub fn after_sandbox_failure(current: Duration) -> Duration {
    (current * 2).clamp(SANDBOX_START, SANDBOX_MAX)
}

/// After the runtime refused to start a container: the back-off before the next try.
pub fn after_start_failure(current: Duration) -> Duration {
    (current * 2).clamp(START, MAX)
}
