//! Preemption: when no node fits a pod, find the node where evicting the fewest, least
//! important lower-priority pods makes it fit (then give back every victim that is not needed).

use std::sync::Arc;

use super::cache::Cache;
use super::cycle;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use super::registry::Profile;

/// Nodes evaluated at most per attempt (Kubernetes samples candidates too).
const MAX_CANDIDATES: usize = 100;

pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Whether `pod` fits on `node` once `victims` are gone.
fn fits_without(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    node: &NodeInfo,
    victims: &[Arc<PodInfo>],
) -> bool {
    let Ok(mut state) = cycle::pre_filter(profile, cache, pod) else { return false };
    let mut trial = node.clone();
    for v in victims {
        trial.remove_pod(&v.key);
        for f in &profile.filters {
            f.remove_pod(&mut state, pod, v, node);
        }
    }
    cycle::filter(profile, pod, &trial, &state).is_ok()
}

pub fn plan(profile: &Profile, cache: &Cache, pod: &PodInfo) -> Option<Plan> {
    let never = pod.pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
    if never {
        return None;
    }
    let mut best: Option<(i32, usize, Plan)> = None;
    let candidates = cache.nodes().iter().filter(|n| n.node.is_some()).filter_map(|n| {
        let lower: Vec<Arc<PodInfo>> = n
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        (!lower.is_empty()).then_some((n, lower))
    });
    for (node, mut lower) in candidates.take(MAX_CANDIDATES) {
        if !fits_without(profile, cache, pod, node, &lower) {
            continue;
        }
        // Reprieve the most important pods first, while the pod still fits.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
        let mut victims = lower.clone();
        for p in &lower {
            let without: Vec<Arc<PodInfo>> =
                victims.iter().filter(|v| v.key != p.key).cloned().collect();
            if fits_without(profile, cache, pod, node, &without) {
                victims = without;
            }
        }
        let top = victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        let better = best.as_ref().is_none_or(|(t, n, _)| (top, victims.len()) < (*t, *n));
        if better {
            best = Some((top, victims.len(), Plan { node: node.name.clone(), victims }));
        }
    }
    best.map(|(_, _, p)| p)
}
