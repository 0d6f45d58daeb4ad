//! The scheduler: watches pods without a node, runs the [`registry`]'s Filter and Score
//! [`plugins`] over its [`cache`] of nodes, assumes the pod onto the chosen node and binds it
//! through the binding subresource in the background; failures are explained in a
//! FailedScheduling event and retried from the [`queue`] when the cluster changes. A pod no
//! node can take may preempt lower-priority pods.

pub mod cache;
pub mod cycle;
pub mod framework;
pub mod matching;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod preemption;
pub mod queue;
pub mod registry;
pub mod resources;
#[cfg(test)]
mod scenarios;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::api::request::{DeleteOptions, PatchType};
use crate::api::resources::Subresource;
use crate::kube::events::EventType;
use crate::kube::{Change, EventRecorder, Informers, Kube, ObjectKey};
use cache::Cache;
use cycle::Outcome;
use pod_info::{Lookups, PodInfo};
use queue::{QueuedPod, SchedulingQueue};
use registry::Profile;

pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub name: String,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { name: DEFAULT_SCHEDULER.into(), bind_concurrency: 64 }
    }
}

/// Counters and latencies (a benchmark reads them).
#[derive(Default)]
pub struct SchedulerMetrics {
    pub scheduled: AtomicU64,
    pub unschedulable: AtomicU64,
    pub errors: AtomicU64,
    /// From taking the pod off the queue to its binding being stored.
    pub attempt_latency: Mutex<Vec<Duration>>,
    /// From the pod first entering the queue to its binding being stored.
    pub e2e_latency: Mutex<Vec<Duration>>,
}

pub struct Scheduler {
    kube: Kube,
    config: SchedulerConfig,
    profile: Profile,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    lookups: Lookups,
    recorder: EventRecorder,
    binds: Arc<Semaphore>,
    /// Preemptors waiting for their victims to go, with the node they were nominated to.
    nominated: Mutex<HashMap<ObjectKey, (String, Arc<PodInfo>)>>,
    pub metrics: SchedulerMetrics,
}

fn assigned(p: &Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty())
}

fn finished(p: &Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl Scheduler {
    /// Wires the scheduler to `informers` (start them after) and returns it with its loop.
    pub fn start(
        informers: &Arc<Informers>,
        config: SchedulerConfig,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let kube = informers.kube().named("default-scheduler");
        let pods = informers.get::<Pod>();
        let nodes = informers.get::<Node>();
        let lookups = Lookups {
            runtime_classes: informers.get::<RuntimeClass>(),
            namespaces: informers.get::<Namespace>(),
        };
        let s = Arc::new(Self {
            recorder: EventRecorder::new(kube.clone(), "default-scheduler"),
            binds: Arc::new(Semaphore::new(config.bind_concurrency.max(1))),
            kube,
            config,
            profile: registry::default_profile(),
            cache: Mutex::new(Cache::default()),
            queue: SchedulingQueue::default(),
            lookups,
            nominated: Mutex::new(HashMap::new()),
            metrics: SchedulerMetrics::default(),
        });
        let me = Arc::downgrade(&s);
        pods.on_change(move |c| {
            if let Some(s) = me.upgrade() {
                s.on_pod(c);
            }
        });
        let me = Arc::downgrade(&s);
        nodes.on_change(move |c| {
            let Some(s) = me.upgrade() else { return };
            match c {
                Change::Added(n) | Change::Updated { new: n, .. } => s.lock().set_node(n.clone()),
                Change::Deleted(n) => {
                    s.lock().remove_node(n.metadata.name.as_deref().unwrap_or(""))
                }
            }
            s.queue.move_all();
        });
        let me = Arc::downgrade(&s);
        s.lookups.runtime_classes.on_change(move |_| {
            if let Some(s) = me.upgrade() {
                s.queue.move_all();
            }
        });
        let (run, inf) = (s.clone(), informers.clone());
        let task = tokio::spawn(async move {
            inf.wait_synced().await;
            run.run().await
        });
        (s, task)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nominations(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, (String, Arc<PodInfo>)>> {
        self.nominated.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_pod(&self, c: &Change<Pod>) {
        let pod = c.object();
        let key = ObjectKey::of(&pod.metadata);
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        match (c, assigned(pod), nominated) {
            (Change::Deleted(_), _, _) | (_, Some(_), _) => {
                self.nominations().remove(&key);
            }
            (_, None, Some(node)) => {
                let info = Arc::new(pod_info::build(pod.clone(), &self.lookups));
                self.nominations().insert(key.clone(), (node, info));
            }
            _ => {}
        }
        match c {
            Change::Deleted(_) => {
                self.queue.delete(&key);
                if self.lock().remove_pod(&key).is_some() {
                    self.queue.move_all();
                }
            }
            _ => match assigned(pod) {
                Some(node) => {
                    self.queue.delete(&key);
                    if finished(pod) {
                        if self.lock().remove_pod(&key).is_some() {
                            self.queue.move_all();
                        }
                    } else {
                        let info = Arc::new(pod_info::build(pod.clone(), &self.lookups));
                        let was_terminating = matches!(c, Change::Updated { old, .. } if old.metadata.deletion_timestamp.is_some());
                        self.lock().place(info, node, false);
                        if pod.metadata.deletion_timestamp.is_some() && !was_terminating {
                            self.queue.move_all();
                        }
                    }
                }
                None => {
                    let ours = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.scheduler_name.as_deref())
                        .unwrap_or(DEFAULT_SCHEDULER)
                        == self.config.name;
                    if ours && pod.metadata.deletion_timestamp.is_none() && !finished(pod) {
                        self.queue.add_or_update(pod.clone());
                    } else {
                        self.queue.delete(&key);
                    }
                }
            },
        }
    }

    async fn run(self: Arc<Self>) {
        let mut start = 0usize;
        loop {
            let qp = self.queue.pop().await;
            self.schedule_one(qp, &mut start).await;
        }
    }

    async fn schedule_one(self: &Arc<Self>, qp: QueuedPod, start: &mut usize) {
        let began = Instant::now();
        let info = Arc::new(pod_info::build(qp.pod.clone(), &self.lookups));
        let outcome = {
            let cache = self.lock();
            let mut nominated = cycle::Nominated::new();
            for (node, p) in self.nominations().values() {
                nominated.entry(node.clone()).or_default().push(p.clone());
            }
            match cycle::schedule(&self.profile, &cache, &info, &nominated, start) {
                Outcome::Feasible(node) => Ok(node),
                Outcome::Unschedulable(d) => {
                    let plan = preemption::plan(&self.profile, &cache, &info);
                    if let Some(p) = &plan {
                        self.nominations().insert(qp.key.clone(), (p.node.clone(), info.clone()));
                    }
                    Err((d, plan))
                }
            }
        };
        match outcome {
            Ok(node) => {
                self.lock().place(info, &node, true);
                let permit = self.binds.clone().acquire_owned().await;
                let me = self.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    me.bind(qp, node, began).await;
                });
            }
            Err((diag, plan)) => {
                self.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
                let mut msg = diag.message();
                match plan {
                    Some(plan) => {
                        msg.push_str(&format!(
                            " preemption: evicting {} lower-priority pod(s) on node {}.",
                            plan.victims.len(),
                            plan.node
                        ));
                        self.preempt(&qp.pod, plan).await;
                    }
                    None if diag.nodes > 0 => msg.push_str(&format!(
                        " preemption: 0/{0} nodes are available: {0} No preemption victims found for incoming pod.",
                        diag.nodes
                    )),
                    None => {}
                }
                self.recorder.record(&*qp.pod, EventType::Warning, "FailedScheduling", msg.clone());
                self.mark_unschedulable(&qp.pod, &msg).await;
                self.queue.requeue(qp, true);
            }
        }
    }

    async fn bind(&self, qp: QueuedPod, node: String, began: Instant) {
        let ns = qp.key.namespace.clone().unwrap_or_default();
        let uid = qp.pod.metadata.uid.clone().unwrap_or_default();
        match self.kube.bind(&ns, &qp.key.name, &uid, &node).await {
            Ok(()) => {
                let now = Instant::now();
                self.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
                lock_vec(&self.metrics.attempt_latency).push(now - began);
                lock_vec(&self.metrics.e2e_latency).push(now - qp.first_seen);
                self.recorder.record(
                    &*qp.pod,
                    EventType::Normal,
                    "Scheduled",
                    format!("Successfully assigned {ns}/{} to {node}", qp.key.name),
                );
                self.queue.done(&qp.key);
            }
            Err(e) => {
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                tracing::info!("binding {} to {node}: {e}", qp.key);
                {
                    let mut cache = self.lock();
                    if cache.placed(&qp.key).is_some_and(|p| p.assumed) {
                        cache.remove_pod(&qp.key);
                    }
                }
                if e.code == 404 || e.message.contains("already assigned") {
                    self.queue.done(&qp.key);
                } else {
                    self.queue.requeue(qp, false);
                }
            }
        }
    }

    async fn preempt(&self, pod: &Pod, plan: preemption::Plan) {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        for v in &plan.victims {
            self.recorder.record(
                &*v.pod,
                EventType::Normal,
                "Preempted",
                format!(
                    "Preempted by pod {} on node {}",
                    pod.metadata.uid.as_deref().unwrap_or(""),
                    plan.node
                ),
            );
            let opts = DeleteOptions {
                precondition_uid: v.pod.metadata.uid.clone(),
                ..Default::default()
            };
            if let Err(e) = self.kube.delete::<Pod>(v.key.ns(), &v.key.name, opts).await {
                tracing::info!("preempting {}: {e}", v.key);
            }
        }
        let patch = json!({"status": {"nominatedNodeName": plan.node}});
        if let Err(e) = self
            .kube
            .patch::<Pod>(Some(&ns), &name, PatchType::Merge, patch, Some(Subresource::Status))
            .await
        {
            tracing::debug!("nominating {ns}/{name}: {e}");
        }
    }

    /// Sets the PodScheduled=False condition (once per distinct message).
    async fn mark_unschedulable(&self, pod: &Pod, msg: &str) {
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(msg)) {
            return;
        }
        let mut conditions: Vec<serde_json::Value> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ != "PodScheduled")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(json!({
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg,
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }));
        let ns = pod.metadata.namespace.clone();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({"status": {"conditions": conditions}});
        if let Err(e) = self
            .kube
            .patch::<Pod>(ns.as_deref(), &name, PatchType::Merge, patch, Some(Subresource::Status))
            .await
        {
            tracing::debug!("marking {name} unschedulable: {e}");
        }
    }

    /// Pods waiting for a node.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Nodes the scheduler knows.
    pub fn node_count(&self) -> usize {
        self.lock().nodes().iter().filter(|n| n.node.is_some()).count()
    }
}

fn lock_vec(m: &Mutex<Vec<Duration>>) -> std::sync::MutexGuard<'_, Vec<Duration>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
