//! ReplicaSet (and ReplicationController, its core/v1 predecessor): keeps `spec.replicas`
//! active pods stamped from the template (creating in slow-start batches, deleting the least
//! useful first) and reports how many are ready and available.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::ReplicaSetStatus;
use k8s_openapi::api::core::v1::Pod;

use super::Context;
use super::common::{
    adopt, available_in, controlled_by, deletion_order, enqueue_owner, is_active, is_available,
    is_orphan, is_ready,
};
use super::pod_control::PodControl;
use super::replicated::Replicated;
use crate::api::ApiError;
use crate::kube::events::EventType;
use crate::kube::{
    Action, Controller, EventRecorder, Informer, Kube, ObjectKey, Reconciler, WorkQueue,
};
use crate::scheduler::matching;

/// Most pods created or deleted in one sync.
const BURST: usize = 500;

pub struct ReplicaSetController<K: Replicated> {
    kube: Kube,
    sets: Arc<Informer<K>>,
    pods: Arc<Informer<Pod>>,
    pod_control: PodControl,
    recorder: EventRecorder,
}

/// The controller of `K`s: ReplicaSets or ReplicationControllers.
pub fn controller<K: Replicated>(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let sets = ctx.informers.get::<K>();
    let pods = ctx.informers.get::<Pod>();
    let q = queue.clone();
    sets.on_change(move |c| q.add(ObjectKey::of(c.object().metadata())));
    pods.on_change(enqueue_owner(&queue, <K as k8s_openapi::Resource>::KIND));
    // An orphan is news to every set whose selector matches it: one of them adopts it.
    let (q, all) = (queue.clone(), sets.clone());
    pods.on_change(move |c| {
        let pod = c.object();
        if !is_orphan(&pod.metadata) {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for set in all.list_in(ns) {
            if matching::selector(&set.selector())
                .is_some_and(|s| !s.is_empty() && s.matches(&labels))
            {
                q.add(ObjectKey::of(set.metadata()));
            }
        }
    });
    let kube = ctx.kube.named(K::MANAGER);
    let reconciler = Arc::new(ReplicaSetController {
        pod_control: PodControl::new(kube.clone(), pods.clone(), ctx.recorder.clone()),
        kube,
        sets,
        pods,
        recorder: ctx.recorder.clone(),
    });
    Controller { name: K::CONTROLLER, queue, reconciler, workers: ctx.config.workers }
}

#[async_trait]
impl<K: Replicated> Reconciler for ReplicaSetController<K> {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(rs) = self.sets.get(key) else { return Ok(Action::Done) };
        let ns = key.namespace.clone().unwrap_or_default();
        let uid = rs.metadata().uid.clone().unwrap_or_default();
        let want = rs.replicas().max(0) as usize;
        let alive = rs.metadata().deletion_timestamp.is_none();
        if alive {
            self.adopt_orphans(&*rs, &ns).await?;
        }
        let active: Vec<Arc<Pod>> = controlled_by(self.pods.owned_by(&uid), &uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        if alive {
            if active.len() < want {
                let template = rs.template().cloned().unwrap_or_default();
                let n = (want - active.len()).min(BURST);
                let prefix = format!("{}-", key.name);
                self.pod_control.create_from_template(&*rs, &template, &ns, &prefix, n).await?;
            } else if active.len() > want {
                let mut victims = active.clone();
                deletion_order(&mut victims);
                for p in victims.iter().take((active.len() - want).min(BURST)) {
                    self.pod_control.delete(p).await?;
                    self.recorder.record(
                        &*rs,
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.metadata.name.as_deref().unwrap_or_default()),
                    );
                }
            }
        }
        self.update_status(&rs, &uid).await
    }
}

impl<K: Replicated> ReplicaSetController<K> {
    /// Takes over the active pods without a controller that the selector matches (what a set
    /// deleted with `--cascade=orphan` left), as Kubernetes' controllers do, so that they
    /// count instead of being made again.
    async fn adopt_orphans(&self, rs: &K, ns: &str) -> Result<(), ApiError> {
        let Some(selector) = matching::selector(&rs.selector()).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        for pod in self.pods.select(ns, &selector) {
            if is_orphan(&pod.metadata) && is_active(&pod) {
                adopt(&self.kube, &self.pods, &*pod, rs).await?;
            }
        }
        Ok(())
    }

    async fn update_status(&self, rs: &K, uid: &str) -> Result<Action, ApiError> {
        let min_ready = rs.min_ready_seconds();
        let selector = matching::selector(&rs.selector());
        let template_labels =
            rs.template().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
        let now = chrono::Utc::now();
        let active: Vec<Arc<Pod>> = controlled_by(self.pods.owned_by(uid), uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
        let status = ReplicaSetStatus {
            replicas: active.len() as i32,
            fully_labeled_replicas: Some(count(&|p| {
                let l = p.metadata.labels.clone().unwrap_or_default();
                template_labels.as_ref().is_none_or(|t| t.iter().all(|(k, v)| l.get(k) == Some(v)))
                    && selector.as_ref().is_none_or(|s| s.matches(&l))
            })),
            ready_replicas: Some(count(&|p| is_ready(p))),
            available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
            observed_generation: rs.metadata().generation,
            conditions: rs.replica_status().and_then(|s| s.conditions),
        };
        let next = active.iter().filter_map(|p| available_in(p, min_ready, now)).min();
        if rs.replica_status().as_ref() != Some(&status) {
            let mut new = rs.clone();
            new.set_replica_status(status);
            let stored = self.kube.update_status(&new).await?;
            self.sets.observe(stored);
        }
        Ok(next.map_or(Action::Done, Action::RequeueAfter))
    }
}
