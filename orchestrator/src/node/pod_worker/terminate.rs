//! Stopping a pod: for a deletion, the preStop hooks of its running containers (all at once,
//! within the grace period), then every container given the grace period to exit, the
//! sandbox, the pod's own directories, and finally telling the API the pod may go.

use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use super::{PodWorker, plan, spec};
use crate::api::request::DeleteOptions;
use crate::node::probe;

impl PodWorker {
    /// Carries out a graceful deletion of `pod`.
    pub(super) async fn terminate(&mut self, pod: &Pod) {
        let t = plan::termination(pod, &self.memory);
        self.pre_stop(pod, &t).await;
        self.teardown(t.grace).await;
        self.finish_deletion(pod).await;
    }

    /// Runs the preStop hooks of the running containers, all at once, within the grace.
    async fn pre_stop(&self, pod: &Pod, t: &plan::Termination) {
        let ip = self.memory.pod_ip();
        let runs = t.pre_stop.iter().filter_map(|(name, id)| {
            let c = spec::containers(pod).iter().find(|c| &c.name == name)?;
            let hook = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
            let mut cri = self.shared.cri.clone();
            Some(async move {
                if let Err(e) = probe::run_hook(hook, c, ip, &mut cri, id, t.grace).await {
                    tracing::info!(container = name, "preStop hook failed: {e}");
                }
            })
        });
        let _ = tokio::time::timeout(t.grace, futures_util::future::join_all(runs)).await;
    }

    /// Stops everything of the pod in the runtime, giving containers `grace` to exit.
    pub(super) async fn teardown(&mut self, grace: Duration) {
        let mut cri = self.shared.cri.clone();
        let timeout = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        for (name, r) in self.memory.containers.iter_mut() {
            if let Some(id) = r.id.take() {
                let req = cri::StopContainerRequest { container_id: id, timeout };
                if let Err(e) = cri.runtime.stop_container(req).await {
                    tracing::debug!("stopping container {name}: {e}");
                }
            }
        }
        if let Some(sb) = self.memory.sandbox.take() {
            let stop = cri::StopPodSandboxRequest { pod_sandbox_id: sb.id.clone() };
            if let Err(e) = cri.runtime.stop_pod_sandbox(stop).await {
                tracing::debug!("stopping sandbox {}: {e}", sb.id);
            }
            let remove = cri::RemovePodSandboxRequest { pod_sandbox_id: sb.id.clone() };
            if let Err(e) = cri.runtime.remove_pod_sandbox(remove).await {
                tracing::debug!("removing sandbox {}: {e}", sb.id);
            }
        }
        // emptyDirs, ConfigMap and Secret copies go with the pod (hostPath data stays).
        let dir = self.pod_dir();
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("removing {}: {e}", dir.display());
        }
        self.memory.volumes = None;
    }

    /// Completes a graceful deletion: the API removes the pod once its node says so.
    async fn finish_deletion(&self, pod: &Pod) {
        let (ns, name) = (spec::namespace(pod), spec::name(pod));
        let opts = DeleteOptions {
            grace_period: Some(0),
            precondition_uid: Some(self.uid.clone()),
            ..Default::default()
        };
        if let Err(e) = self.shared.kube.delete::<Pod>(Some(ns), name, opts).await {
            tracing::warn!("completing the deletion of {ns}/{name}: {e}");
        }
    }
}
