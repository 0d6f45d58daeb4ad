//! What the network benchmark measures: the paths (declared once, in report order), the
//! metrics each gives, who runs the client and server, the Service data path, and the
//! measurements of a run.

use serde::Serialize;

/// How the cluster's nodes implement Services (`--proxy-mode` of `ringfence up` and `node`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// Rules in the kernel: DNAT to an endpoint picked at random.
    Nftables,
    /// A TCP relay per Service port in the node agent.
    Userspace,
}

impl ProxyMode {
    pub fn id(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Userspace => "userspace",
        }
    }
}

/// What runs the client and the server of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// The same program as a plain process, in the pods' network namespaces: the path
    /// without the Sentry, the baseline of the ratios.
    Native,
    /// In Sentry pods.
    Sentry,
}

impl Runner {
    pub const ALL: [Runner; 2] = [Runner::Native, Runner::Sentry];

    pub fn id(self) -> &'static str {
        match self {
            Runner::Native => "native",
            Runner::Sentry => "sentry",
        }
    }
}

/// What a path's client does (see benches/network/netbench.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exchange {
    /// Bulk transfer, then 64-byte round trips, over one connection each.
    StreamAndRr,
    /// Fresh connections, each timed to the first byte of the answer.
    Connect,
}

/// Where a client's traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The server pod on the client's node, by its IP.
    PodSameNode,
    /// The server pod on the other node, by its IP.
    PodOtherNode,
    /// The cluster IP of a Service whose one endpoint is the pod on the client's node.
    ServiceSameNode,
    /// The cluster IP of a Service whose one endpoint is the pod on the other node.
    ServiceOtherNode,
    /// The cluster IP of a Service with 100 endpoints.
    ServiceMany,
    /// The same 100 endpoint addresses, dialed directly (no Service).
    DirectMany,
}

/// One row group of the table.
pub struct PathSpec {
    pub id: &'static str,
    pub title: &'static str,
    pub target: Target,
    pub exchange: Exchange,
}

const fn path(id: &'static str, title: &'static str, target: Target, e: Exchange) -> PathSpec {
    PathSpec { id, title, target, exchange: e }
}

/// Every path, in report order.
pub const PATHS: &[PathSpec] = &[
    path("pod-same-node", "pod -> pod, same node", Target::PodSameNode, Exchange::StreamAndRr),
    path("pod-other-node", "pod -> pod, other node", Target::PodOtherNode, Exchange::StreamAndRr),
    path(
        "service-same-node",
        "pod -> Service, endpoint on the same node",
        Target::ServiceSameNode,
        Exchange::StreamAndRr,
    ),
    path(
        "service-other-node",
        "pod -> Service, endpoint on the other node",
        Target::ServiceOtherNode,
        Exchange::StreamAndRr,
    ),
    path(
        "service-100-endpoints",
        "pod -> Service with 100 endpoints",
        Target::ServiceMany,
        Exchange::Connect,
    ),
    path(
        "direct-100-endpoints",
        "pod -> the same 100 endpoints directly",
        Target::DirectMany,
        Exchange::Connect,
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

pub struct MetricSpec {
    /// The id netbench prints and the JSON uses.
    pub id: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub better: Better,
    pub exchange: Exchange,
    /// The plan line that gives it (netbench's kind): `stream`, `rr` or `connect`.
    pub kind: &'static str,
}

const fn metric(
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    better: Better,
    kind: &'static str,
) -> MetricSpec {
    let exchange = if matches!(kind.as_bytes(), b"connect") {
        Exchange::Connect
    } else {
        Exchange::StreamAndRr
    };
    MetricSpec { id, title, unit, better, exchange, kind }
}

/// Every metric, in report order.
pub const METRICS: &[MetricSpec] = &[
    metric("throughput_mibs", "TCP throughput", "MiB/s", Better::Higher, "stream"),
    metric("rr_p50_us", "64 B request/response p50", "µs", Better::Lower, "rr"),
    metric("rr_p99_us", "64 B request/response p99", "µs", Better::Lower, "rr"),
    metric("connect_p50_us", "connect + first byte p50", "µs", Better::Lower, "connect"),
    metric("connect_p99_us", "connect + first byte p99", "µs", Better::Lower, "connect"),
];

/// The metrics of `p`.
pub fn metrics_of(p: &PathSpec) -> impl Iterator<Item = &'static MetricSpec> + '_ {
    METRICS.iter().filter(move |m| m.exchange == p.exchange)
}

pub fn metric_spec(id: &str) -> Option<&'static MetricSpec> {
    METRICS.iter().find(|m| m.id == id)
}

/// How much each client does.
#[derive(Clone, Debug, Serialize)]
pub struct Sizes {
    /// Bulk transfer per throughput sample, ms.
    pub stream_ms: u64,
    /// Round trips per request/response measurement.
    pub round_trips: u64,
    /// Connections per connection-setup measurement.
    pub connects: u64,
    /// Rounds over every path per client; a value is the median of its rounds.
    pub rounds: u64,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes { stream_ms: 2000, round_trips: 5000, connects: 2000, rounds: 3 }
    }

    pub fn quick() -> Sizes {
        Sizes { stream_ms: 1000, round_trips: 1000, connects: 300, rounds: 1 }
    }
}

/// One number of the run, or why there is none.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub path: &'static str,
    pub metric: &'static str,
    pub mode: ProxyMode,
    pub runner: Runner,
    /// The median of `rounds`.
    pub value: Option<f64>,
    /// The value of each round.
    pub rounds: Vec<f64>,
    pub error: Option<String>,
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_has_metrics_and_ids_are_unique() {
        for p in PATHS {
            assert!(metrics_of(p).count() > 0, "{}", p.id);
        }
        let mut ids: Vec<_> = PATHS.iter().map(|p| p.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), PATHS.len());
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
