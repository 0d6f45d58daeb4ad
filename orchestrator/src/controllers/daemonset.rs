//! DaemonSet: one pod on every node that should run it (node selector, required node
//! affinity, tolerated taints), pinned there by node affinity and placed by the scheduler;
//! RollingUpdate replaces pods of an older template node by node within maxUnavailable.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};

use super::Context;
use super::common::{
    controlled_by, deletion_order, enqueue_owner, is_active, is_available, is_ready, owner_ref,
    pod_from_template, scaled, template_hash,
};
use super::pod_control::PodControl;
use crate::api::ApiError;
use crate::kube::{Action, Change, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};
use crate::scheduler::matching::{node_labels, term_matches, tolerated};

pub const REVISION_HASH: &str = "controller-revision-hash";

pub struct DaemonSetController {
    kube: Kube,
    sets: Arc<Informer<DaemonSet>>,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    pod_control: PodControl,
}

pub fn controller(ctx: &Context) -> Controller {
    let queue = WorkQueue::new();
    let sets = ctx.informers.get::<DaemonSet>();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let q = queue.clone();
    sets.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    pods.on_change(enqueue_owner(&queue, "DaemonSet"));
    let (q, s) = (queue.clone(), sets.clone());
    nodes.on_change(move |c| {
        let relevant = match c {
            Change::Updated { old, new } => {
                old.metadata.labels != new.metadata.labels
                    || old.spec.as_ref().map(|s| &s.taints) != new.spec.as_ref().map(|s| &s.taints)
            }
            _ => true,
        };
        if relevant {
            for ds in s.list() {
                q.add(ObjectKey::of(&ds.metadata));
            }
        }
    });
    let kube = ctx.kube.named("daemon-set-controller");
    let reconciler = Arc::new(DaemonSetController {
        pod_control: PodControl::new(kube.clone(), pods.clone(), ctx.recorder.clone()),
        kube,
        sets,
        pods,
        nodes,
    });
    Controller { name: "daemonset", queue, reconciler, workers: ctx.config.workers }
}

/// The tolerations Kubernetes gives every daemon pod: it stays through node trouble.
fn daemon_tolerations(mut t: Vec<Toleration>) -> Vec<Toleration> {
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        if !t.iter().any(|x| x.key.as_deref() == Some(key) && x.effect.as_deref() == Some(effect)) {
            t.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            });
        }
    }
    t
}

/// Whether a daemon pod from `template` belongs on `node`.
fn should_run(template: &PodTemplateSpec, node: &Node) -> bool {
    let spec = template.spec.clone().unwrap_or_default();
    let labels = node_labels(node);
    let name = node.metadata.name.clone().unwrap_or_default();
    if !spec.node_selector.unwrap_or_default().iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    if let Some(sel) = required
        && !sel.node_selector_terms.iter().any(|t| term_matches(t, &name, &labels))
    {
        return false;
    }
    let tolerations = daemon_tolerations(spec.tolerations.unwrap_or_default());
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|t| tolerated(&tolerations, t))
}

/// The daemon pod's template for one node: pinned there by required node affinity.
fn for_node(template: &PodTemplateSpec, hash: &str, node: &str) -> PodTemplateSpec {
    let mut t = template.clone();
    t.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default)
        .insert(REVISION_HASH.into(), hash.into());
    let spec = t.spec.get_or_insert_with(Default::default);
    spec.tolerations = Some(daemon_tolerations(spec.tolerations.clone().unwrap_or_default()));
    let pin = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution =
        Some(NodeSelector { node_selector_terms: vec![pin] });
    t
}

/// The node a daemon pod is for: where it runs, or where its affinity pins it.
fn target_node(p: &Pod) -> Option<String> {
    let spec = p.spec.as_ref()?;
    if let Some(n) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

fn hash_of(p: &Pod) -> Option<&str> {
    p.metadata.labels.as_ref()?.get(REVISION_HASH).map(String::as_str)
}

#[async_trait]
impl Reconciler for DaemonSetController {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(ds) = self.sets.get(key) else { return Ok(Action::Done) };
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let ns = key.namespace.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let spec = ds.spec.clone().unwrap_or_default();
        let hash =
            template_hash(&spec.template, ds.status.as_ref().and_then(|s| s.collision_count));
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let now = chrono::Utc::now();
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for p in controlled_by(self.pods.owned_by(&uid), &uid) {
            if let Some(n) = target_node(&p) {
                by_node.entry(n).or_default().push(p);
            }
        }
        let nodes = self.nodes.list();
        let mut create = Vec::new();
        let mut delete: Vec<Arc<Pod>> = Vec::new();
        let mut wanted = Vec::new();
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let pods = by_node.remove(&name).unwrap_or_default();
            let (failed, mut live): (Vec<_>, Vec<_>) = pods
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .partition(|p| super::common::phase(p) == "Failed");
            delete.extend(failed);
            if should_run(&spec.template, node) {
                wanted.push(name.clone());
                if live.is_empty() {
                    create.push(name);
                } else if live.len() > 1 {
                    live.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
                    delete.extend(live.split_off(1));
                }
            } else {
                delete.extend(live);
            }
        }
        // Pods for nodes that are gone.
        delete.extend(
            by_node.into_values().flatten().filter(|p| p.metadata.deletion_timestamp.is_none()),
        );

        // Rolling update: old pods go within the unavailability budget.
        let rolling =
            spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("OnDelete");
        if rolling && create.is_empty() {
            let ru = spec.update_strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
            let max_unavailable =
                scaled(ru.and_then(|r| r.max_unavailable.as_ref()), wanted.len() as i32, 1, false)
                    .max(1);
            let mut olds: Vec<Arc<Pod>> = Vec::new();
            let mut unavailable = 0;
            for n in &wanted {
                let Some(p) = self.current_pod(&uid, n) else {
                    unavailable += 1;
                    continue;
                };
                let available = is_available(&p, min_ready, now);
                if !available {
                    unavailable += 1;
                }
                if hash_of(&p) != Some(hash.as_str()) {
                    if !available {
                        delete.push(p);
                    } else {
                        olds.push(p);
                    }
                }
            }
            deletion_order(&mut olds);
            let budget = (max_unavailable - unavailable).max(0) as usize;
            delete.extend(olds.into_iter().take(budget));
        }

        for node in &create {
            let template = for_node(&spec.template, &hash, node);
            let pod = pod_from_template(&template, &ns, &format!("{}-", key.name), owner_ref(&*ds));
            self.pod_control.create(&*ds, &pod).await?;
        }
        for p in &delete {
            self.pod_control.delete(p).await?;
        }
        self.update_status(&ds, &uid, &wanted, &hash, min_ready).await
    }
}

impl DaemonSetController {
    /// The live (not terminating) daemon pod for `node`.
    fn current_pod(&self, uid: &str, node: &str) -> Option<Arc<Pod>> {
        controlled_by(self.pods.owned_by(uid), uid).into_iter().find(|p| {
            p.metadata.deletion_timestamp.is_none() && target_node(p).as_deref() == Some(node)
        })
    }

    async fn update_status(
        &self,
        ds: &DaemonSet,
        uid: &str,
        wanted: &[String],
        hash: &str,
        min_ready: i32,
    ) -> Result<Action, ApiError> {
        let now = chrono::Utc::now();
        let pods: Vec<Arc<Pod>> = controlled_by(self.pods.owned_by(uid), uid)
            .into_iter()
            .filter(|p| is_active(p))
            .collect();
        let on = |n: &String| {
            pods.iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(n))
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut status = DaemonSetStatus {
            desired_number_scheduled: wanted.len() as i32,
            observed_generation: ds.metadata.generation,
            collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
            ..Default::default()
        };
        let (mut ready, mut available, mut updated, mut current) = (0, 0, 0, 0);
        for n in wanted {
            let here = on(n);
            if let Some(p) = here.first() {
                current += 1;
                ready += i32::from(is_ready(p));
                available += i32::from(is_available(p, min_ready, now));
                updated += i32::from(hash_of(p) == Some(hash));
            }
        }
        let scheduled: std::collections::HashSet<&String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()))
            .collect();
        status.number_misscheduled =
            scheduled.iter().filter(|n| !wanted.contains(n)).count() as i32;
        status.current_number_scheduled = current;
        status.number_ready = ready;
        status.number_available = Some(available);
        status.number_unavailable = Some(wanted.len() as i32 - available);
        status.updated_number_scheduled = Some(updated);
        if ds.status.as_ref() != Some(&status) {
            let mut new = ds.clone();
            new.status = Some(status);
            let stored = self.kube.update_status(&new).await?;
            self.sets.observe(stored);
        }
        let pending =
            pods.iter().filter_map(|p| super::common::available_in(p, min_ready, now)).min();
        Ok(pending.map_or(Action::Done, Action::RequeueAfter))
    }
}
