//! The pod status a sync reports, from the pod's spec, the worker's memory and the runtime's
//! current runs: phase (including when the pod is finished), conditions, and one status per
//! container with its state, restart count and last termination. Pure.

use std::collections::HashMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::memory::{PodMemory, Waiting};
use super::observe::{ContainerRun, RunState};
use super::plan::time_of;
use super::spec;

/// What a status is made from besides the pod: the worker's memory, the current runs (by
/// container name), this node's address and the clocks.
pub struct StatusInputs<'a> {
    pub memory: &'a PodMemory,
    pub runs: &'a HashMap<String, ContainerRun>,
    pub host_ip: &'a str,
    pub now: Instant,
    /// Wall-clock time for condition transitions.
    pub wall: Time,
}

fn waiting(w: Waiting) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting { reason: Some(w.reason), message: Some(w.message) }),
        ..Default::default()
    }
}

fn container_status(c: &Container, inputs: &StatusInputs) -> ContainerStatus {
    let record = inputs.memory.container(&c.name);
    let run = inputs.runs.get(&c.name).filter(|run| run.state == RunState::Running);
    let (state, ready, started, id) = match (run, record) {
        (Some(run), _) => {
            let probes = record.map(|r| r.probes.clone()).unwrap_or_default();
            let state = ContainerState {
                running: Some(ContainerStateRunning { started_at: time_of(run.started_at) }),
                ..Default::default()
            };
            (state, probes.ready(), probes.started(), Some(run.id.clone()))
        }
        (None, Some(r)) if r.done => {
            let terminated = r.last_terminated.clone().unwrap_or_default();
            let state = ContainerState { terminated: Some(terminated), ..Default::default() };
            (state, false, false, None)
        }
        (None, Some(r)) => {
            let w = match &r.waiting {
                Some(w) => w.clone(),
                None if r.retry_at.is_some_and(|at| inputs.now < at) => Waiting::new(
                    "CrashLoopBackOff",
                    format!("back-off restarting failed container {}", c.name),
                ),
                None => Waiting::new("ContainerCreating", ""),
            };
            (waiting(w), false, false, None)
        }
        (None, None) => {
            let w = inputs.memory.pod_waiting.clone();
            (
                waiting(w.unwrap_or_else(|| Waiting::new("ContainerCreating", ""))),
                false,
                false,
                None,
            )
        }
    };
    let last_terminated = record.and_then(|r| r.last_terminated.clone());
    ContainerStatus {
        name: c.name.clone(),
        state: Some(state),
        last_state: Some(ContainerState { terminated: last_terminated, ..Default::default() }),
        ready,
        restart_count: record.map(|r| i32::try_from(r.restarts).unwrap_or(i32::MAX)).unwrap_or(0),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        started: Some(started),
        container_id: id.map(|id| format!("ringfence://{id}")),
        ..Default::default()
    }
}

fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}

/// The pod's phase: Succeeded or Failed once it is finished, Running once something ran.
fn phase(statuses: &[ContainerStatus], init_failed: bool) -> &'static str {
    let all_done = !statuses.is_empty() && statuses.iter().all(|s| terminated(s).is_some());
    let running = statuses.iter().any(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()));
    if init_failed {
        // An init container failed and will not run again: the app never will either.
        "Failed"
    } else if all_done {
        if statuses.iter().all(|s| terminated(s).is_some_and(|t| t.exit_code == 0)) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if running || statuses.iter().any(|s| s.restart_count > 0) {
        "Running"
    } else {
        "Pending"
    }
}

/// The status to report for `pod`.
pub fn pod_status(pod: &Pod, inputs: &StatusInputs) -> PodStatus {
    let memory = inputs.memory;
    let inits = spec::init_containers(pod);
    let statuses: Vec<ContainerStatus> =
        spec::containers(pod).iter().map(|c| container_status(c, inputs)).collect();
    let init_statuses: Vec<ContainerStatus> =
        inits.iter().map(|c| container_status(c, inputs)).collect();
    let ephemeral_statuses: Vec<ContainerStatus> =
        spec::ephemeral_containers(pod).iter().map(|c| container_status(c, inputs)).collect();
    let init_failed = inits.iter().any(|c| {
        memory
            .container(&c.name)
            .is_some_and(|r| r.done && r.last_terminated.as_ref().is_some_and(|t| t.exit_code != 0))
    });
    let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s.ready);
    let condition = |type_: &str, ok: bool| PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(inputs.wall.clone()),
        ..Default::default()
    };
    let ip = memory.pod_ip().map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase(&statuses, init_failed).into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", memory.sandbox.is_some()),
            condition("Initialized", memory.init_done >= inits.len()),
            condition("Ready", all_ready),
            condition("ContainersReady", all_ready),
            condition("PodScheduled", true),
        ]),
        host_ip: Some(inputs.host_ip.to_owned()),
        host_ips: Some(vec![HostIP { ip: inputs.host_ip.to_owned() }]),
        start_time: Some(memory.start_time.clone()),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        qos_class: Some("BestEffort".into()),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        ..Default::default()
    }
}

/// The status without what changes on every sync (condition transition times), to tell
/// whether anything worth writing changed.
pub fn comparable(status: &PodStatus) -> PodStatus {
    let mut s = status.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_transition_time = None;
    }
    s
}
