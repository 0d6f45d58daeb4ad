//! Deployment status: replica counts summed over its ReplicaSets, and the Available and
//! Progressing conditions (with the progress deadline) that `kubectl rollout status` reads.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    DeploymentController, Sets, available, replicas, spec_replicas, surge_and_unavailable,
};
use crate::api::ApiError;
use crate::kube::Action;

fn counts(sets: &Sets) -> DeploymentStatus {
    let all = sets.all();
    let sum = |f: &dyn Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32| -> i32 {
        all.iter().filter_map(|r| r.status.as_ref()).map(f).sum()
    };
    let total_spec: i32 = all.iter().map(|r| replicas(r)).sum();
    let available_total: i32 = all.iter().map(|r| available(r)).sum();
    DeploymentStatus {
        replicas: Some(sum(&|s| s.replicas)),
        updated_replicas: Some(
            sets.new.as_ref().and_then(|n| n.status.as_ref()).map_or(0, |s| s.replicas),
        ),
        ready_replicas: Some(sum(&|s| s.ready_replicas.unwrap_or(0))),
        available_replicas: Some(available_total),
        unavailable_replicas: Some((total_spec - available_total).max(0)),
        ..Default::default()
    }
}

/// Every replica updated and available, and nothing old left.
fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = spec_replicas(d);
    s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
        && s.observed_generation >= d.metadata.generation
}

fn progressed(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_olds = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_olds = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas > old.updated_replicas
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
        || new_olds < old_olds
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// Replaces a condition; the transition time stays when the status did not change, and an
/// identical status+reason is left alone unless `touch`.
fn set(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition, touch: bool) {
    if let Some(old) = conds.iter().find(|x| x.type_ == c.type_) {
        if old.status == c.status && old.reason == c.reason && !touch {
            return;
        }
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

/// Writes the status if it changed; returns when to look again and whether the rollout is
/// complete.
pub async fn sync(
    c: &DeploymentController,
    d: &Deployment,
    sets: &Sets,
    created_new: bool,
) -> Result<(Action, bool), ApiError> {
    let old = d.status.clone().unwrap_or_default();
    let mut new = counts(sets);
    new.observed_generation = d.metadata.generation;
    new.collision_count = old.collision_count;
    let now = Time(chrono::Utc::now());
    let mut conds = old.conditions.clone().unwrap_or_default();
    let want = spec_replicas(d);
    let (_, max_unavailable) = surge_and_unavailable(d);
    let min_available = want - max_unavailable;
    if new.available_replicas.unwrap_or(0) >= min_available {
        set(
            &mut conds,
            condition(
                "Available",
                true,
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                &now,
            ),
            false,
        );
    } else {
        set(
            &mut conds,
            condition(
                "Available",
                false,
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                &now,
            ),
            false,
        );
    }
    let rs_name = sets.new.as_ref().and_then(|n| n.metadata.name.clone()).unwrap_or_default();
    let deadline = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    let complete = is_complete(d, &new);
    let progressing = conds.iter().find(|x| x.type_ == "Progressing").cloned();
    let mut requeue = None;
    if created_new {
        set(
            &mut conds,
            condition(
                "Progressing",
                true,
                "NewReplicaSetCreated",
                format!("Created new replica set \"{rs_name}\""),
                &now,
            ),
            true,
        );
    } else if complete {
        set(
            &mut conds,
            condition(
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                &now,
            ),
            false,
        );
    } else if progressed(&old, &new) || progressing.is_none() {
        set(
            &mut conds,
            condition(
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                &now,
            ),
            true,
        );
    } else if let (Some(secs), Some(p)) = (deadline, &progressing) {
        let since = p.last_update_time.as_ref().map(|t| t.0).unwrap_or(now.0);
        let due = since + chrono::Duration::seconds(secs.into());
        if p.reason.as_deref() != Some("ProgressDeadlineExceeded") {
            if due <= now.0 {
                set(
                    &mut conds,
                    condition(
                        "Progressing",
                        false,
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                        &now,
                    ),
                    false,
                );
            } else {
                requeue = (due - now.0).to_std().ok();
            }
        }
    }
    if !complete
        && requeue.is_none()
        && let Some(secs) = deadline
    {
        requeue = Some(std::time::Duration::from_secs(secs.max(1) as u64));
    }
    new.conditions = Some(conds);
    if d.status.as_ref() != Some(&new) {
        let mut updated = d.clone();
        updated.status = Some(new);
        let stored = c.kube.update_status(&updated).await?;
        c.deployments.observe(stored);
    }
    Ok((requeue.map_or(Action::Done, Action::RequeueAfter), complete))
}

/// The template hash collided with another object's name: try the next hash.
pub async fn bump_collisions(c: &DeploymentController, d: &Deployment) -> Result<(), ApiError> {
    let mut updated = d.clone();
    let s = updated.status.get_or_insert_with(Default::default);
    s.collision_count = Some(s.collision_count.unwrap_or(0) + 1);
    let stored = c.kube.update_status(&updated).await?;
    c.deployments.observe(stored);
    Ok(())
}
