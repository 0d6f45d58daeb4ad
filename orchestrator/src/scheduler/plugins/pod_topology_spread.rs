//! PodTopologySpread: pods matching a constraint's selector stay spread over the values of its
//! topology key within `maxSkew` (DoNotSchedule filters, ScheduleAnyway scores).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::node_affinity::node_matches_pod;
use crate::api::selector::{LabelOp, LabelRequirement, LabelSelector};
use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{
    CycleState, FilterPlugin, Reason, ScorePlugin, normalize_to_max,
};
use crate::scheduler::matching;
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::{Namespaces, PodInfo};

pub struct PodTopologySpread;

const NAME: &str = "PodTopologySpread";

struct Constraint {
    max_skew: i64,
    key: String,
    min_domains: usize,
    selector: Option<LabelSelector>,
    self_match: bool,
    /// Matching pods per domain, over the nodes that count.
    counts: HashMap<String, i64>,
}

impl Constraint {
    fn min(&self) -> i64 {
        if self.counts.len() < self.min_domains {
            return 0;
        }
        self.counts.values().copied().min().unwrap_or(0)
    }
}

/// Kubernetes' system defaults for pods a controller owns and that name no constraints:
/// spread softly over hosts (maxSkew 3) and zones (maxSkew 5), among pods like this one.
fn system_defaults(pod: &PodInfo) -> Vec<TopologySpreadConstraint> {
    let owned =
        pod.pod.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true));
    if !owned || pod.labels.is_empty() {
        return Vec::new();
    }
    let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(pod.labels.clone()),
        match_expressions: None,
    };
    [("kubernetes.io/hostname", 3), ("topology.kubernetes.io/zone", 5)]
        .into_iter()
        .map(|(key, skew)| TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector.clone()),
            ..Default::default()
        })
        .collect()
}

fn constraints(pod: &PodInfo, cache: &Cache, hard: bool) -> Vec<Constraint> {
    let given: &[TopologySpreadConstraint] = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    let defaults = if given.is_empty() && !hard { system_defaults(pod) } else { Vec::new() };
    let list = if given.is_empty() { &defaults[..] } else { given };
    list.iter()
        .filter(|c| (c.when_unsatisfiable == "DoNotSchedule") == hard)
        .map(|c| {
            let mut selector = c.label_selector.as_ref().and_then(matching::selector);
            if let Some(sel) = &mut selector {
                for k in c.match_label_keys.iter().flatten() {
                    if let Some(v) = pod.labels.get(k) {
                        sel.0.push(LabelRequirement {
                            key: k.clone(),
                            op: LabelOp::Equals(v.clone()),
                        });
                    }
                }
            }
            let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
            let mut counts = HashMap::new();
            for n in cache.nodes() {
                if n.node.is_some()
                    && (!honor_affinity || node_matches_pod(pod, n))
                    && let Some(v) = n.labels.get(&c.topology_key)
                {
                    counts.entry(v.clone()).or_insert(0);
                }
            }
            if let Some(sel) = &selector {
                let ns = Namespaces::List(vec![pod.namespace.clone()]);
                for (p, n) in cache.matching(&ns, sel) {
                    if p.pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if let Some(v) = n.labels.get(&c.topology_key)
                        && let Some(count) = counts.get_mut(v)
                    {
                        *count += 1;
                    }
                }
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
                self_match: selector.as_ref().is_some_and(|s| s.matches(&pod.labels)),
                selector,
                counts,
            }
        })
        .collect()
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), Reason> {
        state.write(NAME, constraints(pod, cache, true));
        Ok(())
    }

    fn filter(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Reason> {
        for c in state.read::<Vec<Constraint>>(NAME).into_iter().flatten() {
            let Some(v) = node.labels.get(&c.key) else {
                return Err(
                    "node(s) didn't match pod topology spread constraints (missing required label)"
                        .into(),
                );
            };
            let here = c.counts.get(v).copied().unwrap_or(0) + i64::from(c.self_match);
            if here - c.min() > c.max_skew {
                return Err("node(s) didn't match pod topology spread constraints".into());
            }
        }
        Ok(())
    }

    fn remove_pod(&self, state: &mut CycleState, _: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        for c in state.read_mut::<Vec<Constraint>>(NAME).into_iter().flatten() {
            let matches = c.selector.as_ref().is_some_and(|s| s.matches(&victim.labels));
            if matches
                && let Some(v) = node.labels.get(&c.key)
                && let Some(n) = c.counts.get_mut(v)
            {
                *n -= 1;
            }
        }
    }
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, _: &[&NodeInfo], state: &mut CycleState) {
        state.write("PodTopologySpreadScore", constraints(pod, cache, false));
    }

    fn score(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64 {
        state
            .read::<Vec<Constraint>>("PodTopologySpreadScore")
            .into_iter()
            .flatten()
            .map(|c| node.labels.get(&c.key).and_then(|v| c.counts.get(v)).copied().unwrap_or(0))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        normalize_to_max(scores, true);
    }
}
