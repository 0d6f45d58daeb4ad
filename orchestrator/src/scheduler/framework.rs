//! The scheduling framework's seams: [`FilterPlugin`] (may this pod run on this node?) and
//! [`ScorePlugin`] (how good is this node?), the per-cycle state plugins share between their
//! phases, and the pod and node views they read.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};

use super::cache::Cache;
use crate::api::selector::LabelSelector;
use crate::kube::ObjectKey;

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

/// What plugins read about a node, with the pods placed on it (bound or assumed).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// None while pods name a node the cache has not seen (or that was deleted).
    pub node: Option<Arc<Node>>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub runtime_handlers: Vec<String>,
    pub allocatable: Resources,
    pub requested: Resources,
    pub nonzero_requested: Resources,
    pub pods: Vec<Arc<PodInfo>>,
}

impl NodeInfo {
    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.requested.add(&p.requests);
        self.nonzero_requested.add(&p.nonzero);
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, key: &ObjectKey) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == *key)?;
        let p = self.pods.swap_remove(i);
        self.requested.sub(&p.requests);
        self.nonzero_requested.sub(&p.nonzero);
        Some(p)
    }
}

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
