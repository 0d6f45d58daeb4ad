//! Keeps the table in line with the API: NetworkPolicies, Pods and Namespaces come from
//! informers (a watch, so a change arrives within moments); every change wakes one loop that
//! recomputes the rules and, when the ruleset differs from what is applied, applies it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::Notify;

use super::NetworkPolicyError;
use super::model::pod_rules;
use super::ruleset::{remove, render};
use super::spec::{self, PolicySpec};
use crate::api::resources::find_kind;
use crate::kube::Informers;
use crate::kube::informer::{Cached, Informer};
use crate::node::Shared;
use crate::node::nft_proxy::nft;

/// Changes that arrive together (a rollout, a relabelled namespace) are applied together.
const SETTLE: Duration = Duration::from_millis(20);
/// How often the loop looks again without a change: a failed transaction is retried.
const RECHECK: Duration = Duration::from_secs(5);

/// A stored NetworkPolicy, its spec kept as JSON (see [`spec`] for why).
#[derive(serde::Deserialize)]
pub struct RawPolicy {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: serde_json::Value,
}

impl Cached for RawPolicy {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// The table and what was last applied to it.
pub struct TableState {
    table: String,
    applied: Option<String>,
    /// Set when the agent stops: nothing may be applied after the table is removed.
    stopped: bool,
}

impl TableState {
    pub fn new(table: String) -> Self {
        TableState { table, applied: None, stopped: false }
    }

    /// Applies `script` unless it is what the table already holds.
    pub fn sync(&mut self, script: String) -> Result<(), NetworkPolicyError> {
        if self.stopped || self.applied.as_ref() == Some(&script) {
            return Ok(());
        }
        self.applied = None;
        nft::apply(&script).map_err(|e| NetworkPolicyError::Apply(e.to_string()))?;
        self.applied = Some(script);
        Ok(())
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Removes the table; nothing is applied after.
    pub fn stop(&mut self) {
        self.stopped = true;
        if let Err(e) = nft::apply(&remove(&self.table)) {
            tracing::warn!("removing table {}: {e}", self.table);
        }
    }
}

/// Follows policies, pods and namespaces until aborted, applying each change to `table`.
pub async fn run(shared: Arc<Shared>, table: Arc<Mutex<TableState>>) {
    let informers = Informers::new(shared.kube.clone());
    let pods = informers.get::<Pod>();
    let namespaces = informers.get::<Namespace>();
    let Some(kind) = find_kind("networking.k8s.io", "NetworkPolicy") else {
        tracing::error!("NetworkPolicy is not in the resource table: policies are not enforced");
        return;
    };
    let policies = Informer::<RawPolicy>::new(kind);
    let wake = Arc::new(Notify::new());
    let w = wake.clone();
    pods.on_change(move |_| w.notify_one());
    let w = wake.clone();
    namespaces.on_change(move |_| w.notify_one());
    let w = wake.clone();
    policies.on_change(move |_| w.notify_one());
    let mut tasks = informers.start_scoped();
    tasks.push(tokio::spawn(policies.clone().run(shared.kube.clone())));
    informers.wait_synced().await;
    policies.wait_synced().await;
    let name = table.lock().unwrap_or_else(|e| e.into_inner()).table().to_owned();
    loop {
        let specs: Vec<PolicySpec> = policies
            .list()
            .iter()
            .map(|p| {
                let ns = p.metadata.namespace.as_deref().unwrap_or_default();
                spec::parse(ns, p.metadata.name.as_deref().unwrap_or_default(), &p.spec)
            })
            .collect();
        let pod_list = pods.list();
        let ns_list = namespaces.list();
        let pod_refs: Vec<&Pod> = pod_list.iter().map(|p| p.as_ref()).collect();
        let ns_refs: Vec<&Namespace> = ns_list.iter().map(|n| n.as_ref()).collect();
        let rules = pod_rules(&shared.node, &specs, &pod_refs, &ns_refs);
        let isolated = rules.len();
        let script = render(&name, &rules);
        let t = table.clone();
        let applied = tokio::task::spawn_blocking(move || {
            t.lock().unwrap_or_else(|e| e.into_inner()).sync(script)
        })
        .await;
        match applied {
            Ok(Ok(())) => tracing::debug!("NetworkPolicy: {isolated} isolated pods in {name}"),
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("applying the NetworkPolicy ruleset: {e}"),
        }
        let _ = tokio::time::timeout(RECHECK, wake.notified()).await;
        tokio::time::sleep(SETTLE).await;
    }
}
