//! Recreate: scale every old ReplicaSet to zero, wait until their pods are gone, then bring
//! up the new one at full size.

use k8s_openapi::api::apps::v1::Deployment;

use super::{DeploymentController, Sets, history, replicas, spec_replicas, status};
use crate::api::ApiError;
use crate::kube::Action;

pub async fn sync(
    c: &DeploymentController,
    d: &Deployment,
    mut sets: Sets,
) -> Result<Action, ApiError> {
    c.new_set(d, &mut sets, None).await?;
    let mut scaled = false;
    for rs in sets.olds.iter().filter(|r| replicas(r) > 0) {
        scaled |= c.scale(d, rs, 0).await?;
    }
    if scaled {
        return status::sync(c, d, &sets, false).await.map(|(a, _)| a);
    }
    let old_pods_left = sets.olds.iter().any(|rs| {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        c.pods
            .owned_by(&uid)
            .iter()
            .any(|p| !matches!(super::super::common::phase(p), "Succeeded" | "Failed"))
    });
    if old_pods_left {
        return status::sync(c, d, &sets, false).await.map(|(a, _)| a);
    }
    let created = c.new_set(d, &mut sets, Some(spec_replicas(d))).await?;
    if let Some(new) = sets.new.clone() {
        c.scale(d, &new, spec_replicas(d)).await?;
    }
    let (action, complete) = status::sync(c, d, &sets, created).await?;
    if complete {
        history::cleanup(c, d, &sets).await?;
    }
    Ok(action)
}
