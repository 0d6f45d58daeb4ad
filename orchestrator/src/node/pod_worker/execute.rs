//! The executor: carries a plan's actions out through the CRI runtime and the API, in order,
//! and records their outcomes in the worker's memory. It decides nothing; when an action that
//! later ones depend on fails (the sandbox, the volumes), the rest of the plan waits for the
//! next sync.

use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Pod;

use super::action::{Action, PodEvent, SandboxChange};
use super::memory::{StartFailure, Waiting};
use super::observe::sandbox_status;
use super::plan::Plan;
use super::sandbox_config::sandbox_config;
use super::start::{StartContext, start};
use super::{PodWorker, spec};
use crate::node::volumes;

impl PodWorker {
    pub(super) async fn execute(&mut self, pod: &Pod, plan: Plan) {
        for action in plan.actions {
            let gate = action.is_gate();
            if !self.carry_out(pod, action).await && gate {
                return;
            }
        }
    }

    /// Carries out one action; false when it failed.
    async fn carry_out(&mut self, pod: &Pod, action: Action) -> bool {
        let mut cri = self.shared.cri.clone();
        match &action {
            Action::Forget { .. } | Action::RecordExit { .. } | Action::InitDone { .. } => {}
            Action::RemoveContainer { id } => {
                let req = cri::RemoveContainerRequest { container_id: id.clone() };
                if let Err(e) = cri.runtime.remove_container(req).await {
                    tracing::debug!("removing exited container {id}: {e}");
                }
            }
            Action::DropSandbox { id, why } => {
                if let SandboxChange::HandlerChanged { .. } = why {
                    // Still running: stop it first.
                    let req = cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() };
                    if let Err(e) = cri.runtime.stop_pod_sandbox(req).await {
                        tracing::debug!("stopping sandbox {id}: {e}");
                    }
                }
                let req = cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() };
                if let Err(e) = cri.runtime.remove_pod_sandbox(req).await {
                    tracing::debug!("removing sandbox {id}: {e}");
                }
            }
            Action::CreateSandbox { handler, attempt } => {
                return self.create_sandbox(pod, handler, *attempt).await;
            }
            Action::SandboxBlocked { message } => {
                self.memory.pod_waiting = Some(Waiting::new("CreatePodSandboxError", message));
                let event = PodEvent::warning("FailedCreatePodSandBox", message.clone()).once();
                self.events.record(pod, event).await;
                return false;
            }
            Action::PrepareVolumes => return self.prepare_volumes(pod).await,
            Action::Start { container, .. } => self.start(pod, container).await,
            Action::Kill { id, grace, .. } => {
                let timeout = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
                let req = cri::StopContainerRequest { container_id: id.clone(), timeout };
                if let Err(e) = cri.runtime.stop_container(req).await {
                    tracing::info!("killing container {id}: {e}");
                }
            }
            Action::Event(event) => self.events.record(pod, event.clone()).await,
        }
        self.memory.apply(&action);
        true
    }

    async fn create_sandbox(&mut self, pod: &Pod, handler: &str, attempt: u32) -> bool {
        let mut cri = self.shared.cri.clone();
        let shared = &self.shared;
        let config = sandbox_config(
            pod,
            &self.uid,
            attempt,
            &shared.log_dir,
            shared.dns_server.get().copied(),
        );
        let req =
            cri::RunPodSandboxRequest { config: Some(config), runtime_handler: handler.to_owned() };
        match cri.runtime.run_pod_sandbox(req).await {
            Ok(r) => {
                let id = r.into_inner().pod_sandbox_id;
                let status = sandbox_status(&mut cri, &id).await;
                let ip = status.and_then(|s| s.network).and_then(|n| n.ip.parse().ok());
                self.memory.sandbox_created(id, ip);
                true
            }
            Err(e) => {
                let msg = format!("Failed to create pod sandbox: {}", e.message());
                self.memory.pod_waiting = Some(Waiting::new("CreatePodSandboxError", &msg));
                self.memory.sandbox_failed(std::time::Instant::now());
                let event = PodEvent::warning("FailedCreatePodSandBox", msg).once();
                self.events.record(pod, event).await;
                false
            }
        }
    }

    /// Where this pod's volumes live on the host.
    pub(super) fn pod_dir(&self) -> std::path::PathBuf {
        self.shared.root_dir.join("pods").join(&self.uid)
    }

    async fn prepare_volumes(&mut self, pod: &Pod) -> bool {
        let dir = self.pod_dir().join("volumes");
        match volumes::prepare(&self.shared.kube, pod, &dir).await {
            Ok(v) => {
                self.memory.volumes_prepared(v);
                true
            }
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                self.memory.pod_waiting = Some(Waiting::new("ContainerCreating", &msg));
                self.events.record(pod, PodEvent::warning("FailedMount", msg).once()).await;
                false
            }
        }
    }

    async fn start(&mut self, pod: &Pod, name: &str) {
        let Some(c) = spec::container_named(pod, name) else { return };
        let c = &c;
        let Some(sandbox) = self.memory.sandbox.clone() else { return };
        let no_volumes = Default::default();
        // An ephemeral container joins its target's PID namespace: the target's current run.
        let pid_target = match spec::target_container(pod, name) {
            Some(target) => match self.memory.container(&target).and_then(|r| r.id.clone()) {
                Some(id) => Some(id),
                None => {
                    let msg = format!("cannot find target container {target:?}: it is not running");
                    let failure =
                        StartFailure::Setup(Waiting::new("CreateContainerConfigError", msg));
                    self.memory.start_failed(name, failure, Instant::now());
                    return;
                }
            },
            None => None,
        };
        let cx = StartContext {
            pid_target,
            shared: &self.shared,
            uid: &self.uid,
            sandbox: &sandbox.id,
            pod_ip: sandbox.ip,
            volumes: self.memory.volumes.as_ref().unwrap_or(&no_volumes),
            attempt: self.memory.container(name).map(|r| r.restarts).unwrap_or(0),
            sandbox_config: sandbox_config(
                pod,
                &self.uid,
                self.memory.sandbox_attempt,
                &self.shared.log_dir,
                self.shared.dns_server.get().copied(),
            ),
        };
        match start(&cx, pod, c, &mut self.events).await {
            Ok(id) => self.memory.container_started(c, id, Instant::now()),
            Err(failure) => self.memory.start_failed(name, failure, Instant::now()),
        }
    }
}
