//! NetworkPolicy enforcement (networking.k8s.io/v1) on the node side, so that it holds for
//! Sentry and microVM pods alike: ingress rules at the destination pod's node, egress rules at
//! the source pod's node, in an nftables table of this agent's own, removed when it stops.
//!
//! - [`spec`]: a stored policy read defensively (what cannot be read allows nothing).
//! - [`model`]: policies + pods + namespaces -> per-pod allow rules (pure).
//! - [`ruleset`]: rules -> one `nft -f` transaction (pure); where traffic is judged, and why.
//! - [`bridge_netfilter`]: bridged pod-to-pod traffic through the IP hooks.
//! - [`sync`]: the watch-driven loop that applies changes.
//! - [`error`]: what keeps enforcement from starting.

pub mod bridge_netfilter;
pub mod error;
pub mod model;
pub mod ruleset;
pub mod spec;
pub mod sync;

use std::sync::{Arc, Mutex};

pub use error::NetworkPolicyError;
use sync::TableState;

use super::Shared;
use super::nft_proxy::nft;

/// The running enforcement; dropping it stops the loop and removes the table.
pub struct NetworkPolicyEnforcer {
    table: Arc<Mutex<TableState>>,
    task: tokio::task::JoinHandle<()>,
}

impl NetworkPolicyEnforcer {
    /// Checks that `nft` and br_netfilter work, replaces this agent's table with an empty one
    /// (no pod isolated until the policies are read) and starts following the API.
    pub async fn start(
        shared: Arc<Shared>,
        pod_cidr: &str,
    ) -> Result<NetworkPolicyEnforcer, NetworkPolicyError> {
        nft::check().map_err(|e| NetworkPolicyError::Nft(e.to_string()))?;
        bridge_netfilter::ensure()?;
        let name = ruleset::table_name(&shared.node, pod_cidr);
        let mut state = TableState::new(name.clone());
        let state = tokio::task::spawn_blocking(move || {
            state.sync(ruleset::render(&name, &[])).map(|()| state)
        })
        .await
        .map_err(|e| NetworkPolicyError::Apply(e.to_string()))??;
        let table = Arc::new(Mutex::new(state));
        let task = tokio::spawn(sync::run(shared, table.clone()));
        Ok(NetworkPolicyEnforcer { table, task })
    }
}

impl Drop for NetworkPolicyEnforcer {
    fn drop(&mut self) {
        self.task.abort();
        self.table.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}
