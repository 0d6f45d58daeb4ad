//! Node IPAM: every Node registered without a pod range gets the next free one carved from
//! the cluster CIDR (`spec.podCIDR` and `spec.podCIDRs`), as kube-controller-manager's range
//! allocator does. Ranges already on Nodes, including ones their agents chose themselves,
//! are never handed out again; a full cluster CIDR is a Warning Event on the Node.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;

use super::Context;
use crate::api::ApiError;
use crate::api::request::PatchType;
use crate::kube::events::{EventRecorder, EventType};
use crate::kube::{Action, Change, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

/// The range node pod ranges come from, and the size of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterCidr {
    pub net: Ipv4Net,
    /// Prefix length of each node's range (kube-controller-manager's `--node-cidr-mask-size`).
    pub node_prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterCidrError {
    #[error("{0:?} is not an IPv4 range like 10.244.0.0/16")]
    Syntax(String),
    #[error("node ranges of /{node} do not fit in {net} (need a prefix from /{} to /30)", net.prefix_len())]
    NodePrefix { net: Ipv4Net, node: u8 },
}

impl ClusterCidr {
    pub fn parse(cidr: &str, node_prefix: u8) -> Result<Self, ClusterCidrError> {
        let net: Ipv4Net = cidr.parse().map_err(|_| ClusterCidrError::Syntax(cidr.into()))?;
        let net = net.trunc();
        if node_prefix < net.prefix_len() || node_prefix > 30 {
            return Err(ClusterCidrError::NodePrefix { net, node: node_prefix });
        }
        Ok(ClusterCidr { net, node_prefix })
    }

    /// The first node range that overlaps none of `taken`.
    pub fn next_free(&self, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
        let overlaps =
            |a: &Ipv4Net, b: &Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
        self.net.subnets(self.node_prefix).ok()?.find(|c| !taken.iter().any(|t| overlaps(c, t)))
    }
}

/// The pod ranges a Node already has (malformed ones are not ranges anyone can use).
fn node_ranges(node: &Node) -> Vec<Ipv4Net> {
    let spec = node.spec.as_ref();
    let single = spec.and_then(|s| s.pod_cidr.as_deref());
    let many = spec.and_then(|s| s.pod_cidrs.as_deref()).unwrap_or_default();
    single
        .into_iter()
        .chain(many.iter().map(String::as_str))
        .filter_map(|c| c.parse::<Ipv4Net>().ok())
        .collect()
}

fn has_range(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).is_some_and(|c| !c.is_empty())
}

pub struct NodeIpam {
    kube: Kube,
    nodes: Arc<Informer<Node>>,
    recorder: EventRecorder,
    cidr: Option<ClusterCidr>,
    /// Ranges handed out whose Node update the informer may not show yet: two Nodes synced
    /// back to back must not get the same one.
    given: tokio::sync::Mutex<HashSet<Ipv4Net>>,
    waiting: Waiting,
}

/// Nodes that found the cluster CIDR full.
type Waiting = Arc<std::sync::Mutex<HashSet<ObjectKey>>>;

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let nodes = ctx.informers.get::<Node>();
    let waiting: Waiting = Default::default();
    let (q, w) = (queue.clone(), waiting.clone());
    nodes.on_change(move |c| {
        q.add(ObjectKey::of(&c.object().metadata));
        // A Node that goes frees its range for those waiting.
        if matches!(c, Change::Deleted(_)) {
            for key in w.lock().unwrap_or_else(|e| e.into_inner()).drain() {
                q.add(key);
            }
        }
    });
    let reconciler = Arc::new(NodeIpam {
        kube: ctx.kube.named("node-ipam-controller"),
        nodes,
        recorder: ctx.recorder.clone(),
        cidr: ctx.config.cluster_cidr,
        given: Default::default(),
        waiting,
    });
    Controller { name: "nodeipam", queue, reconciler, workers: 1 }
}

#[async_trait]
impl Reconciler for NodeIpam {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(cidr) = self.cidr else { return Ok(Action::Done) };
        let Some(node) = self.nodes.get(key) else { return Ok(Action::Done) };
        if has_range(&node) || node.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let mut given = self.given.lock().await;
        let on_nodes: Vec<Ipv4Net> =
            self.nodes.list().iter().flat_map(|n| node_ranges(n)).collect();
        // What the informer shows on a Node no longer needs remembering here.
        given.retain(|g| !on_nodes.contains(g));
        let taken: Vec<Ipv4Net> = on_nodes.into_iter().chain(given.iter().copied()).collect();
        let Some(range) = cidr.next_free(&taken) else {
            self.recorder.record(
                &*node,
                EventType::Warning,
                "CIDRNotAvailable",
                format!(
                    "Node {} has no pod range: every /{} of the cluster CIDR {} is in use",
                    key.name, cidr.node_prefix, cidr.net
                ),
            );
            self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
            // Deletions wake waiting Nodes; looking again now and then covers the rest.
            return Ok(Action::RequeueAfter(Duration::from_secs(30)));
        };
        let patch =
            json!({"spec": {"podCIDR": range.to_string(), "podCIDRs": [range.to_string()]}});
        let stored: Node = self.kube.patch(None, &key.name, PatchType::Merge, patch, None).await?;
        given.insert(range);
        tracing::info!(node = %key.name, %range, "allocated the node's pod range");
        self.nodes.observe(stored);
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test range")
    }

    #[test]
    fn parses_and_checks_the_node_prefix() {
        let c = ClusterCidr::parse("10.244.3.7/16", 24).expect("valid");
        assert_eq!(c.net, net("10.244.0.0/16"));
        assert!(matches!(
            ClusterCidr::parse("10.244.0.0/16", 8),
            Err(ClusterCidrError::NodePrefix { .. })
        ));
        assert!(matches!(
            ClusterCidr::parse("10.244.0.0/16", 31),
            Err(ClusterCidrError::NodePrefix { .. })
        ));
        for bad in ["", "10.244.0.0", "10.244.0.0/33", "fd00::/64", "x/y"] {
            assert!(
                matches!(ClusterCidr::parse(bad, 24), Err(ClusterCidrError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn hands_out_the_first_range_nobody_overlaps() {
        let c = ClusterCidr::parse("10.244.0.0/22", 24).expect("valid");
        assert_eq!(c.next_free(&[]), Some(net("10.244.0.0/24")));
        // A node's own, larger range covers several node-sized ones.
        let taken = [net("10.244.0.0/23"), net("10.244.2.128/25")];
        assert_eq!(c.next_free(&taken), Some(net("10.244.3.0/24")));
        let full = [net("10.244.0.0/22")];
        assert_eq!(c.next_free(&full), None);
        // Ranges from elsewhere do not matter.
        assert_eq!(c.next_free(&[net("192.168.0.0/16")]), Some(net("10.244.0.0/24")));
    }
}
