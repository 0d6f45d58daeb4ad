//! What every node agent does towards the control plane, shared by the simulated nodes of
//! `ringfence sim-nodes` and the real node agent: register the Node, renew its Lease, report
//! Ready, and write pod status as the kubelet does.

pub mod lease;
pub mod pod_status;
pub mod registration;

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
