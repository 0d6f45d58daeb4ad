//! Builds [`PodInfo`]: requests summed as Kubernetes counts them, the RuntimeClass's node
//! selector and tolerations merged in, affinity terms resolved.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodAffinityTerm, ResourceRequirements};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::framework::{AffinityTerm, Namespaces, PodInfo, Resources};
use super::matching;
use crate::kube::{Informer, ObjectKey, quantity};

/// CPU and memory a container without requests is counted as using when scoring.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 << 20;

/// What pod infos are resolved against.
pub struct Lookups {
    pub runtime_classes: Arc<Informer<RuntimeClass>>,
    pub namespaces: Arc<Informer<Namespace>>,
}

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

fn term(t: &PodAffinityTerm, own_ns: &str, l: &Lookups) -> AffinityTerm {
    let namespaces = match (&t.namespaces, &t.namespace_selector) {
        (_, Some(sel)) => {
            let everything = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
            let mut list: Vec<String> = t.namespaces.clone().unwrap_or_default();
            if everything {
                Namespaces::All
            } else {
                if let Some(s) = matching::selector(sel) {
                    for ns in l.namespaces.list() {
                        if s.matches(&ns.metadata.labels.clone().unwrap_or_default()) {
                            list.push(ns.metadata.name.clone().unwrap_or_default());
                        }
                    }
                }
                Namespaces::List(list)
            }
        }
        (Some(list), None) if !list.is_empty() => Namespaces::List(list.clone()),
        _ => Namespaces::List(vec![own_ns.to_owned()]),
    };
    let selector = t.label_selector.as_ref().and_then(matching::selector);
    AffinityTerm { namespaces, selector, topology_key: t.topology_key.clone() }
}

pub fn build(pod: Arc<Pod>, l: &Lookups) -> PodInfo {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let key = ObjectKey::of(&pod.metadata);
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let (requests, nonzero) = pod_requests(&pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    let mut node_selector = spec.node_selector.clone().unwrap_or_default();
    let runtime_handler = spec.runtime_class_name.as_ref().map(|name| {
        match l.runtime_classes.get(&ObjectKey::new(None, name)) {
            Some(rc) => {
                if let Some(s) = &rc.scheduling {
                    tolerations.extend(s.tolerations.clone().unwrap_or_default());
                    node_selector.extend(s.node_selector.clone().unwrap_or_default());
                }
                Ok(rc.handler.clone())
            }
            None => Err(name.clone()),
        }
    });
    let affinity = spec.affinity.clone().unwrap_or_default();
    let pa = affinity.pod_affinity.unwrap_or_default();
    let paa = affinity.pod_anti_affinity.unwrap_or_default();
    let req = |v: Option<Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
        v.unwrap_or_default().iter().map(|t| term(t, &namespace, l)).collect()
    };
    PodInfo {
        required_affinity: req(pa.required_during_scheduling_ignored_during_execution),
        required_anti_affinity: req(paa.required_during_scheduling_ignored_during_execution),
        preferred_affinity: pa
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default()
            .iter()
            .map(|w| (w.weight, term(&w.pod_affinity_term, &namespace, l)))
            .collect(),
        preferred_anti_affinity: paa
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default()
            .iter()
            .map(|w| (w.weight, term(&w.pod_affinity_term, &namespace, l)))
            .collect(),
        priority: spec.priority.unwrap_or(0),
        pod,
        key,
        namespace,
        labels,
        requests,
        nonzero,
        tolerations,
        node_selector,
        runtime_handler,
    }
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
