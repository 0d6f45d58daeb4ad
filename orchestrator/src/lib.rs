//! The control plane: API server, store, scheduler, controllers, node agent and CRI.
//!
//! - [`store`]: the one key-value seam (ordered revisions, compare-and-swap, watch) with an
//!   embedded backend and an etcd backend.
//!
//! The API server, scheduler, controllers and node agent follow (issues 3, 6 and 8).

pub mod api;
pub mod client;
pub mod server;
pub mod store;
