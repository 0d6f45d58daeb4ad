//! What the runtime shows of a pod at the start of a sync (its sandbox, the current run of
//! each container) and the handler its RuntimeClass names: the planner's view of the world.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;

use super::memory::PodMemory;
use super::spec;
use crate::node::Shared;
use crate::node::cri_client::Cri;
use crate::node::error::NodeError;

/// The runtime's view of the pod's sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxSeen {
    Ready {
        /// The runtime handler it runs under (empty when the runtime does not say).
        handler: String,
    },
    /// Not ready, or unknown to the runtime.
    NotReady,
}

/// A container's state in the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One run of a container, as the runtime reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRun {
    pub id: String,
    pub state: RunState,
    pub exit_code: i32,
    /// The runtime's reason for the exit (e.g. OOMKilled), if any.
    pub reason: String,
    /// Nanoseconds since the epoch.
    pub started_at: i64,
    pub finished_at: i64,
}

impl ContainerRun {
    pub fn from_cri(s: &cri::ContainerStatus) -> ContainerRun {
        let state = match cri::ContainerState::try_from(s.state) {
            Ok(cri::ContainerState::ContainerCreated) => RunState::Created,
            Ok(cri::ContainerState::ContainerRunning) => RunState::Running,
            Ok(cri::ContainerState::ContainerExited) => RunState::Exited,
            _ => RunState::Unknown,
        };
        ContainerRun {
            id: s.id.clone(),
            state,
            exit_code: s.exit_code,
            reason: s.reason.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

/// The runtime handler the pod's RuntimeClass names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerLookup {
    Found(String),
    /// The pod cannot run here; the text says why (shown as the sandbox's failure).
    Failed(String),
}

/// Everything the planner knows of the world outside the worker, for one sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The sandbox the worker has, as the runtime sees it (None: the worker has none).
    pub sandbox: Option<SandboxSeen>,
    /// The runtime handler the pod's RuntimeClass names, when it had to be resolved (no
    /// usable sandbox yet, or one not checked since it was adopted).
    pub handler: Option<HandlerLookup>,
    /// The current run of each container the worker has one for, by container name. A run
    /// missing here is unknown to the runtime.
    pub containers: HashMap<String, ContainerRun>,
    /// Containers whose readiness probe turned to failing in this sync, with why.
    pub readiness_failed: HashMap<String, String>,
}

/// The runtime's status of container `id`, if it knows it.
pub async fn container_run(cri: &mut Cri, id: &str) -> Option<ContainerRun> {
    let req = cri::ContainerStatusRequest { container_id: id.to_owned(), verbose: false };
    let status = cri.runtime.container_status(req).await.ok()?.into_inner().status?;
    Some(ContainerRun::from_cri(&status))
}

/// The sandbox's status; None when the runtime does not answer for it.
pub async fn sandbox_status(cri: &mut Cri, id: &str) -> Option<cri::PodSandboxStatus> {
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: id.to_owned(), verbose: false };
    cri.runtime.pod_sandbox_status(req).await.ok()?.into_inner().status
}

/// The runtime handler for the pod's RuntimeClass (the node's default without one).
pub async fn handler(shared: &Shared, pod: &Pod) -> Result<String, NodeError> {
    let class = pod.spec.as_ref().and_then(|s| s.runtime_class_name.as_deref()).unwrap_or("");
    if class.is_empty() {
        return Ok(shared.default_handler.clone());
    }
    let refused = |why: String| NodeError::RuntimeClass(why);
    let handler = match shared.kube.get::<RuntimeClass>(None, class).await {
        Ok(Some(rc)) => rc.handler,
        Ok(None) => return Err(refused(format!("RuntimeClass \"{class}\" not found"))),
        Err(e) => return Err(refused(format!("reading RuntimeClass \"{class}\": {e}"))),
    };
    if !shared.handlers.contains(&handler) {
        return Err(refused(format!(
            "RuntimeClass \"{class}\" names handler {handler:?}, which this node does not run"
        )));
    }
    Ok(handler)
}

/// Looks at the runtime (and, when needed, the RuntimeClass) for one sync.
pub async fn observe(shared: &Shared, pod: &Pod, memory: &PodMemory) -> Observed {
    let mut cri = shared.cri.clone();
    let mut seen = Observed::default();
    if let Some(sb) = &memory.sandbox {
        let status = sandbox_status(&mut cri, &sb.id).await;
        seen.sandbox = Some(match status {
            Some(s) if s.state == cri::PodSandboxState::SandboxReady as i32 => {
                SandboxSeen::Ready { handler: s.runtime_handler }
            }
            _ => SandboxSeen::NotReady,
        });
    }
    let usable = matches!(seen.sandbox, Some(SandboxSeen::Ready { .. }));
    if !usable || !memory.handler_checked {
        seen.handler = Some(match handler(shared, pod).await {
            Ok(h) => HandlerLookup::Found(h),
            Err(e) => HandlerLookup::Failed(e.to_string()),
        });
    }
    if usable {
        let ephemeral = spec::ephemeral_containers(pod);
        let names = spec::init_containers(pod)
            .iter()
            .chain(spec::containers(pod))
            .chain(&ephemeral)
            .map(|c| &c.name);
        for name in names {
            let Some(id) = memory.container(name).and_then(|r| r.id.as_deref()) else { continue };
            if let Some(run) = container_run(&mut cri, id).await {
                seen.containers.insert(name.clone(), run);
            }
        }
    }
    seen
}
