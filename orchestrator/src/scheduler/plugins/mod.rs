//! The scheduler plugins, one module each; [`super::registry`] lists which run and how much
//! each score weighs.

pub mod balanced_allocation;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod runtime_class;
pub mod taint_toleration;
