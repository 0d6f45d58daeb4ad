//! Reading a typed Pod the way the worker needs it: its containers, restart policy and grace
//! periods, with Kubernetes' defaults. Pure.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Seconds a container gets to stop when the pod does not say (Kubernetes' default).
const DEFAULT_GRACE_SECONDS: u64 = 30;

/// When a container that ended runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The pod's policy; anything but `OnFailure` and `Never` means `Always`.
    pub fn of(pod: &Pod) -> RestartPolicy {
        match pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a run that ended with `exit_code` is followed by another.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

pub fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default()
}

pub fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().and_then(|s| s.init_containers.as_deref()).unwrap_or_default()
}

/// The pod's ephemeral containers (`kubectl debug`) as containers: the same fields but the
/// target's name ([`target_container`] gives it).
pub fn ephemeral_containers(pod: &Pod) -> Vec<Container> {
    let list =
        pod.spec.as_ref().and_then(|s| s.ephemeral_containers.as_deref()).unwrap_or_default();
    list.iter()
        .filter_map(|e| {
            let mut v = serde_json::to_value(e).ok()?;
            v.as_object_mut()?.remove("targetContainerName");
            serde_json::from_value(v).ok()
        })
        .collect()
}

/// The container whose PID namespace ephemeral container `name` joins (`targetContainerName`).
pub fn target_container(pod: &Pod, name: &str) -> Option<String> {
    let list =
        pod.spec.as_ref().and_then(|s| s.ephemeral_containers.as_deref()).unwrap_or_default();
    list.iter()
        .find(|e| e.name == name)
        .and_then(|e| e.target_container_name.clone())
        .filter(|t| !t.is_empty())
}

/// A container of the pod by name: init, app or ephemeral.
pub fn container_named(pod: &Pod, name: &str) -> Option<Container> {
    init_containers(pod)
        .iter()
        .chain(containers(pod))
        .find(|c| c.name == name)
        .cloned()
        .or_else(|| ephemeral_containers(pod).into_iter().find(|c| c.name == name))
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or_default()
}

/// `terminationGracePeriodSeconds`: what a container killed by the agent gets to exit.
pub fn termination_grace(pod: &Pod) -> Duration {
    let secs = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds);
    Duration::from_secs(secs.and_then(|s| u64::try_from(s).ok()).unwrap_or(DEFAULT_GRACE_SECONDS))
}

/// The grace a deletion gives: the deletion's own period, else the pod's.
pub fn deletion_grace(pod: &Pod) -> Duration {
    match pod.metadata.deletion_grace_period_seconds.and_then(|s| u64::try_from(s).ok()) {
        Some(secs) => Duration::from_secs(secs),
        None => termination_grace(pod),
    }
}

pub fn is_deleted(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}
