//! The planner: a pure function of the pod, what the runtime shows and what the worker
//! remembers, deciding one sync's actions in order (the shape of the kubelet's
//! computePodActions). It drops a sandbox that is gone or runs under the wrong handler and
//! creates one, runs init containers one at a time to completion, starts and restarts app
//! containers per restartPolicy with CrashLoopBackOff (a BackOff Event while one waits), runs
//! ephemeral containers once, and kills containers whose startup or liveness probe failed. It looks ahead on a copy of the memory, so that a decision sees the
//! ones before it (an init container that just succeeded lets the next one start).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, ContainerStateTerminated, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::action::{Action, AfterExit, PodEvent, SandboxChange};
use super::backoff;
use super::memory::PodMemory;
use super::observe::{ContainerRun, HandlerLookup, Observed, RunState, SandboxSeen};
use super::spec::{self, RestartPolicy};

/// One sync's decisions, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
}

/// How a pod being deleted is stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// What the preStop hooks and then each container get to finish.
    pub grace: Duration,
    /// Running containers with a preStop hook: (name, runtime id).
    pub pre_stop: Vec<(String, String)>,
}

/// How the pod's deletion proceeds: its grace period and the preStop hooks to run.
pub fn termination(pod: &Pod, memory: &PodMemory) -> Termination {
    let pre_stop = spec::containers(pod)
        .iter()
        .filter(|c| c.lifecycle.as_ref().is_some_and(|l| l.pre_stop.is_some()))
        .filter_map(|c| Some((c.name.clone(), memory.container(&c.name)?.id.clone()?)))
        .collect();
    Termination { grace: spec::deletion_grace(pod), pre_stop }
}

/// Decides one sync of a pod that is not being deleted.
pub fn plan(pod: &Pod, seen: &Observed, memory: &PodMemory, now: Instant) -> Plan {
    let mut p = Planner { memory: memory.clone(), actions: Vec::new(), now };
    if p.sandbox(seen) {
        p.init_containers(pod, seen);
        if p.memory.init_done >= spec::init_containers(pod).len() {
            p.app_containers(pod, seen);
            p.ephemeral_containers(pod, seen);
        }
    }
    Plan { actions: p.actions }
}

/// The termination a runtime reports, as the API's `terminated` state.
pub fn terminated(run: &ContainerRun) -> ContainerStateTerminated {
    let reason = match (run.reason.as_str(), run.exit_code) {
        ("", 0) => "Completed",
        ("", _) => "Error",
        (r, _) => r,
    };
    ContainerStateTerminated {
        exit_code: run.exit_code,
        reason: Some(reason.to_owned()),
        started_at: time_of(run.started_at),
        finished_at: time_of(run.finished_at),
        container_id: Some(format!("ringfence://{}", run.id)),
        ..Default::default()
    }
}

/// A runtime timestamp (nanoseconds since the epoch) as an API time.
pub fn time_of(ns: i64) -> Option<Time> {
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    DateTime::<Utc>::from_timestamp(ns.div_euclid(1_000_000_000), nanos).map(Time)
}

/// What the runtime shows of a container's current run, from the planner's side.
enum Run {
    /// No current run: never started, finished, or forgotten.
    None,
    /// Created or running.
    Active,
    Exited(ContainerRun),
}

struct Planner {
    /// The worker's memory as it will be after the actions so far.
    memory: PodMemory,
    actions: Vec<Action>,
    now: Instant,
}

impl Planner {
    fn push(&mut self, action: Action) {
        self.memory.apply(&action);
        self.actions.push(action);
    }

    /// Keeps, drops or creates the sandbox, and prepares volumes; false when nothing can run.
    fn sandbox(&mut self, seen: &Observed) -> bool {
        if let Some(current) = &self.memory.sandbox {
            let id = current.id.clone();
            let why = match (&seen.sandbox, &seen.handler) {
                (Some(SandboxSeen::Ready { handler }), Some(HandlerLookup::Found(want)))
                    if !handler.is_empty() && handler != want =>
                {
                    Some(SandboxChange::HandlerChanged { from: handler.clone(), to: want.clone() })
                }
                (Some(SandboxSeen::Ready { .. }), _) => None,
                _ => Some(SandboxChange::Lost),
            };
            if let Some(why) = why {
                self.push(Action::DropSandbox { id, why });
                self.push(Action::Event(PodEvent::normal(
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                )));
            }
        }
        if self.memory.sandbox.is_none() {
            if self.memory.sandbox_retry_at.is_some_and(|at| self.now < at) {
                return false;
            }
            match &seen.handler {
                Some(HandlerLookup::Found(handler)) => self.push(Action::CreateSandbox {
                    handler: handler.clone(),
                    attempt: self.memory.sandbox_attempt,
                }),
                Some(HandlerLookup::Failed(message)) => {
                    self.push(Action::SandboxBlocked { message: message.clone() });
                    return false;
                }
                // Not resolved: the observation always resolves it when there is no sandbox.
                None => return false,
            }
        }
        if self.memory.volumes.is_none() {
            self.push(Action::PrepareVolumes);
        }
        true
    }

    /// The container's current run; a run the runtime forgot is forgotten here too.
    fn run_of(&mut self, name: &str, seen: &Observed) -> Run {
        let Some(id) = self.memory.container(name).and_then(|r| r.id.clone()) else {
            return Run::None;
        };
        match seen.containers.get(name) {
            Some(run) if run.id == id && run.state == RunState::Exited => Run::Exited(run.clone()),
            Some(run) if run.id == id => Run::Active,
            _ => {
                self.push(Action::Forget { container: name.to_owned() });
                Run::None
            }
        }
    }

    fn record_exit(&mut self, name: &str, run: &ContainerRun, policy: RestartPolicy) {
        let next = if policy.restarts(run.exit_code) {
            let r = self.memory.container(name).cloned().unwrap_or_default();
            let (retry_at, backoff) = backoff::after_exit(r.backoff, r.started, self.now);
            AfterExit::Restart { retry_at, backoff }
        } else {
            AfterExit::Done
        };
        self.push(Action::RecordExit {
            container: name.to_owned(),
            terminated: terminated(run),
            next,
        });
    }

    /// Starts the container if it is due; says so when a crashed one is held by back-off.
    fn start_if_due(&mut self, pod: &Pod, name: &str, init: bool) {
        if self.memory.due(name, self.now) {
            self.push(Action::Start { container: name.to_owned(), init });
            return;
        }
        let backing_off = self.memory.container(name).is_some_and(|r| {
            !r.done
                && r.id.is_none()
                && r.restarts > 0
                && r.waiting.is_none()
                && r.retry_at.is_some_and(|at| self.now < at)
        });
        if backing_off {
            let (ns, pod) = (spec::namespace(pod), spec::name(pod));
            let msg = format!("Back-off restarting failed container {name} in pod {ns}/{pod}");
            self.push(Action::Event(PodEvent::warning("BackOff", msg).once()));
        }
    }

    /// Init containers, one at a time, each to completion; a failed one is retried unless
    /// the pod never restarts anything.
    fn init_containers(&mut self, pod: &Pod, seen: &Observed) {
        let policy = RestartPolicy::of(pod);
        let inits = spec::init_containers(pod);
        while let Some(c) = inits.get(self.memory.init_done) {
            match self.run_of(&c.name, seen) {
                Run::Exited(run) => {
                    let ok = run.exit_code == 0;
                    let again = match policy {
                        RestartPolicy::Never => RestartPolicy::Never,
                        _ => RestartPolicy::OnFailure,
                    };
                    self.record_exit(&c.name, &run, again);
                    if !ok {
                        return;
                    }
                    self.push(Action::InitDone { container: c.name.clone() });
                }
                Run::Active => return,
                Run::None => {
                    self.start_if_due(pod, &c.name, true);
                    return;
                }
            }
        }
    }

    fn app_containers(&mut self, pod: &Pod, seen: &Observed) {
        let policy = RestartPolicy::of(pod);
        for c in spec::containers(pod) {
            match self.run_of(&c.name, seen) {
                Run::Exited(run) => {
                    self.record_exit(&c.name, &run, policy);
                    self.push(Action::RemoveContainer { id: run.id.clone() });
                    self.start_if_due(pod, &c.name, false);
                }
                Run::Active => self.probe_verdicts(pod, c, seen),
                Run::None => self.start_if_due(pod, &c.name, false),
            }
        }
    }

    /// Ephemeral containers run once each, never restarted; what they leave stays for
    /// their logs and status.
    fn ephemeral_containers(&mut self, pod: &Pod, seen: &Observed) {
        for c in spec::ephemeral_containers(pod) {
            match self.run_of(&c.name, seen) {
                Run::Exited(run) => {
                    if !self.memory.container(&c.name).is_some_and(|r| r.done) {
                        self.record_exit(&c.name, &run, RestartPolicy::Never);
                    }
                }
                Run::Active => {}
                Run::None => self.start_if_due(pod, &c.name, false),
            }
        }
    }

    /// What the probes of a running container call for: a restart when startup or liveness
    /// failed, an Event when readiness turned to failing.
    fn probe_verdicts(&mut self, pod: &Pod, c: &Container, seen: &Observed) {
        let Some(r) = self.memory.container(&c.name) else { return };
        let Some(id) = r.id.clone() else { return };
        if let (Some(st), Some(p)) = (&r.probes.startup, &c.startup_probe)
            && !st.ok
        {
            if st.exhausted(p) {
                let message = st.last_message.clone();
                self.kill(pod, c, id, "Startup", &message);
            }
            return;
        }
        if let Some(st) = &r.probes.liveness
            && !st.ok
        {
            let message = st.last_message.clone();
            self.kill(pod, c, id, "Liveness", &message);
            return;
        }
        if let Some(message) = seen.readiness_failed.get(&c.name) {
            let msg = format!("Readiness probe failed: {message}");
            self.push(Action::Event(PodEvent::warning("Unhealthy", msg)));
        }
    }

    /// Restarts a container whose `probe` failed, as the kubelet does.
    fn kill(&mut self, pod: &Pod, c: &Container, id: String, probe: &str, message: &str) {
        let unhealthy = format!("{probe} probe failed: {message}");
        self.push(Action::Event(PodEvent::warning("Unhealthy", unhealthy)));
        let killing = format!(
            "Container {} failed {} probe, will be restarted",
            c.name,
            probe.to_lowercase()
        );
        self.push(Action::Event(PodEvent::normal("Killing", killing)));
        let grace = spec::termination_grace(pod);
        self.push(Action::Kill { container: c.name.clone(), id, grace });
    }
}
