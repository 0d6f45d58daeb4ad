//! NodeResourcesBalancedAllocation: prefers nodes whose CPU and memory would be used in equal
//! shares after placing the pod.

use crate::scheduler::framework::{CycleState, MAX_SCORE, ScorePlugin};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub struct BalancedAllocation;

fn fraction(used: i64, alloc: i64) -> f64 {
    if alloc <= 0 { 1.0 } else { (used as f64 / alloc as f64).min(1.0) }
}

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> i64 {
        let (u, p, a) = (&node.nonzero_requested, &pod.nonzero, &node.allocatable);
        let cpu = fraction(u.milli_cpu + p.milli_cpu, a.milli_cpu);
        let mem = fraction(u.memory + p.memory, a.memory);
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_SCORE as f64) as i64
    }
}
