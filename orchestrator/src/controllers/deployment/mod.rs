//! Deployment: owns one ReplicaSet per pod template revision. The ReplicaSet whose template is
//! the Deployment's is the new one; a rollout moves replicas from the old ones to it (rolling
//! within maxSurge/maxUnavailable, or recreate), keeps `revisionHistoryLimit` old ones for
//! `kubectl rollout undo`, and reports the status and conditions `kubectl rollout status`
//! reads. Everything is derived from the ReplicaSets found each sync, so an interrupted
//! rollout continues after a restart.

mod history;
mod recreate;
mod rolling;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Context;
use super::common::{controlled_by, controller_of, owner_ref, template_hash};
use crate::api::ApiError;
use crate::kube::events::EventType;
use crate::kube::{
    Action, Change, Controller, EventRecorder, Informer, Kube, ObjectKey, Reconciler, WorkQueue,
};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub struct DeploymentController {
    kube: Kube,
    deployments: Arc<Informer<Deployment>>,
    sets: Arc<Informer<ReplicaSet>>,
    pods: Arc<Informer<Pod>>,
    recorder: EventRecorder,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let deployments = ctx.informers.get::<Deployment>();
    let sets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    let q = queue.clone();
    deployments.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    sets.on_change(super::common::enqueue_owner(&queue, "Deployment"));
    // Recreate waits for old pods to be gone.
    let (q, s) = (queue.clone(), sets.clone());
    pods.on_change(move |c| {
        let Change::Deleted(p) = c else { return };
        let Some(r) = controller_of(&p.metadata).filter(|r| r.kind == "ReplicaSet") else { return };
        let ns = p.metadata.namespace.as_deref();
        if let Some(rs) = s.get(&ObjectKey::new(ns, &r.name))
            && let Some(d) = controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")
        {
            q.add(ObjectKey::new(ns, &d.name));
        }
    });
    let reconciler = Arc::new(DeploymentController {
        kube: ctx.kube.named("deployment-controller"),
        deployments,
        sets,
        pods,
        recorder: ctx.recorder.clone(),
    });
    Controller { name: "deployment", queue, reconciler, workers: ctx.config.workers }
}

pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

pub fn revision(m: &ObjectMeta) -> i64 {
    m.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// A ReplicaSet's template as the Deployment wrote it (without the hash label).
fn unhashed(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// The annotations a Deployment passes on to its ReplicaSets.
fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    d.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != LAST_APPLIED && !k.starts_with("deployment.kubernetes.io/"))
        .collect()
}

/// The Deployment's view of its ReplicaSets in one sync.
pub struct Sets {
    pub new: Option<Arc<ReplicaSet>>,
    /// Oldest first.
    pub olds: Vec<Arc<ReplicaSet>>,
}

impl Sets {
    pub fn all(&self) -> Vec<Arc<ReplicaSet>> {
        self.olds.iter().cloned().chain(self.new.clone()).collect()
    }
}

pub fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// (maxSurge, maxUnavailable) resolved against the replica count.
pub fn surge_and_unavailable(d: &Deployment) -> (i32, i32) {
    let replicas = spec_replicas(d);
    let ru =
        d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let surge = super::common::scaled(ru.and_then(|r| r.max_surge.as_ref()), replicas, 1, true);
    let unavailable =
        super::common::scaled(ru.and_then(|r| r.max_unavailable.as_ref()), replicas, 0, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

#[async_trait]
impl Reconciler for DeploymentController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(d) = self.deployments.get(key) else { return Ok(Action::Done) };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut rss = controlled_by(self.sets.owned_by(&uid), &uid);
        rss.sort_by_key(|r| {
            (r.metadata.creation_timestamp.clone().map(|t| t.0), r.metadata.name.clone())
        });
        let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let (new, olds): (Vec<_>, Vec<_>) = rss.into_iter().partition(|rs| {
            rs.spec.as_ref().and_then(|s| s.template.as_ref()).map(unhashed)
                == Some(template.clone())
        });
        let sets = Sets { new: new.into_iter().next(), olds };
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let strategy =
            d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.clone());
        if paused {
            return self.sync_paused(&d, sets).await;
        }
        match strategy.as_deref() {
            Some("Recreate") => recreate::sync(self, &d, sets).await,
            _ => rolling::sync(self, &d, sets).await,
        }
    }
}

impl DeploymentController {
    /// A paused Deployment only follows scaling of its current ReplicaSet.
    async fn sync_paused(&self, d: &Deployment, sets: Sets) -> Result<Action, ApiError> {
        if let Some(new) = &sets.new
            && sets.olds.iter().all(|o| replicas(o) == 0)
        {
            self.scale(d, new, spec_replicas(d)).await?;
        }
        status::sync(self, d, &sets, false).await.map(|(a, _)| a)
    }

    /// Finds the ReplicaSet of the Deployment's template, bringing its revision up to date;
    /// creates it with `create` replicas when missing (None: don't create).
    async fn new_set(
        &self,
        d: &Deployment,
        sets: &mut Sets,
        create: Option<i32>,
    ) -> Result<bool, ApiError> {
        let next_revision = sets.olds.iter().map(|o| revision(&o.metadata)).max().unwrap_or(0) + 1;
        if let Some(rs) = &sets.new {
            let current = revision(&rs.metadata);
            if current < next_revision {
                // A rollback: the old template becomes the newest revision.
                let mut updated = (**rs).clone();
                let a = updated.metadata.annotations.get_or_insert_with(Default::default);
                let mut history: Vec<String> = a
                    .get(REVISION_HISTORY)
                    .map(|h| h.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                if current > 0 {
                    history.push(current.to_string());
                }
                a.insert(REVISION.into(), next_revision.to_string());
                if !history.is_empty() {
                    a.insert(REVISION_HISTORY.into(), history.join(","));
                }
                a.extend(copied_annotations(d));
                let stored = self.kube.update(&updated).await?;
                self.sets.observe(stored.clone());
                sets.new = Some(Arc::new(stored));
            }
            let rev = sets.new.as_ref().map(|r| revision(&r.metadata)).unwrap_or(0);
            self.set_deployment_revision(d, rev).await?;
            return Ok(false);
        }
        let Some(count) = create else { return Ok(false) };
        let spec = d.spec.clone().unwrap_or_default();
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collisions);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations = copied_annotations(d);
        annotations.insert(REVISION.into(), next_revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), spec_replicas(d).to_string());
        annotations.insert(
            MAX_REPLICAS.into(),
            (spec_replicas(d) + surge_and_unavailable(d).0).to_string(),
        );
        let name = format!("{}-{hash}", d.metadata.name.clone().unwrap_or_default());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![owner_ref(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(count),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let stored = match self.kube.create(&rs).await {
            Ok(s) => s,
            Err(e) if e.code == 409 => {
                // Ours but not yet seen, or a hash collision: look at what is there.
                let existing: Option<ReplicaSet> =
                    self.kube.get(d.metadata.namespace.as_deref(), &name).await?;
                match existing {
                    Some(x)
                        if controller_of(&x.metadata)
                            .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref()) =>
                    {
                        self.sets.observe(x);
                        return Err(ApiError::conflict(
                            crate::kube::typed::kind_of::<ReplicaSet>(),
                            &name,
                            "waiting to observe the new ReplicaSet",
                        ));
                    }
                    _ => return status::bump_collisions(self, d).await.and(Err(e)),
                }
            }
            Err(e) => return Err(e),
        };
        self.recorder.record(
            d,
            EventType::Normal,
            "ScalingReplicaSet",
            format!("Scaled up replica set {name} from 0 to {count}"),
        );
        self.sets.observe(stored.clone());
        sets.new = Some(Arc::new(stored));
        self.set_deployment_revision(d, next_revision).await?;
        Ok(true)
    }

    async fn set_deployment_revision(&self, d: &Deployment, rev: i64) -> Result<(), ApiError> {
        if revision(&d.metadata) == rev || rev == 0 {
            return Ok(());
        }
        let mut updated = d.clone();
        updated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REVISION.into(), rev.to_string());
        let stored = self.kube.update(&updated).await?;
        self.deployments.observe(stored);
        Ok(())
    }

    /// Sets a ReplicaSet's replicas (and its desired/max annotations); whether it changed.
    async fn scale(&self, d: &Deployment, rs: &ReplicaSet, to: i32) -> Result<bool, ApiError> {
        let from = replicas(rs);
        let desired = spec_replicas(d).to_string();
        let max = (spec_replicas(d) + surge_and_unavailable(d).0).to_string();
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        if from == to
            && a.get(DESIRED_REPLICAS) == Some(&desired)
            && a.get(MAX_REPLICAS) == Some(&max)
        {
            return Ok(false);
        }
        let mut updated = rs.clone();
        updated.spec.get_or_insert_with(Default::default).replicas = Some(to);
        let a = updated.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(DESIRED_REPLICAS.into(), desired);
        a.insert(MAX_REPLICAS.into(), max);
        let stored = self.kube.update(&updated).await?;
        self.sets.observe(stored);
        if from != to {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let dir = if to > from { "up" } else { "down" };
            self.recorder.record(
                d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {dir} replica set {name} from {from} to {to}"),
            );
        }
        Ok(from != to)
    }
}
