//! Taking over what an earlier agent left in the runtime for this pod: its ready sandbox and
//! the containers in it (the newest run of each), so that a restarted agent neither restarts
//! running containers nor loses their restart counts. Sandboxes that are no longer ready are
//! removed.

use k8s_cri::v1 as cri;

use super::PodWorker;
use super::labels::{LABEL_CONTAINER, LABEL_POD_UID};
use super::memory::SandboxRecord;
use super::observe::sandbox_status;

impl PodWorker {
    pub(super) async fn adopt(&mut self) {
        let mut cri = self.shared.cri.clone();
        let filter = cri::PodSandboxFilter {
            label_selector: [(LABEL_POD_UID.to_string(), self.uid.clone())].into(),
            ..Default::default()
        };
        let listed =
            cri.runtime.list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) }).await;
        let Ok(list) = listed else { return };
        for sb in list.into_inner().items {
            let ready = sb.state == cri::PodSandboxState::SandboxReady as i32;
            if ready && self.memory.sandbox.is_none() {
                let ip = sandbox_status(&mut cri, &sb.id)
                    .await
                    .and_then(|s| s.network)
                    .and_then(|n| n.ip.parse().ok());
                self.memory.sandbox = Some(SandboxRecord { id: sb.id.clone(), ip });
                self.memory.sandbox_attempt = sb.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                let filter =
                    cri::ContainerFilter { pod_sandbox_id: sb.id.clone(), ..Default::default() };
                let req = cri::ListContainersRequest { filter: Some(filter) };
                if let Ok(cs) = cri.runtime.list_containers(req).await {
                    for c in cs.into_inner().containers {
                        let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
                        let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                        self.memory.adopt_container(&name, c.id, attempt);
                    }
                }
            } else {
                let id = sb.id;
                let stop = cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() };
                if let Err(e) = cri.runtime.stop_pod_sandbox(stop).await {
                    tracing::debug!("stopping a stale sandbox {id}: {e}");
                }
                let remove = cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() };
                if let Err(e) = cri.runtime.remove_pod_sandbox(remove).await {
                    tracing::debug!("removing a stale sandbox {id}: {e}");
                }
            }
        }
    }
}
