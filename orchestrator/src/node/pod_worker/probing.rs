//! Running the probes that are due, before the planner looks: like the kubelet's probe
//! workers, their verdicts are observations. Startup gates liveness and readiness, and a
//! failing liveness probe skips readiness, as the planner will kill the container anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};

use super::memory::PodMemory;
use super::observe::{Observed, RunState, SandboxSeen};
use super::spec;
use crate::node::cri_client::Cri;
use crate::node::probe::{self, ProbeState};

/// Runs `state`'s probe if it is due; returns whether its verdict changed.
async fn tick(
    state: &mut ProbeState,
    p: &Probe,
    c: &Container,
    ip: Option<IpAddr>,
    cri: &mut Cri,
    id: &str,
) -> bool {
    if !state.due(Instant::now()) {
        return false;
    }
    let result = probe::run_once(p, c, ip, cri, id).await;
    state.record(p, &result, Instant::now())
}

/// Probes the running app containers of a pod whose sandbox, volumes and init containers are
/// ready; records the verdicts in `memory` and notes readiness turning to failing in `seen`.
pub async fn run_due(pod: &Pod, memory: &mut PodMemory, seen: &mut Observed, cri: &mut Cri) {
    let ready = matches!(seen.sandbox, Some(SandboxSeen::Ready { .. }))
        && memory.volumes.is_some()
        && memory.init_done >= spec::init_containers(pod).len();
    if !ready {
        return;
    }
    let ip = memory.pod_ip();
    let mut readiness_failed = HashMap::new();
    for c in spec::containers(pod) {
        let Some(record) = memory.containers.get_mut(&c.name) else { continue };
        let Some(id) = record.id.clone() else { continue };
        let active = seen
            .containers
            .get(&c.name)
            .is_some_and(|run| run.id == id && run.state != RunState::Exited);
        if !active {
            continue;
        }
        let probes = &mut record.probes;
        if let (Some(st), Some(p)) = (probes.startup.as_mut(), c.startup_probe.as_ref())
            && !st.ok
        {
            tick(st, p, c, ip, cri, &id).await;
            if !st.ok {
                continue;
            }
        }
        if let (Some(st), Some(p)) = (probes.liveness.as_mut(), c.liveness_probe.as_ref()) {
            tick(st, p, c, ip, cri, &id).await;
            if !st.ok {
                continue;
            }
        }
        if let (Some(st), Some(p)) = (probes.readiness.as_mut(), c.readiness_probe.as_ref())
            && tick(st, p, c, ip, cri, &id).await
            && !st.ok
        {
            readiness_failed.insert(c.name.clone(), st.last_message.clone());
        }
    }
    seen.readiness_failed = readiness_failed;
}
