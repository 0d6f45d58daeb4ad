//! Resource accounting as the scheduler does it: CPU (millicores), memory, ephemeral storage
//! and pod count, and a pod's requests summed as Kubernetes counts them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::kube::quantity;

/// CPU and memory a container without requests is counted as using when scoring.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

/// CPU (millicores), memory and ephemeral storage (bytes), and pod count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
}

impl Resources {
    pub fn add(&mut self, o: &Self) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
    }
    pub fn sub(&mut self, o: &Self) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
    }
    pub fn max(&self, o: &Self) -> Self {
        Self {
            milli_cpu: self.milli_cpu.max(o.milli_cpu),
            memory: self.memory.max(o.memory),
            ephemeral_storage: self.ephemeral_storage.max(o.ephemeral_storage),
            pods: self.pods.max(o.pods),
        }
    }
}

/// A resource list (requests, capacity, allocatable) as [`Resources`]; what is missing or
/// unparsable counts as zero.
pub fn resources_of(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let get = |k: &str| list.and_then(|m| m.get(k)).map(|q| q.0.as_str());
    Resources {
        milli_cpu: get("cpu").and_then(quantity::milli).unwrap_or(0),
        memory: get("memory").and_then(quantity::value).unwrap_or(0),
        ephemeral_storage: get("ephemeral-storage").and_then(quantity::value).unwrap_or(0),
        pods: get("pods").and_then(quantity::value).unwrap_or(0),
    }
}

fn requests(r: Option<&ResourceRequirements>) -> Resources {
    resources_of(r.and_then(|r| r.requests.as_ref()))
}

/// (requests, non-zero requests) of a pod: containers summed, the largest init container if
/// bigger, plus overhead; one pod.
pub fn pod_requests(pod: &Pod) -> (Resources, Resources) {
    let mut sum = Resources::default();
    let mut nonzero = Resources::default();
    let Some(spec) = &pod.spec else { return (sum, nonzero) };
    for c in &spec.containers {
        let r = requests(c.resources.as_ref());
        sum.add(&r);
        let nz = Resources {
            milli_cpu: if r.milli_cpu == 0 { DEFAULT_MILLI_CPU } else { r.milli_cpu },
            memory: if r.memory == 0 { DEFAULT_MEMORY } else { r.memory },
            ..r
        };
        nonzero.add(&nz);
    }
    for c in spec.init_containers.iter().flatten() {
        let r = requests(c.resources.as_ref());
        sum = sum.max(&r);
        nonzero = nonzero.max(&r);
    }
    let overhead = resources_of(spec.overhead.as_ref());
    sum.add(&overhead);
    nonzero.add(&overhead);
    sum.pods = 1;
    nonzero.pods = 1;
    (sum, nonzero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_kubernetes_accounting() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "d"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b"},
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                "overhead": {"memory": "10Mi"},
            }
        }))
        .unwrap();
        let (r, nz) = pod_requests(&pod);
        assert_eq!(
            r,
            Resources { milli_cpu: 2000, memory: 74 << 20, ephemeral_storage: 0, pods: 1 }
        );
        assert_eq!(nz.milli_cpu, 2000, "the init container dominates");
        assert_eq!(nz.memory, (64 << 20) + DEFAULT_MEMORY + (10 << 20));
    }
}
