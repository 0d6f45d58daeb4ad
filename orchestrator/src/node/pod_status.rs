//! Pod status as a kubelet writes it: Running with its conditions and container states,
//! or terminated (Succeeded / Failed).

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn condition(type_: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

fn containers(pod: &Pod, state: ContainerState, running: bool) -> Vec<ContainerStatus> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: Some(format!("ringfence://{}", c.name)),
            ready: running,
            started: Some(running),
            restart_count: 0,
            state: Some(state.clone()),
            ..Default::default()
        })
        .collect()
}

/// All containers started and ready.
pub fn running(pod: &Pod, host_ip: &str, pod_ip: &str) -> PodStatus {
    let now = Time(chrono::Utc::now());
    let state = ContainerState {
        running: Some(ContainerStateRunning { started_at: Some(now.clone()) }),
        ..Default::default()
    };
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .iter()
            .map(|t| condition(t, true, &now))
            .collect(),
        ),
        host_ip: Some(host_ip.into()),
        pod_ip: Some(pod_ip.into()),
        pod_ips: Some(vec![PodIP { ip: pod_ip.into() }]),
        start_time: Some(now),
        container_statuses: Some(containers(pod, state, true)),
        qos_class: Some("BestEffort".into()),
        ..pod.status.clone().unwrap_or_default()
    }
}

/// Every container exited with `exit_code`: Succeeded when 0, else Failed.
pub fn terminated(pod: &Pod, exit_code: i32) -> PodStatus {
    let now = Time(chrono::Utc::now());
    let state = ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            finished_at: Some(now.clone()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut status = pod.status.clone().unwrap_or_default();
    status.phase = Some(if exit_code == 0 { "Succeeded" } else { "Failed" }.into());
    status.conditions = Some(
        [
            ("Initialized", true),
            ("Ready", false),
            ("ContainersReady", false),
            ("PodScheduled", true),
        ]
        .iter()
        .map(|(t, ok)| condition(t, *ok, &now))
        .collect(),
    );
    status.container_statuses = Some(containers(pod, state, false));
    status
}
