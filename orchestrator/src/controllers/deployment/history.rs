//! Revision history: old ReplicaSets scaled to zero are kept for `kubectl rollout undo`, up to
//! `revisionHistoryLimit`, oldest revisions deleted first.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::{DeploymentController, Sets, replicas, revision};
use crate::api::ApiError;
use crate::api::request::{DeleteOptions, Propagation};
use crate::kube::ObjectKey;

pub async fn cleanup(
    c: &DeploymentController,
    d: &Deployment,
    sets: &Sets,
) -> Result<(), ApiError> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Ok(()) };
    let mut idle: Vec<_> = sets
        .olds
        .iter()
        .filter(|r| {
            replicas(r) == 0
                && r.status.as_ref().is_none_or(|s| s.replicas == 0)
                && r.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    idle.sort_by_key(|r| revision(&r.metadata));
    for rs in idle.into_iter().take(excess) {
        let key = ObjectKey::of(&rs.metadata);
        let opts = DeleteOptions {
            propagation: Some(Propagation::Background),
            precondition_uid: rs.metadata.uid.clone(),
            ..Default::default()
        };
        if let Some(gone) = c.kube.delete::<ReplicaSet>(key.ns(), &key.name, opts).await? {
            c.sets.observe_deleted(&key, crate::kube::key::revision(&gone.metadata));
        }
    }
    Ok(())
}
