//! StatefulSet: pods with a stable identity. Each pod is `<set>-<ordinal>` with the same
//! hostname, under the set's headless Service as subdomain, with claims of its own from the
//! volume claim templates; a pod that fails or is deleted comes back under the same name,
//! with the same claims. Pods are created and deleted in ordinal order, one at a time and
//! each waiting for the one before to be Running and Ready (OrderedReady), or all at once
//! (Parallel). Template changes are recorded as ControllerRevisions and rolled out from the
//! highest ordinal down to the partition (RollingUpdate), or when pods are deleted
//! (OnDelete).
//!
//! - [`adoption`]: orphaned pods and revisions a new set of the same name takes over.
//! - [`identity`]: names, labels and volumes of a set's pods.
//! - [`revisions`]: the ControllerRevision history (rollback, pruning).
//! - [`plan`]: what one sync does, decided from what is there (pure).
//! - [`claims`]: the pods' PersistentVolumeClaims and their retention.
//! - [`status`]: the counts and revisions `kubectl rollout status` reads.

mod adoption;
mod claims;
pub mod identity;
mod plan;
mod revisions;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use super::Context;
use super::common::{available_in, controlled_by, enqueue_owner};
use super::pod_control::PodControl;
use crate::api::ApiError;
use crate::api::request::DeleteOptions;
use crate::kube::events::EventType;
use crate::kube::key::revision;
use crate::kube::{
    Action, Controller, EventRecorder, Informer, Kube, Object, ObjectKey, Reconciler, WorkQueue,
};
use identity::{by_ordinal, new_pod, pod_name, revision_of};
use plan::{Inputs, Step, Strategy, Which, Why, plan};
use revisions::{History, template_of};

pub struct StatefulSetController {
    kube: Kube,
    sets: Arc<Informer<StatefulSet>>,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    pod_control: PodControl,
    recorder: EventRecorder,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let sets = ctx.informers.get::<StatefulSet>();
    let pods = ctx.informers.get::<Pod>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let q = queue.clone();
    sets.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    pods.on_change(enqueue_owner(&queue, "StatefulSet"));
    revisions.on_change(enqueue_owner(&queue, "StatefulSet"));
    let kube = ctx.kube.named("statefulset-controller");
    let reconciler = Arc::new(StatefulSetController {
        pod_control: PodControl::new(kube.clone(), pods.clone(), ctx.recorder.clone()),
        kube,
        sets,
        pods,
        revisions,
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        recorder: ctx.recorder.clone(),
    });
    Controller { name: "statefulset", queue, reconciler, workers: ctx.config.workers }
}

fn strategy(set: &StatefulSet) -> Strategy {
    let u = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    match u.and_then(|u| u.type_.as_deref()) {
        Some("OnDelete") => Strategy::OnDelete,
        _ => Strategy::RollingUpdate {
            partition: u
                .and_then(|u| u.rolling_update.as_ref())
                .and_then(|r| r.partition)
                .unwrap_or(0),
        },
    }
}

#[async_trait]
impl Reconciler for StatefulSetController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(set) = self.sets.get(key) else { return Ok(Action::Done) };
        if set.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let uid = set.metadata.uid.clone().unwrap_or_default();
        self.adopt_orphans(&set).await?;
        let history =
            self.history(&set, controlled_by(self.revisions.owned_by(&uid), &uid)).await?;
        let pods = by_ordinal(&set, controlled_by(self.pods.owned_by(&uid), &uid));
        let spec = set.spec.clone().unwrap_or_default();
        let now = chrono::Utc::now();
        let inputs = Inputs {
            start: identity::start_ordinal(&set),
            replicas: identity::replicas(&set),
            ordered: spec.pod_management_policy.as_deref() != Some("Parallel"),
            strategy: strategy(&set),
            update_revision: history.update_name(),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            now,
            pods: &pods,
        };
        let acted = self.act(&set, &history, plan(&inputs)).await;
        // The status follows what was done, even when a step failed.
        let pods = by_ordinal(&set, controlled_by(self.pods.owned_by(&uid), &uid));
        let status = status::compute(&set, &pods, &history, now);
        if set.status.as_ref() != Some(&status) {
            let mut new = (*set).clone();
            new.status = Some(status);
            let stored = self.kube.update_status(&new).await?;
            self.sets.observe(stored);
        }
        acted?;
        self.release_claims(&set, &pods).await?;
        let in_use: BTreeSet<String> =
            pods.values().filter_map(|p| revision_of(p).map(str::to_owned)).collect();
        self.prune(&set, &history, controlled_by(self.revisions.owned_by(&uid), &uid), &in_use)
            .await?;
        // Pods ready but not yet available for minReadySeconds are looked at again then.
        let next = pods
            .values()
            .filter_map(|p| available_in(p, inputs.min_ready_seconds, chrono::Utc::now()))
            .min();
        Ok(next.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl StatefulSetController {
    /// Deletes `obj` if it is still the object decided about (a UID precondition); one
    /// already gone or replaced under its name is left alone.
    async fn delete_exact<K: Object>(
        &self,
        informer: &Informer<K>,
        obj: &K,
    ) -> Result<(), ApiError> {
        let key = ObjectKey::of(obj.metadata());
        let opts =
            DeleteOptions { precondition_uid: obj.metadata().uid.clone(), ..Default::default() };
        match self.kube.delete::<K>(key.ns(), &key.name, opts).await {
            Ok(Some(marked)) if marked.metadata().deletion_timestamp.is_some() => {
                informer.observe(marked)
            }
            Ok(Some(gone)) => informer.observe_deleted(&key, revision(gone.metadata())),
            Ok(None) => {}
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn act(
        &self,
        set: &StatefulSet,
        history: &History,
        steps: Vec<Step>,
    ) -> Result<(), ApiError> {
        for step in steps {
            match step {
                Step::Create { ordinal, from } => {
                    let (rev, name) = match from {
                        Which::Current => (&history.current, history.current_name()),
                        Which::Update => (&history.update, history.update_name()),
                    };
                    let template = template_of(rev)
                        .or_else(|| set.spec.as_ref().map(|s| s.template.clone()))
                        .unwrap_or_default();
                    self.ensure_claims(set, ordinal).await?;
                    let pod = new_pod(set, &template, ordinal, name);
                    self.pod_control.create(set, &pod).await?;
                    self.recorder.record(
                        set,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod_name(set, ordinal)),
                    );
                }
                Step::Delete { pod, why } => {
                    self.pod_control.delete(&pod).await?;
                    let name = pod.metadata.name.as_deref().unwrap_or_default();
                    let message = match why {
                        Why::Finished => format!("Deleted finished pod {name} to recreate it"),
                        Why::Condemned => format!("Deleted pod: {name}"),
                        Why::Outdated => format!(
                            "Deleted pod {name} to update it to revision {}",
                            history.update_name()
                        ),
                    };
                    self.recorder.record(set, EventType::Normal, "SuccessfulDelete", message);
                }
            }
        }
        Ok(())
    }
}
