//! Keeps the table in line with the API: Services and EndpointSlices come from informers (a
//! watch, so changes arrive within moments); every change wakes one loop that recomputes the
//! Service ports and, when they differ from what is applied, applies one transaction.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::Notify;

use super::localnet;
use super::model::{ServicePort, service_ports};
use super::nft::{self, NftError};
use super::ruleset::{Objects, TableConfig, remove, render};
use crate::kube::Informers;
use crate::node::Shared;

/// Changes that arrive together (a rollout touches many slices) are applied together.
const SETTLE: Duration = Duration::from_millis(20);
/// How often the loop looks again without a change: the pod bridge may appear later, and a
/// failed transaction is retried.
const RECHECK: Duration = Duration::from_secs(5);

/// The table and what was last applied to it.
pub struct TableState {
    config: TableConfig,
    gateway: Option<std::net::Ipv4Addr>,
    /// None until the first transaction of this process (which replaces the table wholesale),
    /// and again after a failed one.
    applied: Option<Objects>,
    ports: Option<Vec<ServicePort>>,
    /// Set when the agent stops: nothing may be applied after the table is removed.
    stopped: bool,
}

impl TableState {
    pub fn new(config: TableConfig, gateway: Option<std::net::Ipv4Addr>) -> Self {
        TableState { config, gateway, applied: None, ports: None, stopped: false }
    }

    /// Makes the table implement `ports` (unless it already does).
    pub fn sync(&mut self, ports: Vec<ServicePort>) -> Result<(), NftError> {
        if self.stopped {
            return Ok(());
        }
        let mut changed = self.ports.as_ref() != Some(&ports) || self.applied.is_none();
        if self.config.localnet_bridge.is_none()
            && let Some(bridge) = self.gateway.and_then(localnet::bridge_of)
        {
            match localnet::enable(&bridge) {
                Ok(()) => {
                    self.config.localnet_bridge = Some(bridge);
                    changed = true;
                }
                Err(e) => tracing::warn!("node ports on 127.0.0.1 via {bridge}: {e}"),
            }
        }
        if !changed {
            return Ok(());
        }
        let ruleset = render(&self.config, &ports, self.applied.as_ref());
        self.applied = None;
        nft::apply(&ruleset.script)?;
        tracing::debug!("nftables: {} Service ports in table {}", ports.len(), self.config.name);
        self.applied = Some(ruleset.objects);
        self.ports = Some(ports);
        Ok(())
    }

    /// Removes the table; nothing is applied after.
    pub fn stop(&mut self) {
        self.stopped = true;
        // First, so that the bridge never routes to 127/8 without the table's drop rule. The
        // bridge may be gone already (the runtime stopped first): nothing to undo then.
        if let Some(bridge) = &self.config.localnet_bridge {
            let _ = localnet::disable(bridge);
        }
        if let Err(e) = nft::apply(&remove(&self.config)) {
            tracing::warn!("removing table {}: {e}", self.config.name);
        }
    }
}

/// Follows Services and EndpointSlices until aborted, applying each change to `table` and
/// feeding cluster DNS.
pub async fn run(shared: Arc<Shared>, table: Arc<Mutex<TableState>>) {
    let informers = Informers::new(shared.kube.clone());
    let services = informers.get::<Service>();
    let slices = informers.get::<EndpointSlice>();
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    services.on_change(move |_| w.notify_one());
    let w = wake.clone();
    slices.on_change(move |_| w.notify_one());
    let _tasks = informers.start_scoped();
    informers.wait_synced().await;
    loop {
        let svcs = services.list();
        let sls = slices.list();
        let svc_refs: Vec<&Service> = svcs.iter().map(|s| s.as_ref()).collect();
        let slice_refs: Vec<&EndpointSlice> = sls.iter().map(|s| s.as_ref()).collect();
        let ports = service_ports(&svc_refs, &slice_refs);
        let t = table.clone();
        let applied = tokio::task::spawn_blocking(move || {
            t.lock().unwrap_or_else(|e| e.into_inner()).sync(ports)
        })
        .await;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("applying the Service ruleset: {e}"),
        }
        let _ = tokio::time::timeout(RECHECK, wake.notified()).await;
        tokio::time::sleep(SETTLE).await;
    }
}
