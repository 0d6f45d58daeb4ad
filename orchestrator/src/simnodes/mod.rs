//! `ringfence sim-nodes`: simulated nodes for tests and scale, like Kubernetes' kwok and hollow
//! nodes. Each registers a Node with capacity, renews its Lease, reports Ready, and moves pods
//! bound to it through the kubelet's states without running anything: Running at once;
//! pods that run to completion (restartPolicy Never/OnFailure) exit after a while; pods being
//! deleted are removed. Annotations on a pod tune it:
//! `sim.ringfence.dev/run-seconds` (how long it runs before exiting),
//! `sim.ringfence.dev/exit-code`, and `sim.ringfence.dev/cpu-usage` (what its PodMetrics
//! report, for autoscaling).

mod pods;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};

use crate::api::ApiError;
use crate::kube::{Change, Controller, Informers, Kube, ObjectKey, WorkQueue};
use crate::node::{lease, registration};
use registration::NodeConfig;

pub const RUN_SECONDS: &str = "sim.ringfence.dev/run-seconds";
pub const EXIT_CODE: &str = "sim.ringfence.dev/exit-code";
/// CPU the pod reports using (a quantity, e.g. "250m"), published as its PodMetrics.
pub const CPU_USAGE: &str = "sim.ringfence.dev/cpu-usage";

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub count: usize,
    pub prefix: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    /// Nodes are spread over this many zones (`topology.kubernetes.io/zone`).
    pub zones: usize,
    pub runtime_handlers: Vec<String>,
    pub heartbeat: Duration,
    pub lease_duration_seconds: i32,
    /// How long run-to-completion pods run unless annotated.
    pub run_seconds: f64,
    /// Move pods bound to the nodes through their states (false: only register and
    /// heartbeat, as scheduler benchmarks want).
    pub run_pods: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            count: 1,
            prefix: "sim".into(),
            cpu: "32".into(),
            memory: "256Gi".into(),
            pods: 110,
            zones: 1,
            runtime_handlers: vec!["sentry".into(), "microvm".into()],
            heartbeat: Duration::from_secs(10),
            lease_duration_seconds: 40,
            run_seconds: 1.0,
            run_pods: true,
        }
    }
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl SimConfig {
    pub fn node_configs(&self) -> Vec<NodeConfig> {
        (0..self.count)
            .map(|i| {
                let name = format!("{}-{i}", self.prefix);
                let h = fnv(&name);
                let mut labels = BTreeMap::new();
                labels.insert(
                    "topology.kubernetes.io/zone".into(),
                    format!("zone-{}", i % self.zones.max(1)),
                );
                labels.insert("ringfence.dev/simulated".into(), "true".into());
                NodeConfig {
                    address: format!(
                        "172.{}.{}.{}",
                        16 + (h >> 16) % 16,
                        (h >> 8) % 256,
                        h % 254 + 1
                    ),
                    pod_cidr: Some(format!("10.{}.{}.0/24", 64 + (h >> 8) % 64, h % 256)),
                    name,
                    cpu: self.cpu.clone(),
                    memory: self.memory.clone(),
                    ephemeral_storage: "100Gi".into(),
                    pods: self.pods,
                    labels,
                    runtime_handlers: self.runtime_handlers.clone(),
                    runtime_version: "ringfence-sim://0.1".into(),
                    daemon_port: None,
                }
            })
            .collect()
    }
}

/// Registered simulated nodes, running until the returned tasks are aborted.
pub struct SimNodes {
    pub nodes: Vec<String>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Registers the nodes (retrying until the server answers) and starts their heartbeats and
/// pod handling. `on_registered` is told how many are done.
pub async fn start(
    kube: Kube,
    config: SimConfig,
    on_registered: impl Fn(usize),
) -> Result<SimNodes, ApiError> {
    let kube = kube.named("ringfence-sim-nodes");
    let configs = config.node_configs();
    let mut done = 0;
    let mut results = futures_util::stream::iter(configs.iter().map(|c| {
        let kube = kube.clone();
        async move {
            loop {
                match registration::register(&kube, c).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::info!("registering {}: {e}; retrying", c.name);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }))
    .buffer_unordered(32);
    while results.next().await.is_some() {
        done += 1;
        on_registered(done);
    }
    drop(results);
    let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
    let mine: Arc<HashSet<String>> = Arc::new(names.iter().cloned().collect());

    let mut tasks = vec![tokio::spawn(heartbeats(kube.clone(), names.clone(), config.clone()))];
    if !config.run_pods {
        return Ok(SimNodes { nodes: names, tasks });
    }
    let informers = Informers::new(kube.clone());
    let pod_inf = informers.get::<Pod>();
    let node_inf = informers.get::<Node>();
    let queue = WorkQueue::new();
    let (q, m) = (queue.clone(), mine.clone());
    pod_inf.on_change(move |c| {
        let p = c.object();
        let on = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("");
        if m.contains(on) {
            q.add(ObjectKey::of(&p.metadata));
        }
    });
    let (k, m) = (kube.clone(), mine.clone());
    node_inf.on_change(move |c| {
        let n = c.object();
        let name = n.metadata.name.clone().unwrap_or_default();
        if let Change::Updated { new, .. } = c
            && m.contains(&name)
            && !registration::is_ready(new)
        {
            let (k, n) = (k.clone(), new.clone());
            tokio::spawn(async move {
                if let Err(e) = registration::report_ready(&k, &n).await {
                    tracing::debug!("reporting {name} ready: {e}");
                }
            });
        }
    });
    let reconciler =
        Arc::new(pods::SimPods::new(kube.clone(), pod_inf, node_inf, &configs, config.run_seconds));
    tasks.extend(informers.start());
    tasks.extend(
        Controller { name: "sim-pods", queue, reconciler, workers: 8 }.spawn(informers.clone()),
    );
    Ok(SimNodes { nodes: names, tasks })
}

/// Renews every node's lease each interval.
async fn heartbeats(kube: Kube, names: Vec<String>, config: SimConfig) {
    let mut last: Vec<Option<k8s_openapi::api::coordination::v1::Lease>> = vec![None; names.len()];
    loop {
        let started = tokio::time::Instant::now();
        let jobs: Vec<_> = names.iter().cloned().zip(std::mem::take(&mut last)).collect();
        let renewals = futures_util::stream::iter(jobs.into_iter().map(|(n, l)| {
            let kube = kube.clone();
            let d = config.lease_duration_seconds;
            async move {
                match lease::renew(&kube, &n, d, l).await {
                    Ok(new) => Some(new),
                    Err(e) => {
                        tracing::debug!("renewing the lease of {n}: {e}");
                        None
                    }
                }
            }
        }))
        .buffered(16);
        last = renewals.collect().await;
        tokio::time::sleep_until(started + config.heartbeat).await;
    }
}
