//! The control plane: API server, store, scheduler, controllers, node agent and CRI.
//!
//! - [`store`]: the one key-value seam (ordered revisions, compare-and-swap, watch from a
//!   revision, compaction) with an embedded redb backend and an etcd backend.
//! - [`api`]: the Kubernetes API without HTTP: resource table, typed requests and the engine
//!   that executes them (in-process components call [`api::Api`] directly).
//! - [`server`]: `ringfence server`, the HTTPS face of the engine that kubectl talks to.
//! - [`client`]: a small HTTPS client configured from a kubeconfig.
//! - [`cri`]: the node's container runtime behind the CRI gRPC API.
//!
//! - [`node`]: the node agent (kubelet role).
//! - [`upgrade_proxy`]: request forwarding with connection upgrades (exec, logs).
//!
//! The scheduler and controllers follow (issue 6).

pub mod api;
pub mod client;
pub mod cri;
pub mod node;
pub mod server;
pub mod store;
pub mod upgrade_proxy;
