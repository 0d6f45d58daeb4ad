//! The simulated kubelet's pod loop: one idempotent sync per pod bound to a simulated node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{CPU_USAGE, EXIT_CODE, RUN_SECONDS};
use crate::api::ApiError;
use crate::api::metrics::ContainerMetrics;
use crate::api::request::DeleteOptions;
use crate::kube::{Action, Informer, Kube, ObjectKey, Reconciler};
use crate::node::pod_metrics::{self, PodRef};
use crate::node::pod_status;
use crate::node::registration::NodeConfig;

pub struct SimPods {
    kube: Kube,
    pods: Arc<Informer<Pod>>,
    _nodes: Arc<Informer<Node>>,
    /// Node name -> (host IP, pod network prefix "10.x.y.", next host number).
    addresses: Mutex<HashMap<String, (String, String, u32)>>,
    run_seconds: f64,
    /// The CPU usage last published per pod.
    published: Mutex<HashMap<ObjectKey, String>>,
}

impl SimPods {
    pub fn new(
        kube: Kube,
        pods: Arc<Informer<Pod>>,
        nodes: Arc<Informer<Node>>,
        configs: &[NodeConfig],
        run_seconds: f64,
    ) -> Self {
        let addresses = configs
            .iter()
            .map(|c| {
                let net = c.pod_cidr.as_deref().unwrap_or("10.64.0.0/24");
                let prefix = net.rsplit_once('.').map(|(p, _)| format!("{p}.")).unwrap_or_default();
                (c.name.clone(), (c.address.clone(), prefix, 2))
            })
            .collect();
        Self {
            kube,
            pods,
            _nodes: nodes,
            addresses: Mutex::new(addresses),
            run_seconds,
            published: Mutex::new(HashMap::new()),
        }
    }

    fn addresses(&self, node: &str) -> (String, String) {
        let mut a = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        match a.get_mut(node) {
            Some((host, prefix, next)) => {
                let ip = format!("{prefix}{}", *next);
                *next = if *next >= 254 { 2 } else { *next + 1 };
                (host.clone(), ip)
            }
            None => ("127.0.0.1".into(), "10.64.0.2".into()),
        }
    }

    fn run_for(&self, pod: &Pod) -> Option<Duration> {
        let policy =
            pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
        if policy == "Always" {
            return None;
        }
        let secs = annotation(pod, RUN_SECONDS)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(self.run_seconds);
        Some(Duration::from_secs_f64(secs.max(0.0)))
    }
}

impl SimPods {
    /// Publishes the pod's PodMetrics (its annotated CPU usage), when it changed.
    async fn publish_metrics(&self, key: &ObjectKey, pod: &Pod) -> Result<(), ApiError> {
        let cpu = annotation(pod, CPU_USAGE).unwrap_or("0").to_owned();
        let known = self.published.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        if known.as_deref() == Some(cpu.as_str()) {
            return Ok(());
        }
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .enumerate()
            .map(|(i, c)| {
                let usage = [
                    ("cpu".to_owned(), Quantity(if i == 0 { cpu.clone() } else { "0".into() })),
                    ("memory".to_owned(), Quantity("8Mi".into())),
                ];
                ContainerMetrics { name: c.name.clone(), usage: usage.into_iter().collect() }
            })
            .collect();
        let labels = pod.metadata.labels.clone();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let owner =
            PodRef { namespace: key.ns().unwrap_or("default"), name: &key.name, uid: &uid, labels };
        pod_metrics::publish(&self.kube, &owner, containers, Duration::from_secs(10)).await?;
        self.published.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), cpu);
        Ok(())
    }
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

#[async_trait]
impl Reconciler for SimPods {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(pod) = self.pods.get(key) else {
            self.published.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            return Ok(Action::Done);
        };
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            // Nothing runs: the containers are stopped at once.
            let opts = DeleteOptions {
                grace_period: Some(0),
                precondition_uid: pod.metadata.uid.clone(),
                ..Default::default()
            };
            match self.kube.delete::<Pod>(key.ns(), &key.name, opts).await {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
            return Ok(Action::Done);
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        match phase {
            "Succeeded" | "Failed" => Ok(Action::Done),
            "Running" => {
                self.publish_metrics(key, &pod).await?;
                let Some(run) = self.run_for(&pod) else { return Ok(Action::Done) };
                let started = pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
                let elapsed = started
                    .map(|s| (chrono::Utc::now() - s).to_std().unwrap_or_default())
                    .unwrap_or_default();
                if elapsed < run {
                    return Ok(Action::RequeueAfter(run - elapsed));
                }
                let code = annotation(&pod, EXIT_CODE).and_then(|c| c.parse().ok()).unwrap_or(0);
                let mut p = (*pod).clone();
                p.status = Some(pod_status::terminated(&pod, code));
                let stored = self.kube.update_status(&p).await?;
                self.pods.observe(stored);
                Ok(Action::Done)
            }
            _ => {
                let (host, ip) = self.addresses(&node);
                tracing::debug!(
                    "{key}: running on {node} as {ip} (seen at rv {:?})",
                    pod.metadata.resource_version
                );
                let mut p = (*pod).clone();
                p.status = Some(pod_status::running(&pod, &host, &ip));
                let stored = self.kube.update_status(&p).await?;
                self.pods.observe(stored);
                self.publish_metrics(key, &pod).await?;
                Ok(match self.run_for(&pod) {
                    Some(d) => Action::RequeueAfter(d),
                    None => Action::Done,
                })
            }
        }
    }
}
