//! One pod on this node: a level-triggered loop that makes the runtime match the pod's spec
//! and reports its status. Each sync observes ([`observe`], [`probing`]), decides
//! ([`plan`], pure) and carries the decisions out ([`execute`], [`start`]), then reports
//! ([`status`], pure, written by [`report`]). A pod being deleted is stopped through
//! [`terminate`]; runtime objects left by an earlier agent are taken over by [`adopt`].
//!
//! - [`action`]: the planner's vocabulary; [`memory`]: what the worker remembers between
//!   syncs; [`backoff`]: CrashLoopBackOff timing; [`spec`]: reading the typed Pod.
//! - [`sandbox_config`], [`container_config`], [`image`], [`labels`]: what the runtime is
//!   asked for; [`events`]: the Events the kubelet records.

pub mod action;
pub mod adopt;
pub mod backoff;
pub mod container_config;
pub mod events;
pub mod execute;
pub mod image;
pub mod labels;
pub mod memory;
pub mod observe;
pub mod plan;
pub mod probing;
pub mod report;
pub mod sandbox_config;
pub mod spec;
pub mod start;
pub mod status;
pub mod terminate;

#[cfg(test)]
mod plan_tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;

pub use labels::{LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};

use super::Shared;
use super::error::NodeError;
use memory::PodMemory;

/// How often a pod is synced when nothing about it changes.
const TICK: Duration = Duration::from_millis(500);
/// How long a deleted pod's worker waits for the API to let go of it.
const DELETION_WAIT: Duration = Duration::from_secs(5);

pub struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    memory: PodMemory,
    events: events::Recorder,
    /// The last status written, without its timestamps.
    last_status: Option<PodStatus>,
}

impl PodWorker {
    pub fn new(shared: Arc<Shared>, uid: String) -> PodWorker {
        let events = events::Recorder::new(shared.kube.clone(), &shared.node);
        PodWorker {
            shared,
            uid,
            memory: PodMemory::new(Time(chrono::Utc::now())),
            events,
            last_status: None,
        }
    }

    /// Runs until the pod is gone from the API and its runtime objects are removed.
    pub async fn run(mut self, mut pod_rx: watch::Receiver<Option<Arc<Pod>>>) {
        self.adopt().await;
        if self.memory.sandbox.is_none()
            && let Some(pod) = pod_rx.borrow().clone()
        {
            self.memory.carry_over(&pod, Time(chrono::Utc::now()));
        }
        loop {
            let pod = pod_rx.borrow_and_update().clone();
            match pod {
                None => {
                    self.teardown(Duration::ZERO).await;
                    return;
                }
                Some(p) if spec::is_deleted(&p) => {
                    self.terminate(&p).await;
                    // Wait for the API to drop it (the watch delivers None).
                    let _ = tokio::time::timeout(DELETION_WAIT, pod_rx.changed()).await;
                    if pod_rx.borrow().is_none() || pod_rx.has_changed().is_err() {
                        return;
                    }
                    continue;
                }
                Some(p) => {
                    if let Err(e) = self.sync(&p).await {
                        tracing::warn!(pod = spec::name(&p), "sync: {e}");
                    }
                }
            }
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() {
                    // The agent dropped the worker: nothing will tell it about the pod again.
                    self.teardown(Duration::ZERO).await;
                    return;
                },
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One pass: observe, decide, act, report.
    async fn sync(&mut self, pod: &Pod) -> Result<(), NodeError> {
        let mut seen = observe::observe(&self.shared, pod, &self.memory).await;
        let mut cri = self.shared.cri.clone();
        probing::run_due(pod, &mut self.memory, &mut seen, &mut cri).await;
        let plan = plan::plan(pod, &seen, &self.memory, Instant::now());
        if matches!(seen.handler, Some(observe::HandlerLookup::Found(_))) {
            // Kept, or about to be replaced by one made with it.
            self.memory.handler_checked = true;
        }
        self.execute(pod, plan).await;
        self.report(pod).await
    }
}
