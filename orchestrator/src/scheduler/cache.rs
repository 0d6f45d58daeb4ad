//! The scheduler's view of the cluster: every node with the pods placed on it (bound, or
//! assumed while their binding is in flight), plus indexes that keep affinity and spreading
//! from scanning every pod: pods by namespace and label, and existing pods' required
//! anti-affinity terms grouped by identical term.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::matching;
use super::node_info::NodeInfo;
use super::pod_info::{AffinityTerm, Namespaces, PodInfo};
use super::resources::Resources;
use super::resources::resources_of;
use crate::api::selector::{LabelOp, LabelSelector};
use crate::kube::ObjectKey;

pub struct Placed {
    pub info: Arc<PodInfo>,
    pub node: String,
    pub assumed: bool,
}

type LabelKey = (String, String, String);

#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    pods: HashMap<ObjectKey, Placed>,
    by_label: HashMap<LabelKey, HashSet<ObjectKey>>,
    by_ns: HashMap<String, HashSet<ObjectKey>>,
    anti: HashMap<String, (AffinityTerm, HashSet<ObjectKey>)>,
}

fn empty_node(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        node: None,
        labels: Default::default(),
        taints: Vec::new(),
        unschedulable: false,
        runtime_handlers: Vec::new(),
        allocatable: Resources::default(),
        requested: Resources::default(),
        nonzero_requested: Resources::default(),
        pods: Vec::new(),
    }
}

impl Cache {
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        let i = match self.index.get(name) {
            Some(i) => *i,
            None => {
                self.nodes.push(empty_node(name));
                self.index.insert(name.to_owned(), self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[i]
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self.node_mut(&name);
        let status = node.status.clone().unwrap_or_default();
        let spec = node.spec.clone().unwrap_or_default();
        info.labels = matching::node_labels(&node);
        info.taints = spec.taints.unwrap_or_default();
        info.unschedulable = spec.unschedulable.unwrap_or(false);
        info.runtime_handlers = status
            .runtime_handlers
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| h.name)
            .collect();
        info.allocatable = resources_of(status.allocatable.as_ref().or(status.capacity.as_ref()));
        info.node = Some(node);
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(&i) = self.index.get(name) else { return };
        if !self.nodes[i].pods.is_empty() {
            self.nodes[i].node = None;
            return;
        }
        self.index.remove(name);
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    pub fn placed(&self, key: &ObjectKey) -> Option<&Placed> {
        self.pods.get(key)
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Puts a pod on a node (replacing where it was before).
    pub fn place(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) {
        self.remove_pod(&info.key);
        let key = info.key.clone();
        for (k, v) in &info.labels {
            self.by_label
                .entry((info.namespace.clone(), k.clone(), v.clone()))
                .or_default()
                .insert(key.clone());
        }
        self.by_ns.entry(info.namespace.clone()).or_default().insert(key.clone());
        for t in &info.required_anti_affinity {
            self.anti
                .entry(t.id())
                .or_insert_with(|| (t.clone(), HashSet::new()))
                .1
                .insert(key.clone());
        }
        self.node_mut(node).add_pod(info.clone());
        self.pods.insert(key, Placed { info, node: node.to_owned(), assumed });
    }

    pub fn remove_pod(&mut self, key: &ObjectKey) -> Option<Placed> {
        let p = self.pods.remove(key)?;
        let info = &p.info;
        for (k, v) in &info.labels {
            let lk = (info.namespace.clone(), k.clone(), v.clone());
            if let Some(s) = self.by_label.get_mut(&lk) {
                s.remove(key);
                if s.is_empty() {
                    self.by_label.remove(&lk);
                }
            }
        }
        if let Some(s) = self.by_ns.get_mut(&info.namespace) {
            s.remove(key);
            if s.is_empty() {
                self.by_ns.remove(&info.namespace);
            }
        }
        for t in &info.required_anti_affinity {
            let id = t.id();
            if let Some((_, s)) = self.anti.get_mut(&id) {
                s.remove(key);
                if s.is_empty() {
                    self.anti.remove(&id);
                }
            }
        }
        if let Some(&i) = self.index.get(&p.node) {
            self.nodes[i].remove_pod(key);
            if self.nodes[i].node.is_none() && self.nodes[i].pods.is_empty() {
                self.remove_node(&p.node.clone());
            }
        }
        Some(p)
    }

    /// Placed pods in `namespaces` matching `selector`, with their nodes.
    pub fn matching(
        &self,
        namespaces: &Namespaces,
        selector: &LabelSelector,
    ) -> Vec<(&PodInfo, &NodeInfo)> {
        let pinned = selector.0.iter().find_map(|r| match &r.op {
            LabelOp::Equals(v) => Some((r.key.as_str(), v.as_str())),
            LabelOp::In(vs) if vs.len() == 1 => Some((r.key.as_str(), vs[0].as_str())),
            _ => None,
        });
        let mut keys: Vec<&ObjectKey> = Vec::new();
        match (namespaces, pinned) {
            (Namespaces::List(list), Some((k, v))) => {
                for ns in list {
                    if let Some(s) = self.by_label.get(&(ns.clone(), k.to_owned(), v.to_owned())) {
                        keys.extend(s);
                    }
                }
            }
            (Namespaces::List(list), None) => {
                for ns in list {
                    keys.extend(self.by_ns.get(ns).into_iter().flatten());
                }
            }
            (Namespaces::All, _) => keys.extend(self.pods.keys()),
        }
        keys.into_iter()
            .filter_map(|k| self.pods.get(k))
            .filter(|p| namespaces.contains(&p.info.namespace) && selector.matches(&p.info.labels))
            .filter_map(|p| self.node(&p.node).map(|n| (&*p.info, n)))
            .collect()
    }

    /// Existing pods' required anti-affinity terms (identical terms once), each with the pods
    /// that carry it.
    pub fn anti_affinity_terms(
        &self,
    ) -> impl Iterator<Item = (&AffinityTerm, &HashSet<ObjectKey>)> {
        self.anti.values().map(|(t, keys)| (t, keys))
    }

    /// The node a placed pod is on.
    pub fn node_of(&self, key: &ObjectKey) -> Option<&NodeInfo> {
        self.pods.get(key).and_then(|p| self.node(&p.node))
    }
}
