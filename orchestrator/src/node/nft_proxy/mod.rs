//! Services in the kernel (kube-proxy's nftables mode is the model): ClusterIP and NodePort,
//! TCP and UDP, ClientIP session affinity, only ready endpoints from EndpointSlices, and
//! traffic to a Service without endpoints rejected. One nftables table per node agent, removed
//! when the agent stops and replaced wholesale when it starts again.
//!
//! - [`model`]: Services + EndpointSlices -> the Service ports this node implements (pure).
//! - [`ruleset`]: Service ports -> one `nft -f` transaction (pure); the data path's shape.
//! - [`nft`]: running `nft`.
//! - [`localnet`]: node ports on 127.0.0.1 (route_localnet on the pod bridge).
//! - [`sync`]: the watch-driven loop that applies changes and feeds cluster DNS.

pub mod localnet;
pub mod model;
pub mod nft;
pub mod ruleset;
pub mod sync;

use std::sync::{Arc, Mutex};

pub use nft::NftError;
use ruleset::{TableConfig, parse_cidr, table_name};
use sync::TableState;

use super::Shared;

/// The running data path; dropping it stops the loop and removes the table.
pub struct NftProxy {
    table: Arc<Mutex<TableState>>,
    task: tokio::task::JoinHandle<()>,
}

impl NftProxy {
    /// Checks that `nft` works, replaces this agent's table with an empty one and starts
    /// following the API. Fails (rather than running without Services) when nft cannot run.
    pub async fn start(shared: Arc<Shared>, pod_cidr: &str) -> Result<NftProxy, NftError> {
        nft::check()?;
        let cidr = parse_cidr(pod_cidr);
        let config = TableConfig {
            name: table_name(&shared.node, pod_cidr),
            pod_cidr: cidr,
            localnet_bridge: None,
        };
        let gateway = cidr.map(|(net, _)| std::net::Ipv4Addr::from(u32::from(net) + 1));
        let mut state = TableState::new(config, gateway);
        let state = tokio::task::spawn_blocking(move || state.sync(Vec::new()).map(|()| state))
            .await
            .map_err(|e| NftError::Io(std::io::Error::other(e)))??;
        let table = Arc::new(Mutex::new(state));
        let task = tokio::spawn(sync::run(shared, table.clone()));
        Ok(NftProxy { table, task })
    }
}

impl Drop for NftProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.table.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}
