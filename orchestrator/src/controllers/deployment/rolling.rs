//! RollingUpdate: scale the new ReplicaSet up while the total stays within replicas+maxSurge,
//! and old ones down while at least replicas-maxUnavailable pods stay available.

use k8s_openapi::api::apps::v1::Deployment;

use super::{
    DeploymentController, Sets, available, history, replicas, spec_replicas, status,
    surge_and_unavailable,
};
use crate::api::ApiError;
use crate::kube::Action;

/// The new ReplicaSet's replica count for this step.
pub fn new_replicas(d: &Deployment, total: i32, new: i32) -> i32 {
    let want = spec_replicas(d);
    if new >= want {
        return want;
    }
    let (surge, _) = surge_and_unavailable(d);
    let max_total = want + surge;
    if total >= max_total {
        return new;
    }
    new + (max_total - total).min(want - new)
}

pub async fn sync(
    c: &DeploymentController,
    d: &Deployment,
    mut sets: Sets,
) -> Result<Action, ApiError> {
    let total: i32 = sets.all().iter().map(|r| replicas(r)).sum();
    let initial = new_replicas(d, total, 0);
    if c.new_set(d, &mut sets, Some(initial)).await? {
        return status::sync(c, d, &sets, true).await.map(|(a, _)| a);
    }
    if let Some(new) = sets.new.clone() {
        let total: i32 = sets.all().iter().map(|r| replicas(r)).sum();
        let target = new_replicas(d, total, replicas(&new));
        if c.scale(d, &new, target).await? {
            return status::sync(c, d, &sets, false).await.map(|(a, _)| a);
        }
    }
    if scale_down_olds(c, d, &sets).await? {
        return status::sync(c, d, &sets, false).await.map(|(a, _)| a);
    }
    let (action, complete) = status::sync(c, d, &sets, false).await?;
    if complete {
        history::cleanup(c, d, &sets).await?;
    }
    Ok(action)
}

async fn scale_down_olds(
    c: &DeploymentController,
    d: &Deployment,
    sets: &Sets,
) -> Result<bool, ApiError> {
    let old_count: i32 = sets.olds.iter().map(|r| replicas(r)).sum();
    if old_count == 0 {
        return Ok(false);
    }
    let all = sets.all();
    let all_count: i32 = all.iter().map(|r| replicas(r)).sum();
    let (_, max_unavailable) = surge_and_unavailable(d);
    let min_available = spec_replicas(d) - max_unavailable;
    let new_unavailable = sets.new.as_ref().map_or(0, |n| (replicas(n) - available(n)).max(0));
    let max_scale_down = all_count - min_available - new_unavailable;
    if max_scale_down <= 0 {
        return Ok(false);
    }
    let mut changed = false;
    // First the old replicas that are not available anyway.
    let mut cleaned = 0;
    let mut remaining_specs: Vec<i32> = Vec::new();
    for rs in &sets.olds {
        let (spec, avail) = (replicas(rs), available(rs));
        let mut to = spec;
        if cleaned < max_scale_down && spec > avail {
            let n = (max_scale_down - cleaned).min(spec - avail);
            to = spec - n;
            cleaned += n;
            changed |= c.scale(d, rs, to).await?;
        }
        remaining_specs.push(to);
    }
    // Then available ones, keeping minAvailable.
    let available_total: i32 = all.iter().map(|r| available(r)).sum();
    let mut budget = available_total - min_available;
    for (rs, spec) in sets.olds.iter().zip(remaining_specs) {
        if budget <= 0 {
            break;
        }
        if spec == 0 {
            continue;
        }
        let n = budget.min(spec);
        budget -= n;
        changed |= c.scale(d, rs, spec - n).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"a": "b"}},
                "template": {},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            }
        }))
        .unwrap()
    }

    #[test]
    fn scale_up_respects_max_surge() {
        let d = deployment(4, "25%", "25%");
        assert_eq!(surge_and_unavailable(&d), (1, 1));
        assert_eq!(new_replicas(&d, 4, 0), 1, "one over the total");
        assert_eq!(new_replicas(&d, 5, 1), 1, "at the surge limit: wait");
        assert_eq!(new_replicas(&d, 4, 1), 2);
        assert_eq!(new_replicas(&d, 0, 0), 4, "fresh deployment: all at once");
        assert_eq!(new_replicas(&d, 6, 6), 4, "scaled down");
        let d = deployment(3, "0%", "0%");
        assert_eq!(surge_and_unavailable(&d), (0, 1), "both zero: one may be unavailable");
    }
}
