//! Registering a Node: capacity, labels, the runtime handlers it offers (RuntimeClass
//! scheduling reads them), and a Ready condition.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeRuntimeHandler,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::ApiError;
use crate::kube::Kube;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub ephemeral_storage: String,
    pub pods: u32,
    pub labels: BTreeMap<String, String>,
    pub runtime_handlers: Vec<String>,
    pub address: String,
    pub pod_cidr: Option<String>,
    pub runtime_version: String,
    /// Port of the node's log/exec endpoints (none for simulated nodes).
    pub daemon_port: Option<i32>,
}

pub fn ready_condition(ready: bool) -> NodeCondition {
    let now = Time(chrono::Utc::now());
    NodeCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        reason: Some(if ready { "KubeletReady" } else { "KubeletNotReady" }.into()),
        message: Some(
            if ready { "kubelet is posting ready status" } else { "kubelet is not ready" }.into(),
        ),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

pub fn node_object(c: &NodeConfig) -> Node {
    let mut labels = c.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), c.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu", &c.cpu),
        ("memory", &c.memory),
        ("ephemeral-storage", &c.ephemeral_storage),
        ("pods", &c.pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v.clone())))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(c.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: c.pod_cidr.clone(),
            pod_cidrs: c.pod_cidr.clone().map(|p| vec![p]),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            addresses: Some(vec![
                NodeAddress { type_: "InternalIP".into(), address: c.address.clone() },
                NodeAddress { type_: "Hostname".into(), address: c.name.clone() },
            ]),
            conditions: Some(vec![ready_condition(true)]),
            daemon_endpoints: c.daemon_port.map(|port| NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port }),
            }),
            runtime_handlers: Some(
                c.runtime_handlers
                    .iter()
                    .map(|h| NodeRuntimeHandler { name: Some(h.clone()), features: None })
                    .collect(),
            ),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                container_runtime_version: c.runtime_version.clone(),
                kubelet_version: "v1.32.0".into(),
                kube_proxy_version: String::new(),
                kernel_version: String::new(),
                os_image: "ringfence".into(),
                boot_id: String::new(),
                machine_id: String::new(),
                system_uuid: String::new(),
            }),
            ..Default::default()
        }),
    }
}

/// Creates the Node, or (re-registering) refreshes its status; returns it as stored.
pub async fn register(kube: &Kube, c: &NodeConfig) -> Result<Node, ApiError> {
    let node = node_object(c);
    match kube.create(&node).await {
        // Status is ignored on create: write it through the status subresource.
        Ok(n) => kube.patch_status(None, &c.name, &node.status).await.or(Ok(n)),
        Err(e) if e.code == 409 => kube.patch_status(None, &c.name, &node.status).await,
        Err(e) => Err(e),
    }
}

/// Reports the node Ready again (after the control plane marked it Unknown).
pub async fn report_ready(kube: &Kube, node: &Node) -> Result<(), ApiError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != "Ready")
        .collect();
    conditions.push(ready_condition(true));
    let status = NodeStatus { conditions: Some(conditions), ..Default::default() };
    kube.patch_status::<Node, _>(None, &name, &status).await.map(|_| ())
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}
