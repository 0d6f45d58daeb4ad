//! The control plane: API server, store, scheduler, controllers, node agent and CRI.
//!
//! - [`store`]: the one key-value seam (ordered revisions, compare-and-swap, watch from a
//!   revision, compaction) with an embedded redb backend and an etcd backend.
//! - [`api`]: the Kubernetes API without HTTP: resource table, typed requests and the engine
//!   that executes them (in-process components call [`api::Api`] directly).
//! - [`server`]: `ringfence server`, the HTTPS face of the engine that kubectl talks to.
//! - [`kube`]: the client side of the API for components: the in-process/HTTPS client seam,
//!   raw HTTPS connections from a kubeconfig, typed access, informers, work queues, the
//!   reconcile runner, events.
//! - [`scheduler`]: Filter/Score plugins in one registry, a scheduling queue, binding.
//! - [`controllers`]: the controller manager (workloads, endpoints, autoscaling, node
//!   lifecycle), each a queue of keys and an idempotent `sync`.
//! - [`node`]: the node agent (kubelet role); its registration, Lease and pod-status parts
//!   are shared with [`simnodes`], nodes that run no workloads.
//! - [`cri`]: the node's container runtime behind the CRI gRPC API.
//! - [`upgrade_proxy`]: request forwarding with connection upgrades (exec, logs).

pub mod api;
pub mod controllers;
pub mod cri;
pub mod kube;
pub mod node;
pub mod scheduler;
pub mod server;
pub mod simnodes;
pub mod store;
pub mod upgrade_proxy;
