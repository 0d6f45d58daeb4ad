//! PodMetrics (`metrics.k8s.io`) as node agents publish them: `kubectl top pod` and the
//! HorizontalPodAutoscaler read these. Real nodes publish what the CRI's container stats say;
//! simulated nodes publish what their pods are annotated with.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::cri_client::Cri;
use super::pod_worker::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::api::ApiError;
use crate::api::metrics::{ContainerMetrics, PodMetrics};
use crate::kube::Kube;

/// How often a real node samples and publishes.
pub const PERIOD: Duration = Duration::from_secs(10);

/// The pod a metrics object belongs to.
pub struct PodRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Creates or replaces the PodMetrics of `pod`, owned by the pod (so they go with it).
pub async fn publish(
    kube: &Kube,
    pod: &PodRef<'_>,
    containers: Vec<ContainerMetrics>,
    window: Duration,
) -> Result<(), ApiError> {
    let m = PodMetrics {
        metadata: ObjectMeta {
            name: Some(pod.name.to_owned()),
            namespace: Some(pod.namespace.to_owned()),
            labels: pod.labels.clone(),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: pod.name.to_owned(),
                uid: pod.uid.to_owned(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        timestamp: Some(Time(chrono::Utc::now())),
        window: Some(format!("{}s", window.as_secs().max(1))),
        containers,
        ..Default::default()
    };
    kube.create_or_replace(m).await.map(|_| ())
}

/// One container's CPU counter at one moment.
struct Sample {
    cpu_ns: u64,
    at: Instant,
}

/// Publishes the usage of every container of this node's runtime, every [`PERIOD`]: CPU as
/// the rate since the previous sample, memory as the working set.
pub async fn run(kube: Kube, mut cri: Cri) {
    let mut last: HashMap<String, Sample> = HashMap::new();
    loop {
        tokio::time::sleep(PERIOD).await;
        let stats = match cri
            .runtime
            .list_container_stats(cri::ListContainerStatsRequest { filter: None })
            .await
        {
            Ok(r) => r.into_inner().stats,
            Err(e) => {
                tracing::debug!("container stats: {e}");
                continue;
            }
        };
        // (namespace, pod, uid) -> containers.
        let mut pods: HashMap<(String, String, String), Vec<ContainerMetrics>> = HashMap::new();
        let mut seen = HashMap::new();
        for s in stats {
            let Some(attrs) = &s.attributes else { continue };
            let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
            let cpu_ns = s.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds.as_ref());
            let cpu_ns = cpu_ns.map(|v| v.value).unwrap_or(0);
            let memory = s.memory.as_ref().and_then(|m| m.working_set_bytes.as_ref());
            let memory = memory.map(|v| v.value).unwrap_or(0);
            let now = Instant::now();
            let nanocores = match last.get(&attrs.id) {
                Some(prev) if cpu_ns >= prev.cpu_ns => {
                    let secs = now.duration_since(prev.at).as_secs_f64().max(0.001);
                    ((cpu_ns - prev.cpu_ns) as f64 / secs) as u64
                }
                _ => 0,
            };
            seen.insert(attrs.id.clone(), Sample { cpu_ns, at: now });
            let usage = [
                ("cpu".to_owned(), Quantity(format!("{nanocores}n"))),
                ("memory".to_owned(), Quantity(format!("{}Ki", memory / 1024))),
            ];
            pods.entry((label(LABEL_POD_NAMESPACE), label(LABEL_POD_NAME), label(LABEL_POD_UID)))
                .or_default()
                .push(ContainerMetrics {
                    name: label(LABEL_CONTAINER),
                    usage: usage.into_iter().collect(),
                });
        }
        last = seen;
        for ((namespace, name, uid), containers) in pods {
            if name.is_empty() {
                continue;
            }
            let pod = PodRef { namespace: &namespace, name: &name, uid: &uid, labels: None };
            if let Err(e) = publish(&kube, &pod, containers, PERIOD).await {
                tracing::debug!("publishing metrics of {namespace}/{name}: {e}");
            }
        }
    }
}
