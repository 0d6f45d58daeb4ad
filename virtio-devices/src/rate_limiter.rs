//! Token-bucket rate limiting for device I/O, in the shape Firecracker's API configures it:
//! a bandwidth bucket (bytes) and an ops bucket (requests), each with a size, an optional
//! one-time burst and a refill time. A refused request waits for the limiter's timer, a
//! timerfd the device watches.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// One bucket as configured: `size` tokens refill completely every `refill_time` ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    pub size: u64,
    #[serde(default)]
    pub one_time_burst: u64,
    pub refill_time: u64,
}

/// A limiter as configured: either bucket may be absent (unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiterConfig {
    #[serde(default)]
    pub bandwidth: Option<BucketConfig>,
    #[serde(default)]
    pub ops: Option<BucketConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimiterError {
    #[error("a rate-limiter bucket needs a size and a refill_time above zero")]
    EmptyBucket,
    #[error("creating the rate limiter's timer: {0}")]
    Timer(#[from] std::io::Error),
}

/// A token bucket. Tokens are counted exactly (no floating point): refills are credited in
/// whole tokens and the time they stand for is carried forward, so nothing drifts.
#[derive(Debug)]
pub struct TokenBucket {
    size: u64,
    refill_ns: u128,
    burst: u64,
    /// Tokens available; negative after a request larger than the bucket (a debt to refill).
    budget: i128,
    last: Instant,
}

impl TokenBucket {
    pub fn new(cfg: &BucketConfig, now: Instant) -> Result<TokenBucket, RateLimiterError> {
        if cfg.size == 0 || cfg.refill_time == 0 {
            return Err(RateLimiterError::EmptyBucket);
        }
        Ok(TokenBucket {
            size: cfg.size,
            refill_ns: u128::from(cfg.refill_time) * 1_000_000,
            burst: cfg.one_time_burst,
            budget: i128::from(cfg.size),
            last: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let size = u128::from(self.size);
        let tokens = elapsed * size / self.refill_ns;
        if tokens == 0 {
            return;
        }
        // Advance by the time those whole tokens stand for; the remainder carries over.
        let used_ns = tokens * self.refill_ns / size;
        self.last += Duration::from_nanos(u64::try_from(used_ns).unwrap_or(u64::MAX));
        self.budget = (self.budget + tokens as i128).min(size as i128);
    }

    /// Takes `tokens` if the bucket allows it now. A request larger than the whole bucket is
    /// let through once the bucket is full and leaves a debt, so it is paced, not starved.
    pub fn reduce(&mut self, tokens: u64, now: Instant) -> bool {
        let mut tokens = u128::from(tokens);
        let from_burst = tokens.min(u128::from(self.burst));
        self.burst -= from_burst as u64;
        tokens -= from_burst;
        if tokens == 0 {
            return true;
        }
        self.refill(now);
        let want = tokens as i128;
        if want <= self.budget || (want > self.size as i128 && self.budget == self.size as i128) {
            self.budget -= want;
            return true;
        }
        false
    }

    /// Takes `tokens` whatever the budget, leaving a debt if there were not enough (for
    /// work whose size is only known once done, like a received frame).
    pub fn force(&mut self, tokens: u64, now: Instant) {
        let from_burst = tokens.min(self.burst);
        self.burst -= from_burst;
        self.refill(now);
        self.budget -= i128::from(tokens - from_burst);
    }

    fn in_debt(&self) -> bool {
        self.budget < 0
    }

    /// Gives back tokens taken for a request that was then not served.
    pub fn give_back(&mut self, tokens: u64) {
        self.budget = (self.budget + i128::from(tokens)).min(self.size as i128);
    }

    /// How long until `tokens` (capped at the bucket size) would be available.
    pub fn wait_for(&self, tokens: u64, now: Instant) -> Duration {
        let want = i128::from(tokens.min(self.size));
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let missing = (want - self.budget).max(0) as u128;
        let ns = (missing * self.refill_ns).div_ceil(u128::from(self.size));
        Duration::from_nanos(u64::try_from(ns.saturating_sub(elapsed)).unwrap_or(u64::MAX))
    }
}

/// Bandwidth and ops buckets, and the timer that wakes a device that was refused.
pub struct RateLimiter {
    bandwidth: Option<TokenBucket>,
    ops: Option<TokenBucket>,
    timer: TimerFd,
    blocked: bool,
}

impl RateLimiter {
    pub fn new(cfg: &RateLimiterConfig) -> Result<RateLimiter, RateLimiterError> {
        let now = Instant::now();
        Ok(RateLimiter {
            bandwidth: cfg.bandwidth.as_ref().map(|b| TokenBucket::new(b, now)).transpose()?,
            ops: cfg.ops.as_ref().map(|b| TokenBucket::new(b, now)).transpose()?,
            timer: TimerFd::new().map_err(|e| RateLimiterError::Timer(e.into()))?,
            blocked: false,
        })
    }

    /// Whether a request of `bytes` may go now. When it may not, the timer is armed for when
    /// it could and the limiter stays blocked until [`RateLimiter::timer_fired`].
    pub fn consume(&mut self, bytes: u64) -> bool {
        if self.blocked {
            return false;
        }
        let now = Instant::now();
        if let Some(ops) = &mut self.ops
            && !ops.reduce(1, now)
        {
            let wait = ops.wait_for(1, now);
            return self.block(wait);
        }
        if let Some(bw) = &mut self.bandwidth
            && bytes > 0
            && !bw.reduce(bytes, now)
        {
            let wait = bw.wait_for(bytes, now);
            if let Some(ops) = &mut self.ops {
                ops.give_back(1);
            }
            return self.block(wait);
        }
        true
    }

    /// Charges work already done (`bytes` and one op); blocks until the debt is repaid if
    /// that overdrew a bucket.
    pub fn charge(&mut self, bytes: u64) {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (bucket, tokens) in [(&mut self.ops, 1), (&mut self.bandwidth, bytes)] {
            if let Some(b) = bucket {
                b.force(tokens, now);
                if b.in_debt() {
                    wait = wait.max(b.wait_for(0, now));
                }
            }
        }
        if !wait.is_zero() {
            self.block(wait);
        }
    }

    fn block(&mut self, wait: Duration) -> bool {
        // A zero timeout would disarm the timer: wait at least a microsecond.
        let wait = wait.max(Duration::from_micros(1));
        if let Err(e) = self.timer.reset(wait, None) {
            tracing::warn!("arming the rate limiter's timer: {e}");
            return true;
        }
        self.blocked = true;
        false
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The timer fired: requests may be tried again.
    pub fn timer_fired(&mut self) {
        // Reading clears the expiration count; a spurious wake-up reads nothing.
        let _ = self.timer.wait();
        self.blocked = false;
    }

    pub fn timer_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(size: u64, burst: u64, refill_ms: u64) -> BucketConfig {
        BucketConfig { size, one_time_burst: burst, refill_time: refill_ms }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_spends_its_burst_once() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&bucket(1000, 500, 1000), t0).unwrap();
        assert!(b.reduce(1500, t0), "full bucket plus the burst");
        assert!(!b.reduce(1, t0));
        assert_eq!(b.wait_for(100, t0), Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(250);
        assert!(b.reduce(250, t1));
        assert!(!b.reduce(1, t1));
        // Never more than the size, however long it waits.
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.reduce(1000, t2));
        assert!(!b.reduce(1, t2));
    }

    #[test]
    fn a_request_larger_than_the_bucket_goes_when_it_is_full_and_leaves_a_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&bucket(100, 0, 100), t0).unwrap();
        assert!(b.reduce(300, t0));
        let t1 = t0 + Duration::from_millis(150);
        assert!(!b.reduce(10, t1), "still paying off the debt");
        let t2 = t0 + Duration::from_millis(310);
        assert!(b.reduce(10, t2));
    }

    #[test]
    fn charging_after_the_fact_blocks_until_the_debt_is_repaid() {
        let cfg = RateLimiterConfig { bandwidth: Some(bucket(1000, 0, 20)), ops: None };
        let mut l = RateLimiter::new(&cfg).unwrap();
        l.charge(600);
        assert!(!l.is_blocked());
        l.charge(1500);
        assert!(l.is_blocked(), "1100 bytes in debt");
        assert!(!l.consume(1));
        let mut pfd = libc::pollfd { fd: l.timer_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1);
        l.timer_fired();
        assert!(!l.is_blocked());
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.consume(1));
    }

    #[test]
    fn empty_buckets_are_refused() {
        assert!(TokenBucket::new(&bucket(0, 0, 100), Instant::now()).is_err());
        assert!(TokenBucket::new(&bucket(10, 0, 0), Instant::now()).is_err());
    }

    #[test]
    fn a_blocked_limiter_arms_its_timer_and_unblocks_when_it_fires() {
        let cfg = RateLimiterConfig { bandwidth: None, ops: Some(bucket(2, 0, 20)) };
        let mut l = RateLimiter::new(&cfg).unwrap();
        assert!(l.consume(4096) && l.consume(4096));
        assert!(!l.consume(4096));
        assert!(l.is_blocked());
        let mut pfd = libc::pollfd { fd: l.timer_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        assert_eq!(n, 1, "the timer fires within the refill time");
        l.timer_fired();
        assert!(l.consume(4096));
    }
}
