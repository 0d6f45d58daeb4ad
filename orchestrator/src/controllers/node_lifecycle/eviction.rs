//! Taint-based eviction (Kubernetes' NoExecute taint manager): pods on a node with a NoExecute
//! taint they do not tolerate are deleted; pods tolerating it for `tolerationSeconds` are
//! deleted once that long has passed since the taint was added (through [`PodControl`], so a
//! pod replaced under the same name is left alone). Their controllers then recreate them
//! elsewhere.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::super::Context;
use super::super::pod_control::PodControl;
use crate::api::ApiError;
use crate::kube::events::EventType;
use crate::kube::{
    Action, Change, Controller, EventRecorder, Informer, ObjectKey, Reconciler, WorkQueue,
};
use crate::scheduler::matching::tolerates;

pub struct TaintEviction {
    pod_control: PodControl,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: EventRecorder,
}

fn no_execute(n: &Node) -> Vec<k8s_openapi::api::core::v1::Taint> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.effect == "NoExecute")
        .collect()
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let nodes = ctx.informers.get::<Node>();
    let pods = ctx.informers.get::<Pod>();
    let q = queue.clone();
    pods.on_change(move |c| {
        if !matches!(c, Change::Deleted(_)) {
            q.add(ObjectKey::of(&c.object().metadata));
        }
    });
    let (q, p) = (queue.clone(), pods.clone());
    nodes.on_change(move |c| {
        let Change::Updated { old, new } = c else { return };
        let taints = no_execute(new);
        if taints.is_empty() || taints == no_execute(old) {
            return;
        }
        let name = new.metadata.name.as_deref();
        for pod in p.list() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == name {
                q.add(ObjectKey::of(&pod.metadata));
            }
        }
    });
    let kube = ctx.kube.named("taint-eviction-controller");
    let reconciler = Arc::new(TaintEviction {
        pod_control: PodControl::new(kube, pods.clone(), ctx.recorder.clone()),
        nodes,
        pods,
        recorder: ctx.recorder.clone(),
    });
    Controller { name: "taint-eviction", queue, reconciler, workers: ctx.config.workers }
}

#[async_trait]
impl Reconciler for TaintEviction {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(pod) = self.pods.get(key) else { return Ok(Action::Done) };
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            return Ok(Action::Done);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let Some(node) = self.nodes.get(&ObjectKey::new(None, &node_name)) else {
            return Ok(Action::Done);
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
        let now = chrono::Utc::now();
        // The earliest moment any taint stops being tolerated.
        let mut evict_at: Option<chrono::DateTime<chrono::Utc>> = None;
        for t in no_execute(&node) {
            let matching: Vec<_> = tolerations.iter().filter(|x| tolerates(x, &t)).collect();
            let at = if matching.is_empty() {
                Some(now)
            } else if matching.iter().any(|x| x.toleration_seconds.is_none()) {
                None
            } else {
                let secs =
                    matching.iter().filter_map(|x| x.toleration_seconds).min().unwrap_or(0).max(0);
                let added = t.time_added.as_ref().map(|x| x.0).unwrap_or(now);
                Some(added + chrono::Duration::seconds(secs))
            };
            evict_at = match (evict_at, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let Some(at) = evict_at else { return Ok(Action::Done) };
        if at > now {
            return Ok(Action::RequeueAfter(
                (at - now).to_std().unwrap_or_default() + Duration::from_millis(50),
            ));
        }
        self.recorder.record(
            &*pod,
            EventType::Normal,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {key}"),
        );
        self.pod_control.delete(&pod).await?;
        Ok(Action::Done)
    }
}
