//! The plugin registry: which filters run (in order) and which scores count with what weight.

use std::sync::Arc;

use super::framework::{FilterPlugin, ScorePlugin};
use super::plugins::{
    balanced_allocation::BalancedAllocation, inter_pod_affinity::InterPodAffinity,
    node_affinity::NodeAffinity, node_resources_fit::NodeResourcesFit,
    node_unschedulable::NodeUnschedulable, pod_topology_spread::PodTopologySpread,
    runtime_class::RuntimeClass, taint_toleration::TaintToleration,
};

pub struct Profile {
    pub filters: Vec<Arc<dyn FilterPlugin>>,
    pub scorers: Vec<Arc<dyn ScorePlugin>>,
}

/// Kubernetes' default profile (cheap, node-local filters first).
pub fn default_profile() -> Profile {
    let affinity = Arc::new(NodeAffinity);
    let taints = Arc::new(TaintToleration);
    let fit = Arc::new(NodeResourcesFit);
    let spread = Arc::new(PodTopologySpread);
    let pod_affinity = Arc::new(InterPodAffinity);
    Profile {
        filters: vec![
            Arc::new(NodeUnschedulable),
            Arc::new(RuntimeClass),
            affinity.clone(),
            taints.clone(),
            fit.clone(),
            spread.clone(),
            pod_affinity.clone(),
        ],
        scorers: vec![taints, affinity, spread, pod_affinity, fit, Arc::new(BalancedAllocation)],
    }
}
