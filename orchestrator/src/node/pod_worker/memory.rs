//! What a pod's worker remembers between syncs, beyond what the runtime can tell it: restart
//! counts, back-off, the last termination, probe verdicts, the sandbox and volumes it made.
//! Every change is a pure function here, so the planner can look ahead on a copy and the
//! executor records outcomes the same way.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::action::{Action, AfterExit};
use super::backoff;
use crate::node::probe::ProbeState;

/// Why a container (or the whole pod) is waiting, as the API's `state.waiting` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

impl Waiting {
    pub fn new(reason: &str, message: impl Into<String>) -> Waiting {
        Waiting { reason: reason.into(), message: message.into() }
    }
}

/// The verdicts of a container's probes during its current run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probes {
    /// Until it succeeds, liveness and readiness wait and the container is not `started`.
    pub startup: Option<ProbeState>,
    pub liveness: Option<ProbeState>,
    pub readiness: Option<ProbeState>,
}

impl Probes {
    /// Fresh probes for a run that starts at `now`.
    pub fn for_run(c: &Container, now: Instant) -> Probes {
        Probes {
            startup: c.startup_probe.as_ref().map(|p| ProbeState::new(p, false, now)),
            liveness: c.liveness_probe.as_ref().map(|p| ProbeState::new(p, true, now)),
            readiness: c.readiness_probe.as_ref().map(|p| ProbeState::new(p, false, now)),
        }
    }

    /// Started: no startup probe, or it has succeeded.
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|p| p.ok)
    }

    /// Ready: started, and no readiness probe or it succeeds.
    pub fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(|p| p.ok)
    }
}

/// One container of the pod, across its runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerRecord {
    /// The runtime's id of the current run.
    pub id: Option<String>,
    pub restarts: u32,
    /// The last termination, as the API's `lastState.terminated`.
    pub last_terminated: Option<ContainerStateTerminated>,
    /// Why the last start failed, until one succeeds.
    pub waiting: Option<Waiting>,
    pub backoff: Duration,
    pub retry_at: Option<Instant>,
    pub started: Option<Instant>,
    pub probes: Probes,
    /// Finished for good (the restart policy says no more runs).
    pub done: bool,
}

impl ContainerRecord {
    /// Whether the container should be (re)started at `now`.
    pub fn due(&self, now: Instant) -> bool {
        !self.done && self.id.is_none() && self.retry_at.is_none_or(|r| now >= r)
    }
}

/// The pod's sandbox as the worker made or adopted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRecord {
    pub id: String,
    pub ip: Option<IpAddr>,
}

/// How a start failed, which decides when it is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// The container could not be set up (image, environment, mounts, create): retried after
    /// the initial back-off, not counted as a restart.
    Setup(Waiting),
    /// The runtime could not start its process: counted as a run, backed off like a crash.
    Run(Waiting),
}

#[derive(Clone, Debug, PartialEq)]
pub struct PodMemory {
    pub sandbox: Option<SandboxRecord>,
    /// The attempt number of the next (or current) sandbox.
    pub sandbox_attempt: u32,
    /// After a failed sandbox creation: not before this instant, and the back-off after the
    /// next failure.
    pub sandbox_retry_at: Option<Instant>,
    pub sandbox_backoff: Duration,
    /// Whether the current sandbox's handler was checked against the pod's RuntimeClass.
    pub handler_checked: bool,
    /// Why nothing of the pod runs yet (sandbox or volumes), shown for containers not tried.
    pub pod_waiting: Option<Waiting>,
    /// Volume name -> host path, once prepared.
    pub volumes: Option<HashMap<String, PathBuf>>,
    pub containers: BTreeMap<String, ContainerRecord>,
    /// How many init containers have succeeded.
    pub init_done: usize,
    /// When the worker took the pod on (the API's `startTime`).
    pub start_time: Time,
}

impl PodMemory {
    pub fn new(start_time: Time) -> PodMemory {
        PodMemory {
            sandbox: None,
            sandbox_attempt: 0,
            sandbox_retry_at: None,
            sandbox_backoff: Duration::ZERO,
            handler_checked: false,
            pod_waiting: None,
            volumes: None,
            containers: BTreeMap::new(),
            init_done: 0,
            start_time,
        }
    }

    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.get(name)
    }

    fn record(&mut self, name: &str) -> &mut ContainerRecord {
        self.containers.entry(name.to_owned()).or_default()
    }

    /// Whether container `name` should be (re)started at `now`.
    pub fn due(&self, name: &str, now: Instant) -> bool {
        self.containers.get(name).is_none_or(|r| r.due(now))
    }

    pub fn pod_ip(&self) -> Option<IpAddr> {
        self.sandbox.as_ref().and_then(|s| s.ip)
    }

    /// Records a bookkeeping action (the others change nothing here).
    pub fn apply(&mut self, action: &Action) {
        match action {
            Action::Forget { container } => self.record(container).id = None,
            Action::RecordExit { container, terminated, next } => {
                let r = self.record(container);
                r.last_terminated = Some(terminated.clone());
                r.id = None;
                r.probes = Probes::default();
                match *next {
                    AfterExit::Done => r.done = true,
                    AfterExit::Restart { retry_at, backoff } => {
                        r.retry_at = retry_at;
                        r.backoff = backoff;
                        r.restarts += 1;
                    }
                }
            }
            Action::InitDone { .. } => self.init_done += 1,
            Action::DropSandbox { .. } => {
                self.sandbox = None;
                self.sandbox_attempt += 1;
                self.handler_checked = false;
                // Whatever ran in it ended with it.
                for r in self.containers.values_mut() {
                    if r.id.take().is_some() && !r.done {
                        r.restarts += 1;
                    }
                }
            }
            Action::RemoveContainer { .. }
            | Action::CreateSandbox { .. }
            | Action::SandboxBlocked { .. }
            | Action::PrepareVolumes
            | Action::Start { .. }
            | Action::Kill { .. }
            | Action::Event(_) => {}
        }
    }

    pub fn sandbox_created(&mut self, id: String, ip: Option<IpAddr>) {
        self.sandbox = Some(SandboxRecord { id, ip });
        self.sandbox_retry_at = None;
        self.sandbox_backoff = Duration::ZERO;
        self.handler_checked = true;
        self.pod_waiting = None;
    }

    /// The runtime refused to make a sandbox at `now`: the next try waits (as the kubelet's
    /// pod worker does), rather than following at once the status write that reports it.
    pub fn sandbox_failed(&mut self, now: Instant) {
        self.sandbox_backoff = backoff::after_sandbox_failure(self.sandbox_backoff);
        self.sandbox_retry_at = Some(now + self.sandbox_backoff);
    }

    pub fn volumes_prepared(&mut self, volumes: HashMap<String, PathBuf>) {
        self.volumes = Some(volumes);
        // A volume error no longer holds the pod.
        if self.pod_waiting.as_ref().is_some_and(|w| w.reason == "ContainerCreating") {
            self.pod_waiting = None;
        }
    }

    /// Container `c` runs as `id` since `now`.
    pub fn container_started(&mut self, c: &Container, id: String, now: Instant) {
        let r = self.record(&c.name);
        r.id = Some(id);
        r.waiting = None;
        r.started = Some(now);
        r.probes = Probes::for_run(c, now);
    }

    /// Container `name` could not be started at `now`.
    pub fn start_failed(&mut self, name: &str, failure: StartFailure, now: Instant) {
        let r = self.record(name);
        match failure {
            StartFailure::Setup(w) => {
                r.waiting = Some(w);
                r.retry_at = Some(now + backoff::START);
            }
            StartFailure::Run(w) => {
                r.waiting = Some(w);
                r.backoff = backoff::after_start_failure(r.backoff);
                r.retry_at = Some(now + r.backoff);
                r.restarts += 1;
            }
        }
    }

    /// A container of an earlier agent's sandbox: the newest attempt of each name is current.
    pub fn adopt_container(&mut self, name: &str, id: String, attempt: u32) {
        let r = self.record(name);
        if r.id.is_none() || attempt >= r.restarts {
            r.id = Some(id);
            r.restarts = attempt;
        }
    }

    /// A pod the API says ran here but whose sandbox is gone (the node or its runtime
    /// restarted): its containers count a restart, and the last state of those that were
    /// running says the run ended in an unknown way, as the kubelet reports after a reboot.
    pub fn carry_over(&mut self, pod: &Pod, now: Time) {
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        for cs in statuses.into_iter().flatten() {
            let count = u32::try_from(cs.restart_count).unwrap_or(0);
            let running = cs.state.as_ref().and_then(|s| s.running.as_ref());
            let r = self.record(&cs.name);
            r.restarts = count + u32::from(running.is_some());
            if let Some(running) = running {
                r.last_terminated = Some(ContainerStateTerminated {
                    exit_code: 255,
                    reason: Some("Unknown".into()),
                    started_at: running.started_at.clone(),
                    finished_at: Some(now.clone()),
                    container_id: cs.container_id.clone(),
                    ..Default::default()
                });
            } else if let Some(t) = cs.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
                r.last_terminated = Some(t.clone());
            }
        }
    }
}
