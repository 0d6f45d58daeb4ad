//! NodeResourcesFit: the pod's requests must fit in what the node has left (CPU, memory,
//! ephemeral storage, pod count); scores by least allocated (emptier nodes first).

use crate::scheduler::framework::{CycleState, FilterPlugin, MAX_SCORE, Reason, ScorePlugin};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub struct NodeResourcesFit;

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> Result<(), Reason> {
        let (a, used, want) = (&node.allocatable, &node.requested, &pod.requests);
        if used.pods + 1 > a.pods {
            return Err("Too many pods".into());
        }
        for (name, want, used, have) in [
            ("cpu", want.milli_cpu, used.milli_cpu, a.milli_cpu),
            ("memory", want.memory, used.memory, a.memory),
            (
                "ephemeral-storage",
                want.ephemeral_storage,
                used.ephemeral_storage,
                a.ephemeral_storage,
            ),
        ] {
            if want > 0 && used + want > have {
                return Err(format!("Insufficient {name}"));
            }
        }
        Ok(())
    }
}

/// Share of `alloc` left after `used` (0..=100).
pub fn free_share(used: i64, alloc: i64) -> i64 {
    if alloc <= 0 || used > alloc { 0 } else { (alloc - used) * MAX_SCORE / alloc }
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn score(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> i64 {
        let (u, p, a) = (&node.nonzero_requested, &pod.nonzero, &node.allocatable);
        (free_share(u.milli_cpu + p.milli_cpu, a.milli_cpu)
            + free_share(u.memory + p.memory, a.memory))
            / 2
    }
}
