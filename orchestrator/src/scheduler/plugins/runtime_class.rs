//! RuntimeClass: a pod naming a RuntimeClass runs only on nodes whose runtime offers that
//! class's handler (`status.runtimeHandlers`); the class's node selector and tolerations were
//! merged into the pod's when it was read.

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{CycleState, FilterPlugin, Reason};
use crate::scheduler::node_info::NodeInfo;
use crate::scheduler::pod_info::PodInfo;

pub struct RuntimeClass;

impl FilterPlugin for RuntimeClass {
    fn name(&self) -> &'static str {
        "RuntimeClass"
    }

    fn pre_filter(&self, pod: &PodInfo, _: &Cache, _: &mut CycleState) -> Result<(), Reason> {
        match &pod.runtime_handler {
            Some(Err(name)) => Err(format!("RuntimeClass \"{name}\" not found")),
            _ => Ok(()),
        }
    }

    fn filter(&self, pod: &PodInfo, node: &NodeInfo, _: &CycleState) -> Result<(), Reason> {
        match &pod.runtime_handler {
            Some(Ok(h)) if !node.runtime_handlers.iter().any(|x| x == h) => {
                Err(format!("node(s) didn't support runtime handler \"{h}\""))
            }
            _ => Ok(()),
        }
    }
}
