//! Node lifecycle: a node whose Lease has not been renewed within the grace period is marked
//! Ready=Unknown and its pods NotReady; nodes get the `node.kubernetes.io/not-ready`,
//! `unreachable` and `unschedulable` taints their condition calls for, which the scheduler
//! honours (NoSchedule) and [`eviction`] acts on (NoExecute).

pub mod eviction;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::Context;
use crate::api::ApiError;
use crate::api::request::PatchType;
use crate::api::resources::Subresource;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};
use crate::node::LEASE_NAMESPACE;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeLifecycle {
    kube: Kube,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    pods: Arc<Informer<Pod>>,
    grace: Duration,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx.informers.get::<Lease>();
    let q = queue.clone();
    nodes.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let q = queue.clone();
    leases.on_change(move |c| {
        let m = &c.object().metadata;
        if m.namespace.as_deref() == Some(LEASE_NAMESPACE) {
            q.add(ObjectKey::new(None, m.name.as_deref().unwrap_or("")));
        }
    });
    let reconciler = Arc::new(NodeLifecycle {
        kube: ctx.kube.named("node-lifecycle-controller"),
        nodes,
        leases,
        pods: ctx.informers.get::<Pod>(),
        grace: ctx.config.node_monitor_grace_period,
    });
    Controller { name: "nodelifecycle", queue, reconciler, workers: ctx.config.workers }
}

/// The Ready condition's status; "" while the node has not reported one.
fn ready_status(node: &Node) -> &str {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("", |c| c.status.as_str())
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: Some(Time(chrono::Utc::now())),
    }
}

#[async_trait]
impl Reconciler for NodeLifecycle {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(node) = self.nodes.get(key) else { return Ok(Action::Done) };
        let now = chrono::Utc::now();
        let lease = self.leases.get(&ObjectKey::new(Some(LEASE_NAMESPACE), &key.name));
        let heard = lease
            .and_then(|l| l.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0))
            .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let deadline = heard + chrono::Duration::from_std(self.grace).unwrap_or_default();
        let silent = deadline <= now;
        if silent && ready_status(&node) != "Unknown" {
            self.mark_unknown(&node).await?;
            return Ok(Action::Done);
        }
        let want: Vec<(&str, &str)> = match (silent, ready_status(&node)) {
            (true, _) | (false, "Unknown") => {
                vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
            }
            (false, "False") => vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")],
            _ => Vec::new(),
        };
        let mut want = want;
        if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
            want.push((UNSCHEDULABLE, "NoSchedule"));
        }
        self.set_taints(&node, &want).await?;
        Ok(if silent {
            Action::Done
        } else {
            Action::RequeueAfter(
                (deadline - now).to_std().unwrap_or_default() + Duration::from_millis(100),
            )
        })
    }
}

impl NodeLifecycle {
    /// The node stopped renewing its Lease: Ready=Unknown, and its pods are not ready anymore.
    async fn mark_unknown(&self, node: &Node) -> Result<(), ApiError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let now = Time(chrono::Utc::now());
        let mut conditions: Vec<NodeCondition> =
            node.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
        conditions.retain(|c| c.type_ != "Ready");
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some("NodeStatusUnknown".into()),
            message: Some("Kubelet stopped posting node status.".into()),
            last_heartbeat_time: None,
            last_transition_time: Some(now),
        });
        let patch = json!({"status": {"conditions": conditions}});
        let stored: Node = self
            .kube
            .patch(None, &name, PatchType::Merge, patch, Some(Subresource::Status))
            .await?;
        self.nodes.observe(stored);
        for pod in self.pods.list() {
            let on = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str());
            if !on || !super::common::is_ready(&pod) {
                continue;
            }
            let mut conds: Vec<serde_json::Value> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect();
            for c in
                conds.iter_mut().filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
            {
                c["status"] = json!("False");
                c["lastTransitionTime"] =
                    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            let key = ObjectKey::of(&pod.metadata);
            let patch = json!({"status": {"conditions": conds}});
            match self
                .kube
                .patch::<Pod>(
                    key.ns(),
                    &key.name,
                    PatchType::Merge,
                    patch,
                    Some(Subresource::Status),
                )
                .await
            {
                Ok(p) => self.pods.observe(p),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes the node's lifecycle taints exactly `want`, leaving other taints alone.
    async fn set_taints(&self, node: &Node, want: &[(&str, &str)]) -> Result<(), ApiError> {
        let ours = [NOT_READY, UNREACHABLE, UNSCHEDULABLE];
        let current: Vec<Taint> =
            node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let mut next: Vec<Taint> = current
            .iter()
            .filter(|t| {
                !ours.contains(&t.key.as_str())
                    || want.contains(&(t.key.as_str(), t.effect.as_str()))
            })
            .cloned()
            .collect();
        for (k, e) in want {
            if !next.iter().any(|t| t.key == *k && t.effect == *e) {
                next.push(taint(k, e));
            }
        }
        if next == current {
            return Ok(());
        }
        let mut updated = node.clone();
        updated.spec.get_or_insert_with(Default::default).taints = Some(next);
        let stored = self.kube.update(&updated).await?;
        self.nodes.observe(stored);
        Ok(())
    }
}
