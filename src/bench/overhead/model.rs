//! What the overhead report is made of: the runtimes, the jobs (one sandbox each), the metrics
//! they give (one declarative table), and each metric's outcome in each runtime.

use serde::Serialize;

/// A place a workload runs: a plain process or one of the isolation choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeId {
    /// A process on the host, no isolation: the baseline of every ratio.
    Native,
    Runc,
    /// gVisor as Debian ships it, on its ptrace platform.
    Runsc,
    /// This project's Sentry (`ringfence sentry run`).
    Sentry,
    /// This project's microVM (`ringfence vm run`), in the nested-SVM lane on hosts whose KVM
    /// runs guest kernels slowly.
    Microvm,
}

impl RuntimeId {
    pub const ALL: [RuntimeId; 5] = [
        RuntimeId::Native,
        RuntimeId::Runc,
        RuntimeId::Runsc,
        RuntimeId::Sentry,
        RuntimeId::Microvm,
    ];

    pub fn id(self) -> &'static str {
        match self {
            RuntimeId::Native => "native",
            RuntimeId::Runc => "runc",
            RuntimeId::Runsc => "runsc",
            RuntimeId::Sentry => "sentry",
            RuntimeId::Microvm => "microvm",
        }
    }
}

/// A unit of execution: one fresh sandbox per repetition, giving one or more metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// Start-to-exit of /bin/true.
    Start,
    /// Start-to-ready of busybox httpd (first HTTP answer from the host).
    Http,
    /// Idle sandbox memory (RSS, PSS) and the density it allows.
    Memory,
    /// getpid, open+read+close, a 1 KiB pipe ping-pong.
    Syscalls,
    /// fork+exec+wait.
    Fork,
    /// Sequential write+read, random 4 KiB reads, fsync rate on the container's root.
    FileRoot,
    /// The same on a host directory mounted as a volume.
    FileVolume,
    /// TCP throughput and request/response to a peer on the host, through the pod network.
    Network,
    /// SHA-256 and gzip.
    Cpu,
    /// The sqlite3 shell on a small database.
    App,
}

impl Job {
    pub const ALL: [Job; 10] = [
        Job::Start,
        Job::Http,
        Job::Memory,
        Job::Syscalls,
        Job::Fork,
        Job::FileRoot,
        Job::FileVolume,
        Job::Network,
        Job::Cpu,
        Job::App,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Unit {
    #[serde(rename = "ms")]
    Ms,
    #[serde(rename = "us")]
    Us,
    #[serde(rename = "MiB")]
    Mib,
    #[serde(rename = "MiB/s")]
    MibPerS,
    #[serde(rename = "ops/s")]
    OpsPerS,
    #[serde(rename = "sandboxes")]
    Sandboxes,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Us => "µs",
            Unit::Mib => "MiB",
            Unit::MibPerS => "MiB/s",
            Unit::OpsPerS => "ops/s",
            Unit::Sandboxes => "sandboxes",
        }
    }
}

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// One row of the workload table.
pub struct Metric {
    /// The id the workload program prints and the JSON uses.
    pub id: &'static str,
    pub job: Job,
    pub title: &'static str,
    pub unit: Unit,
    pub better: Better,
}

const fn m(id: &'static str, job: Job, title: &'static str, unit: Unit, better: Better) -> Metric {
    Metric { id, job, title, unit, better }
}

use Better::{Higher, Lower};

/// Every metric, in report order.
pub const METRICS: &[Metric] = &[
    m("start_exit_ms", Job::Start, "start-to-exit /bin/true", Unit::Ms, Lower),
    m("http_ready_ms", Job::Http, "start-to-ready busybox httpd", Unit::Ms, Lower),
    m("idle_rss_mib", Job::Memory, "idle sandbox RSS (all its processes)", Unit::Mib, Lower),
    m("idle_pss_mib", Job::Memory, "idle sandbox PSS (all its processes)", Unit::Mib, Lower),
    m("density", Job::Memory, "idle sandboxes per N GiB (from PSS)", Unit::Sandboxes, Higher),
    m("getpid_us", Job::Syscalls, "getpid", Unit::Us, Lower),
    m("open_read_close_us", Job::Syscalls, "open+read+close", Unit::Us, Lower),
    m("pipe_pingpong_us", Job::Syscalls, "1 KiB pipe ping-pong (round trip)", Unit::Us, Lower),
    m("fork_exec_wait_us", Job::Fork, "fork+exec+wait /bin/true", Unit::Us, Lower),
    m("root_seq_write_mibs", Job::FileRoot, "root: sequential write+fsync", Unit::MibPerS, Higher),
    m("root_seq_read_mibs", Job::FileRoot, "root: sequential read", Unit::MibPerS, Higher),
    m("root_rand_read_us", Job::FileRoot, "root: random 4 KiB read", Unit::Us, Lower),
    m("root_fsync_per_s", Job::FileRoot, "root: 4 KiB write+fsync", Unit::OpsPerS, Higher),
    m(
        "vol_seq_write_mibs",
        Job::FileVolume,
        "volume: sequential write+fsync",
        Unit::MibPerS,
        Higher,
    ),
    m("vol_seq_read_mibs", Job::FileVolume, "volume: sequential read", Unit::MibPerS, Higher),
    m("vol_rand_read_us", Job::FileVolume, "volume: random 4 KiB read", Unit::Us, Lower),
    m("vol_fsync_per_s", Job::FileVolume, "volume: 4 KiB write+fsync", Unit::OpsPerS, Higher),
    m("tcp_throughput_mibs", Job::Network, "TCP to a host peer: throughput", Unit::MibPerS, Higher),
    m("tcp_rr_us", Job::Network, "TCP to a host peer: 64 B request/response", Unit::Us, Lower),
    m("sha256_mibs", Job::Cpu, "SHA-256", Unit::MibPerS, Higher),
    m("gzip_mibs", Job::Cpu, "gzip (busybox) of a text file", Unit::MibPerS, Higher),
    m("sqlite_ms", Job::App, "sqlite3: build, index, query, 100 commits", Unit::Ms, Lower),
];

pub fn metric(id: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.id == id)
}

/// What a metric gave in one runtime.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Every sample, in the metric's unit.
    Ok { samples: Vec<f64> },
    /// Not run: the runtime or workload cannot run here, and why.
    Skipped { reason: String },
    /// Run, and it failed: why.
    Failed { reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_has_a_metric_and_ids_are_unique() {
        for job in Job::ALL {
            assert!(METRICS.iter().any(|m| m.job == job), "{job:?}");
        }
        let mut ids: Vec<_> = METRICS.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), METRICS.len());
    }
}
