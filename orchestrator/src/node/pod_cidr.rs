//! This node's pod range: given to the agent, or allocated by the control plane's node IPAM
//! controller into the Node's `spec.podCIDR` and waited for. Either way the runtime learns it
//! through CRI `UpdateRuntimeConfig`, as from a kubelet, so that its pod network uses it.

use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Node;

use super::NodeError;
use super::cri_client::Cri;
use crate::kube::Kube;

/// How long a node waits for the control plane to give it a range.
pub const ALLOCATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The range the control plane put on Node `name`, once there is one.
pub async fn wait_for_allocation(
    kube: &Kube,
    name: &str,
    timeout: Duration,
) -> Result<String, NodeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let node = kube.get::<Node>(None, name).await?;
        let cidr = node.and_then(|n| n.spec?.pod_cidr).filter(|c| !c.is_empty());
        if let Some(cidr) = cidr {
            tracing::info!(node = name, %cidr, "the control plane allocated this node's pod range");
            return Ok(cidr);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(NodeError::Config(format!(
                "node {name} has no spec.podCIDR after {}s: give the node --pod-cidr, or run the \
                 control plane with --cluster-cidr so that it allocates one",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Hands the pod range to the runtime.
pub async fn tell_runtime(cri: &Cri, cidr: &str) -> Result<(), NodeError> {
    let mut rt = cri.runtime.clone();
    let config = cri::RuntimeConfig {
        network_config: Some(cri::NetworkConfig { pod_cidr: cidr.to_owned() }),
    };
    rt.update_runtime_config(cri::UpdateRuntimeConfigRequest { runtime_config: Some(config) })
        .await?;
    Ok(())
}
