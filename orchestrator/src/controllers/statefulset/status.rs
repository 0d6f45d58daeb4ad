//! The StatefulSet's status: how many pods exist, are ready, available, at the current and at
//! the update revision; once a rolling update has every pod updated and ready, the update
//! revision becomes the current one (what `kubectl rollout status` waits for).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;

use super::identity::revision_of;
use super::revisions::History;
use crate::controllers::common::{is_available, is_ready, phase};

pub fn compute(
    set: &StatefulSet,
    pods: &BTreeMap<i32, Arc<Pod>>,
    history: &History,
    now: chrono::DateTime<chrono::Utc>,
) -> StatefulSetStatus {
    let old = set.status.clone().unwrap_or_default();
    let min_ready = set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let live: Vec<&Arc<Pod>> =
        pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    let running = |p: &&&Arc<Pod>| phase(p) == "Running";
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let at = |rev: &str| count(&|p| revision_of(p) == Some(rev));
    let mut status = StatefulSetStatus {
        replicas: pods.len() as i32,
        ready_replicas: Some(live.iter().filter(running).filter(|p| is_ready(p)).count() as i32),
        available_replicas: Some(
            live.iter().filter(running).filter(|p| is_available(p, min_ready, now)).count() as i32,
        ),
        current_replicas: Some(at(history.current_name())),
        updated_replicas: Some(at(history.update_name())),
        current_revision: Some(history.current_name().to_owned()),
        update_revision: Some(history.update_name().to_owned()),
        observed_generation: set.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions,
    };
    let rolling = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling
        && status.updated_replicas == Some(status.replicas)
        && status.ready_replicas == Some(status.replicas)
    {
        status.current_revision = status.update_revision.clone();
        status.current_replicas = status.updated_replicas;
    }
    status
}
