//! One scheduling attempt for one pod: pre-filter, filter nodes (stopping once enough feasible
//! ones are found, like Kubernetes' percentageOfNodesToScore), score, pick the best.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::cache::Cache;
use super::framework::CycleState;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use super::registry::Profile;

/// Why no node fits: how many nodes gave each reason.
#[derive(Debug, Default)]
pub struct Diagnosis {
    pub nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl Diagnosis {
    /// Kubernetes' FailedScheduling wording: "0/3 nodes are available: 1 Insufficient cpu, ...".
    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut parts: Vec<String> = self.reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        parts.sort();
        format!("0/{} nodes are available: {}.", self.nodes, parts.join(", "))
    }
}

pub enum Outcome {
    Feasible(String),
    Unschedulable(Diagnosis),
}

/// How many feasible nodes are enough to pick from.
pub fn nodes_to_find(total: usize) -> usize {
    if total < 100 {
        return total;
    }
    let pct = 50usize.saturating_sub(total / 125).max(5);
    (total * pct / 100).max(100)
}

/// Runs every pre-filter; an error rules out every node.
pub fn pre_filter(profile: &Profile, cache: &Cache, pod: &PodInfo) -> Result<CycleState, String> {
    let mut state = CycleState::default();
    for f in &profile.filters {
        f.pre_filter(pod, cache, &mut state)?;
    }
    Ok(state)
}

pub fn filter(
    profile: &Profile,
    pod: &PodInfo,
    node: &NodeInfo,
    state: &CycleState,
) -> Result<(), String> {
    profile.filters.iter().try_for_each(|f| f.filter(pod, node, state))
}

/// Finds a node for `pod`. `start` rotates through the nodes between attempts so that the
/// sampled nodes differ and ties spread.
/// Pods that preempted others, by the node they were nominated to: their claim on it counts
/// against pods of lower or equal priority until they are bound.
pub type Nominated = HashMap<String, Vec<Arc<PodInfo>>>;

/// `node` as `pod` must see it: with the nominated pods that outrank it.
fn with_nominated<'a>(
    node: &'a NodeInfo,
    pod: &PodInfo,
    nominated: &Nominated,
) -> Cow<'a, NodeInfo> {
    let claims: Vec<&Arc<PodInfo>> = nominated
        .get(&node.name)
        .into_iter()
        .flatten()
        .filter(|p| p.key != pod.key && p.priority >= pod.priority)
        .collect();
    if claims.is_empty() {
        return Cow::Borrowed(node);
    }
    let mut n = node.clone();
    for p in claims {
        n.add_pod(p.clone());
    }
    Cow::Owned(n)
}

pub fn schedule(
    profile: &Profile,
    cache: &Cache,
    pod: &PodInfo,
    nominated: &Nominated,
    start: &mut usize,
) -> Outcome {
    let nodes: Vec<&NodeInfo> = cache.nodes().iter().filter(|n| n.node.is_some()).collect();
    let mut diag = Diagnosis { nodes: nodes.len(), ..Default::default() };
    if nodes.is_empty() {
        return Outcome::Unschedulable(diag);
    }
    let mut state = match pre_filter(profile, cache, pod) {
        Ok(s) => s,
        Err(reason) => {
            diag.reasons.insert(reason, nodes.len());
            return Outcome::Unschedulable(diag);
        }
    };
    let want = nodes_to_find(nodes.len());
    let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want);
    let first = *start % nodes.len();
    let mut examined = 0;
    for i in 0..nodes.len() {
        let n = nodes[(first + i) % nodes.len()];
        examined += 1;
        match filter(profile, pod, &with_nominated(n, pod, nominated), &state) {
            Ok(()) => {
                feasible.push(n);
                if feasible.len() >= want {
                    break;
                }
            }
            Err(r) => *diag.reasons.entry(r).or_default() += 1,
        }
    }
    *start = first + examined;
    if feasible.is_empty() {
        return Outcome::Unschedulable(diag);
    }
    if feasible.len() == 1 {
        return Outcome::Feasible(feasible[0].name.clone());
    }
    let mut total = vec![0i64; feasible.len()];
    for s in &profile.scorers {
        s.pre_score(pod, cache, &feasible, &mut state);
        let mut scores: Vec<i64> = feasible.iter().map(|n| s.score(pod, n, &state)).collect();
        s.normalize(&mut scores);
        for (t, v) in total.iter_mut().zip(scores) {
            *t += v * s.weight();
        }
    }
    // Ties go to a random one of the best, as in Kubernetes.
    let top = total.iter().copied().max().unwrap_or(0);
    let best: Vec<usize> = (0..total.len()).filter(|i| total[*i] == top).collect();
    let i = best[(random() as usize) % best.len()];
    Outcome::Feasible(feasible[i].name.clone())
}

/// A cheap random number (xorshift, seeded per thread from the clock).
fn random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_a_share_of_large_clusters() {
        assert_eq!(nodes_to_find(50), 50);
        assert_eq!(nodes_to_find(1000), 420);
        assert_eq!(nodes_to_find(5000), 500);
        assert_eq!(nodes_to_find(100), 100);
    }

    #[test]
    fn failed_scheduling_message() {
        let mut d = Diagnosis { nodes: 3, ..Default::default() };
        d.reasons.insert("node(s) didn't match pod anti-affinity rules".into(), 2);
        d.reasons.insert("Insufficient cpu".into(), 1);
        assert_eq!(
            d.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match pod anti-affinity rules."
        );
    }
}
