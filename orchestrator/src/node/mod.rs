//! The node agent (the kubelet's role): registers the node, keeps its Lease fresh, runs the
//! pods bound to it through the CRI runtime, reports their status, serves logs and exec, and
//! proxies Service addresses to ready endpoints.
//!
//! - [`pod_worker`]: one level-triggered loop per pod.
//! - [`probe`]: liveness and readiness probes.
//! - [`server`]: the agent's HTTP endpoints the API server proxies logs and exec to.
//! - [`service_proxy`]: Service cluster IPs on this node.
//! - [`api`], [`cri_client`]: the agent's two peers.
//! - [`registration`], [`lease`], [`pod_status`]: what any node owes the control plane,
//!   shared with the simulated nodes of `ringfence sim-nodes`.

pub mod api;
pub mod cri_client;
pub mod lease;
pub mod pod_status;
pub mod pod_worker;
pub mod probe;
pub mod registration;
pub mod server;
pub mod service_proxy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::ClientConfig;
use api::ApiClient;
use cri_client::Cri;

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the node's Lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: u64 = 40;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub cri_socket: PathBuf,
    /// The address pods and the API server reach this node at.
    pub address: String,
    /// Port of the agent's HTTP endpoints (logs, exec).
    pub port: u16,
    pub pod_cidr: String,
    /// Where container logs go (one directory per pod).
    pub log_dir: PathBuf,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub max_pods: u32,
    /// Runtime handlers this node's runtime offers; the first is the default.
    pub handlers: Vec<String>,
    pub labels: HashMap<String, String>,
    /// Whether this agent proxies Service cluster IPs.
    pub service_proxy: bool,
}

/// What every part of the agent shares.
pub struct Shared {
    pub node: String,
    pub api: ApiClient,
    pub cri: Cri,
    pub address: String,
    pub log_dir: PathBuf,
    pub handlers: Vec<String>,
    pub default_handler: String,
    /// uid -> (namespace, name) of pods this agent runs.
    pub pods: Mutex<HashMap<String, (String, String)>>,
}

/// Bytes of a Kubernetes quantity (e.g. "64Mi", "1G", "1000"), if it is one.
pub fn quantity_bytes(v: &Value) -> Option<i64> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (num, mult): (&str, i64) = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ]
    .iter()
    .find_map(|(suffix, m)| s.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((s.as_str(), 1));
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as i64)
}

pub struct NodeAgent {
    config: NodeConfig,
    shared: Arc<Shared>,
}

impl NodeAgent {
    pub fn new(config: NodeConfig) -> Result<NodeAgent, String> {
        let client =
            ClientConfig::from_kubeconfig(&config.kubeconfig).map_err(|e| e.to_string())?;
        let cri = Cri::connect(&config.cri_socket).map_err(|e| e.to_string())?;
        let default_handler = config
            .handlers
            .first()
            .cloned()
            .ok_or("the node needs at least one runtime handler")?;
        let shared = Arc::new(Shared {
            node: config.name.clone(),
            api: ApiClient::new(client),
            cri,
            address: config.address.clone(),
            log_dir: config.log_dir.clone(),
            handlers: config.handlers.clone(),
            default_handler,
            pods: Mutex::new(HashMap::new()),
        });
        Ok(NodeAgent { config, shared })
    }

    fn node_object(&self) -> Value {
        let c = &self.config;
        let mut labels: serde_json::Map<String, Value> =
            c.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        labels.insert("kubernetes.io/hostname".into(), json!(c.name));
        labels.insert("kubernetes.io/os".into(), json!("linux"));
        labels.insert("kubernetes.io/arch".into(), json!("amd64"));
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": c.name, "labels": labels},
            "spec": {"podCIDR": c.pod_cidr, "podCIDRs": [c.pod_cidr]},
        })
    }

    fn node_status(&self) -> Value {
        let c = &self.config;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let resources = json!({
            "cpu": c.cpus.to_string(),
            "memory": format!("{}Ki", c.memory_bytes / 1024),
            "pods": c.max_pods.to_string(),
            "ephemeral-storage": "100Gi",
        });
        let cond = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now});
        json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": c.address}, {"type": "Hostname", "address": c.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": c.port}},
            "nodeInfo": {
                "machineID": c.name, "systemUUID": c.name, "bootID": c.name,
                "kernelVersion": "ringfence", "osImage": "Ringfence", "operatingSystem": "linux",
                "architecture": "amd64", "containerRuntimeVersion": format!("ringfence://{}", env!("CARGO_PKG_VERSION")),
                "kubeletVersion": "v1.32.4", "kubeProxyVersion": "v1.32.4",
            },
            "runtimeHandlers": c.handlers.iter().map(|h| json!({"name": h, "features": {"recursiveReadOnlyMounts": false, "userNamespaces": false}})).collect::<Vec<_>>(),
        })
    }

    /// Creates the Node object (or takes it over) and posts its status.
    async fn register(&self) -> Result<(), String> {
        let api = &self.shared.api;
        let r = api
            .send("POST", "/api/v1/nodes", &self.node_object())
            .await
            .map_err(|e| e.to_string())?;
        if r.status >= 300 && r.status != 409 {
            return Err(format!(
                "registering node {}: {} {}",
                self.config.name,
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        self.post_status().await
    }

    async fn post_status(&self) -> Result<(), String> {
        let path = format!("/api/v1/nodes/{}/status", self.config.name);
        let r = self
            .shared
            .api
            .merge_patch(&path, &json!({"status": self.node_status()}))
            .await
            .map_err(|e| e.to_string())?;
        if r.status >= 300 {
            return Err(format!("node status: {} {}", r.status, String::from_utf8_lossy(&r.body)));
        }
        Ok(())
    }

    async fn renew_lease(&self) -> Result<(), String> {
        let api = &self.shared.api;
        let name = &self.config.name;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}");
        let r = api
            .merge_patch(&path, &json!({"spec": {"renewTime": now, "holderIdentity": name}}))
            .await
            .map_err(|e| e.to_string())?;
        if r.status == 404 {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": now},
            });
            let r = api
                .send(
                    "POST",
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    &lease,
                )
                .await
                .map_err(|e| e.to_string())?;
            if r.status >= 300 && r.status != 409 {
                return Err(format!(
                    "creating the node lease: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        } else if r.status >= 300 {
            return Err(format!("renewing the node lease: {}", r.status));
        }
        Ok(())
    }

    /// Runs the agent until the process ends.
    pub async fn run(self) -> Result<(), String> {
        // The namespace for leases may not exist on a fresh cluster.
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-node-lease"}});
        let _ = self.shared.api.send("POST", "/api/v1/namespaces", &ns).await;
        self.register().await?;
        let me = Arc::new(self);
        {
            let me = me.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = me.renew_lease().await {
                        tracing::warn!("{e}");
                    }
                    if let Err(e) = me.post_status().await {
                        tracing::warn!("{e}");
                    }
                    tokio::time::sleep(LEASE_RENEW).await;
                }
            });
        }
        server::start(me.shared.clone(), (me.config.address.as_str(), me.config.port)).await?;
        if me.config.service_proxy {
            service_proxy::start(me.shared.clone());
        }
        me.clone().watch_pods().await
    }

    /// Follows the pods bound to this node and keeps one worker per pod.
    async fn watch_pods(self: Arc<Self>) -> Result<(), String> {
        let mut workers: HashMap<String, watch::Sender<Option<Value>>> = HashMap::new();
        let selector = format!("spec.nodeName%3D{}", self.config.name);
        loop {
            let list = self
                .shared
                .api
                .get(&format!("/api/v1/pods?fieldSelector={selector}"))
                .await
                .map_err(|e| e.to_string());
            let list = match list {
                Ok(r) if r.status == 200 => r.json(),
                other => {
                    tracing::warn!("listing pods: {other:?}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
            let mut seen = std::collections::HashSet::new();
            for pod in list["items"].as_array().cloned().unwrap_or_default() {
                let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
                seen.insert(uid.clone());
                self.deliver(&mut workers, uid, Some(pod));
            }
            for uid in workers.keys().cloned().collect::<Vec<_>>() {
                if !seen.contains(&uid) {
                    self.deliver(&mut workers, uid, None);
                }
            }
            let path = format!(
                "/api/v1/pods?fieldSelector={selector}&watch=1&resourceVersion={rv}&allowWatchBookmarks=true"
            );
            let mut events = match self.shared.api.watch(&path).await {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!("watching pods: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(ev) = events.recv().await {
                let obj = ev["object"].clone();
                let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
                match ev["type"].as_str() {
                    Some("ADDED") | Some("MODIFIED") => self.deliver(&mut workers, uid, Some(obj)),
                    Some("DELETED") => self.deliver(&mut workers, uid, None),
                    Some("ERROR") => break,
                    _ => {}
                }
            }
            // The watch ended (timeout, 410 Gone, connection loss): list again.
        }
    }

    fn deliver(
        &self,
        workers: &mut HashMap<String, watch::Sender<Option<Value>>>,
        uid: String,
        pod: Option<Value>,
    ) {
        if uid.is_empty() {
            return;
        }
        workers.retain(|_, tx| !tx.is_closed());
        match (workers.get(&uid), pod) {
            (Some(tx), pod) => {
                if pod.is_none() {
                    self.shared.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
                }
                let _ = tx.send(pod);
            }
            (None, Some(pod)) => {
                let ns = pod["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.shared
                    .pods
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(uid.clone(), (ns, name));
                let (tx, rx) = watch::channel(Some(pod));
                let worker = pod_worker::PodWorker::new(self.shared.clone(), uid.clone());
                tokio::spawn(worker.run(rx));
                workers.insert(uid, tx);
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes(&json!("64Mi")), Some(64 << 20));
        assert_eq!(quantity_bytes(&json!("1G")), Some(1_000_000_000));
        assert_eq!(quantity_bytes(&json!(1024)), Some(1024));
        assert_eq!(quantity_bytes(&json!("x")), None);
        assert_eq!(quantity_bytes(&Value::Null), None);
    }
}
