//! [`NodeInfo`]: what plugins read about a node, with the pods placed on it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::pod_info::PodInfo;
use super::resources::Resources;
use crate::kube::ObjectKey;

/// What plugins read about a node, with the pods placed on it (bound or assumed).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// None while pods name a node the cache has not seen (or that was deleted).
    pub node: Option<Arc<Node>>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub runtime_handlers: Vec<String>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub nonzero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
}

impl NodeInfo {
    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.nonzero_requested.add(&p.nonzero);
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, key: &ObjectKey) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == *key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.nonzero_requested.sub(&p.nonzero);
        Some(p)
    }
}
