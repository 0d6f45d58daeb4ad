//! [`PodInfo`], what plugins read about a pod, and how it is built: its requests (counted by
//! [`super::resources`]), the RuntimeClass's node selector and tolerations merged in, affinity
//! terms resolved.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodAffinityTerm, Toleration};
use k8s_openapi::api::node::v1::RuntimeClass;

use super::matching;
use super::resources::{Resources, pod_requests};
use crate::api::selector::LabelSelector;
use crate::kube::{Informer, ObjectKey};

/// Which namespaces an affinity term looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespaces {
    All,
    List(Vec<String>),
}

impl Namespaces {
    pub fn contains(&self, ns: &str) -> bool {
        match self {
            Self::All => true,
            Self::List(l) => l.iter().any(|n| n == ns),
        }
    }
}

/// One pod (anti-)affinity term, resolved: pods matching `selector` in `namespaces`, counted
/// per value of the node label `topology_key`.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: Namespaces,
    /// None (no selector given, or an unparsable one) matches no pod.
    pub selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl AffinityTerm {
    pub fn matches(&self, pod: &PodInfo) -> bool {
        self.namespaces.contains(&pod.namespace)
            && self.selector.as_ref().is_some_and(|s| s.matches(&pod.labels))
    }

    /// Identical terms (e.g. of one Deployment's replicas) share this id.
    pub fn id(&self) -> String {
        let sel = self.selector.as_ref().map_or("<none>".to_owned(), |s| s.to_string());
        format!("{:?}|{sel}|{}", self.namespaces, self.topology_key)
    }
}

/// What plugins read about a pod, parsed once.
#[derive(Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: ObjectKey,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Requests as resource fit counts them.
    pub requests: Resources,
    /// Requests with defaults for unset CPU/memory, as scoring counts them.
    pub nonzero: Resources,
    pub priority: i32,
    /// The pod's tolerations and its RuntimeClass's.
    pub tolerations: Vec<Toleration>,
    /// The pod's nodeSelector and its RuntimeClass's.
    pub node_selector: BTreeMap<String, String>,
    /// The RuntimeClass handler the pod needs, and whether the class exists.
    pub runtime_handler: Option<Result<String, String>>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
}

/// What pod infos are resolved against.
pub struct Lookups {
    pub runtime_classes: Arc<Informer<RuntimeClass>>,
    pub namespaces: Arc<Informer<Namespace>>,
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
