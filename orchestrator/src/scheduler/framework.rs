//! The scheduling framework's seams: [`FilterPlugin`] (may this pod run on this node?) and
//! [`ScorePlugin`] (how good is this node?) and the per-cycle state plugins share between their
//! phases. The pod and node views they read are [`PodInfo`] and [`NodeInfo`].

use std::any::Any;
use std::collections::HashMap;

use super::cache::Cache;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;

/// State plugins compute once per scheduling cycle and read per node, keyed by plugin name.
#[derive(Default)]
pub struct CycleState {
    map: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, plugin: &'static str, v: T) {
        self.map.insert(plugin, Box::new(v));
    }
    pub fn read<T: Any>(&self, plugin: &'static str) -> Option<&T> {
        self.map.get(plugin).and_then(|b| b.downcast_ref())
    }
    pub fn read_mut<T: Any>(&mut self, plugin: &'static str) -> Option<&mut T> {
        self.map.get_mut(plugin).and_then(|b| b.downcast_mut())
    }
}

/// Why a node (or every node) cannot take the pod, in Kubernetes' words.
pub type Reason = String;

pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Once per cycle, before any node: computes state; an error rules out every node.
    fn pre_filter(
        &self,
        _pod: &PodInfo,
        _cache: &Cache,
        _state: &mut CycleState,
    ) -> Result<(), Reason> {
        Ok(())
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> Result<(), Reason>;

    /// Preemption asks: what if `victim` (on `node`) were gone? Plugins whose pre-filter state
    /// counts pods update it here.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _victim: &PodInfo,
        _node: &NodeInfo,
    ) {
    }
}

pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn weight(&self) -> i64;

    /// Once per cycle, with the nodes that passed filtering.
    fn pre_score(
        &self,
        _pod: &PodInfo,
        _cache: &Cache,
        _nodes: &[&NodeInfo],
        _state: &mut CycleState,
    ) {
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, state: &CycleState) -> i64;

    /// Maps raw scores into 0..=100 (plugins that already score so keep the default).
    fn normalize(&self, _scores: &mut [i64]) {}
}

pub const MAX_SCORE: i64 = 100;

/// Scales scores so the best is 100 (`reverse`: the lowest raw score is best).
pub fn normalize_to_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => MAX_SCORE,
            (0, false) => 0,
            (m, false) => *s * MAX_SCORE / m,
            (m, true) => MAX_SCORE - *s * MAX_SCORE / m,
        };
    }
}
