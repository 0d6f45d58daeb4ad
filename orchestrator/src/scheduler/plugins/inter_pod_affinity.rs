//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, and the
//! required anti-affinity of pods already placed, counted per topology domain once per cycle;
//! preferred terms score.

use std::collections::HashMap;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{CycleState, FilterPlugin, MAX_SCORE, Reason, ScorePlugin};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::{AffinityTerm, PodInfo};

pub struct InterPodAffinity;

const NAME: &str = "InterPodAffinity";

/// Matching pods per topology value, for one term.
type Counts = HashMap<String, i64>;

#[derive(Default)]
struct FilterState {
    affinity: Vec<Counts>,
    /// No pod matches the pod's affinity terms yet, but the pod matches them itself: the first
    /// of a group may go anywhere (as in Kubernetes).
    affinity_self_satisfied: bool,
    anti: Vec<Counts>,
    /// Existing pods' anti-affinity against this pod: topology key -> value -> count.
    existing: HashMap<String, Counts>,
}

fn count_terms(terms: &[AffinityTerm], cache: &Cache) -> Vec<Counts> {
    terms
        .iter()
        .map(|t| {
            let mut c = Counts::new();
            if let Some(sel) = &t.selector {
                for (_, node) in cache.matching(&t.namespaces, sel) {
                    if let Some(v) = node.labels.get(&t.topology_key) {
                        *c.entry(v.clone()).or_default() += 1;
                    }
                }
            }
            c
        })
        .collect()
}

fn has(counts: &Counts, node: &NodeInfo, key: &str) -> bool {
    node.labels.get(key).is_some_and(|v| counts.get(v).is_some_and(|c| *c > 0))
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        state: &mut CycleState,
    ) -> Result<(), Reason> {
        let mut s = FilterState {
            affinity: count_terms(&pod.required_affinity, cache),
            anti: count_terms(&pod.required_anti_affinity, cache),
            ..Default::default()
        };
        s.affinity_self_satisfied = s.affinity.iter().all(|c| c.is_empty())
            && pod.required_affinity.iter().all(|t| t.matches(pod));
        for (term, carriers) in cache.anti_affinity_terms() {
            if !term.matches(pod) {
                continue;
            }
            for n in carriers.iter().filter_map(|k| cache.node_of(k)) {
                if let Some(v) = n.labels.get(&term.topology_key) {
                    *s.existing
                        .entry(term.topology_key.clone())
                        .or_default()
                        .entry(v.clone())
                        .or_default() += 1;
                }
            }
        }
        state.write(NAME, s);
        Ok(())
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Reason> {
        let Some(s) = state.read::<FilterState>(NAME) else { return Ok(()) };
        if pod
            .required_anti_affinity
            .iter()
            .zip(&s.anti)
            .any(|(t, c)| has(c, node, &t.topology_key))
        {
            return Err("node(s) didn't match pod anti-affinity rules".into());
        }
        let affine = pod.required_affinity.iter().zip(&s.affinity).all(|(t, c)| {
            has(c, node, &t.topology_key)
                || (s.affinity_self_satisfied && node.labels.contains_key(&t.topology_key))
        });
        if !affine {
            return Err("node(s) didn't match pod affinity rules".into());
        }
        if s.existing.iter().any(|(k, counts)| has(counts, node, k)) {
            return Err("node(s) didn't satisfy existing pods anti-affinity rules".into());
        }
        Ok(())
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        let Some(s) = state.read_mut::<FilterState>(NAME) else { return };
        let dec = |counts: &mut Counts, key: &str| {
            if let Some(v) = node.labels.get(key)
                && let Some(c) = counts.get_mut(v)
            {
                *c -= 1;
            }
        };
        for (t, c) in pod.required_affinity.iter().zip(s.affinity.iter_mut()) {
            if t.matches(victim) {
                dec(c, &t.topology_key);
            }
        }
        for (t, c) in pod.required_anti_affinity.iter().zip(s.anti.iter_mut()) {
            if t.matches(victim) {
                dec(c, &t.topology_key);
            }
        }
        for t in &victim.required_anti_affinity {
            if t.matches(pod)
                && let Some(c) = s.existing.get_mut(&t.topology_key)
            {
                dec(c, &t.topology_key);
            }
        }
    }
}

/// Preferred terms: topology key -> value -> summed weight (anti-affinity subtracts).
struct ScoreState(HashMap<String, Counts>);

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, _: &[&NodeInfo], state: &mut CycleState) {
        let mut m: HashMap<String, Counts> = HashMap::new();
        let terms = pod
            .preferred_affinity
            .iter()
            .map(|(w, t)| (i64::from(*w), t))
            .chain(pod.preferred_anti_affinity.iter().map(|(w, t)| (-i64::from(*w), t)));
        for (w, t) in terms {
            let Some(sel) = &t.selector else { continue };
            for (_, node) in cache.matching(&t.namespaces, sel) {
                if let Some(v) = node.labels.get(&t.topology_key) {
                    *m.entry(t.topology_key.clone()).or_default().entry(v.clone()).or_default() +=
                        w;
                }
            }
        }
        state.write("InterPodAffinityScore", ScoreState(m));
    }

    fn score(&self, _: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64 {
        let Some(ScoreState(m)) = state.read::<ScoreState>("InterPodAffinityScore") else {
            return 0;
        };
        m.iter().filter_map(|(k, counts)| node.labels.get(k).and_then(|v| counts.get(v))).sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        let (min, max) =
            (scores.iter().copied().min().unwrap_or(0), scores.iter().copied().max().unwrap_or(0));
        for s in scores.iter_mut() {
            *s = if max == min { 0 } else { (*s - min) * MAX_SCORE / (max - min) };
        }
    }
}
