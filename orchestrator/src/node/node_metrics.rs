//! NodeMetrics (`metrics.k8s.io`) of the node the agent runs on, for `kubectl top node`: CPU as
//! the rate of busy time in `/proc/stat` since the previous sample, memory as what is in use
//! (`MemTotal - MemAvailable`), every [`super::pod_metrics::PERIOD`].

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::pod_metrics::PERIOD;
use crate::api::ApiError;
use crate::api::metrics::NodeMetrics;
use crate::kube::Kube;

/// Busy and total time of all CPUs, in clock ticks, from `/proc/stat`'s `cpu` line.
pub fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|w| w.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is counted in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Bytes of memory in use, from `/proc/meminfo`.
pub fn memory_used(meminfo: &str) -> Option<u64> {
    let kib = |key: &str| -> Option<u64> {
        meminfo.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
    };
    Some(kib("MemTotal:")?.saturating_sub(kib("MemAvailable:")?) * 1024)
}

async fn publish(kube: &Kube, node: &str, nanocores: u64, memory: u64) -> Result<(), ApiError> {
    let m = NodeMetrics {
        metadata: ObjectMeta { name: Some(node.to_owned()), ..Default::default() },
        timestamp: Some(Time(chrono::Utc::now())),
        window: Some(format!("{}s", PERIOD.as_secs())),
        usage: [
            ("cpu".to_owned(), Quantity(format!("{nanocores}n"))),
            ("memory".to_owned(), Quantity(format!("{}Ki", memory / 1024))),
        ]
        .into(),
        ..Default::default()
    };
    kube.create_or_replace(m).await.map(|_| ())
}

/// Samples and publishes this node's usage until the process ends.
pub async fn run(kube: Kube, node: String) {
    // SAFETY: sysconf has no memory effects.
    let ticks_per_s = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    };
    let sample = || {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        Some((cpu_ticks(&stat)?.0, Instant::now()))
    };
    let mut last = sample();
    loop {
        tokio::time::sleep(PERIOD).await;
        let now = sample();
        let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| memory_used(&m));
        if let (Some((busy0, t0)), Some((busy1, t1)), Some(memory)) = (last, now, memory) {
            let secs = t1.duration_since(t0).max(Duration::from_millis(1)).as_secs_f64();
            let nanocores = (busy1.saturating_sub(busy0) as f64 / ticks_per_s / secs * 1e9) as u64;
            if let Err(e) = publish(&kube, &node, nanocores, memory).await {
                tracing::debug!("publishing the node's metrics: {e}");
            }
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_linux_writes_them() {
        let stat = "cpu  100 5 50 800 45 0 0 0 0 0\ncpu0 50 2 25 400 20 0 0 0 0 0\n";
        assert_eq!(cpu_ticks(stat), Some((155, 1000)));
        assert_eq!(cpu_ticks("intr 1 2"), None);
        let meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    400 kB\n";
        assert_eq!(memory_used(meminfo), Some(600 * 1024));
        assert_eq!(memory_used("MemTotal: 5 kB\n"), None);
    }
}
