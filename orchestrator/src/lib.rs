//! The control plane: API server, store, scheduler, controllers, node agent and CRI.
//!
//! - [`store`]: the one key-value seam (ordered revisions, compare-and-swap, watch from a
//!   revision, compaction) with an embedded redb backend and an etcd backend.
//! - [`api`]: the Kubernetes API without HTTP: resource table, typed requests and the engine
//!   that executes them (in-process components call [`api::Api`] directly).
//! - [`server`]: `ringfence server`, the HTTPS face of the engine that kubectl talks to.
//! - [`client`]: a small HTTPS client configured from a kubeconfig.
//!
//! The scheduler, controllers and node agent follow (issues 6 and 8).

pub mod api;
pub mod client;
pub mod server;
pub mod store;
