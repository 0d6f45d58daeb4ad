//! Background work the API server itself owes its objects: garbage collection by
//! ownerReferences (background, foreground and orphan propagation) and namespace termination.
//!
//! One task follows every change in the store, keeps an owner graph in memory, and queues keys;
//! the work is level-triggered (it re-reads what it acts on), so a missed or repeated event is
//! harmless and a restart re-derives everything from a full list.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::engine::{Api, FOREGROUND, ORPHAN, decode, kind_of_key};
use super::error::ApiError;
use super::meta;
use super::request::{DeleteOptions, ListOptions, Propagation, Target};
use super::resources::{Storage, all};
use crate::store::{self, EventKind};

struct Node {
    uid: String,
    namespace: Option<String>,
    name: String,
    owners: Vec<String>,
    deleting: bool,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    by_uid: HashMap<String, String>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn put(&mut self, key: &str, obj: &Value) {
        self.remove(key);
        let node = Node {
            uid: meta::uid(obj).to_owned(),
            namespace: meta::namespace(obj).map(str::to_owned),
            name: meta::name(obj).to_owned(),
            owners: meta::owner_uids(obj),
            deleting: meta::is_deleting(obj),
        };
        for o in &node.owners {
            self.dependents.entry(o.clone()).or_default().insert(key.to_owned());
        }
        self.by_uid.insert(node.uid.clone(), key.to_owned());
        self.nodes.insert(key.to_owned(), node);
    }

    fn remove(&mut self, key: &str) -> Option<Node> {
        let node = self.nodes.remove(key)?;
        for o in &node.owners {
            if let Some(d) = self.dependents.get_mut(o) {
                d.remove(key);
                if d.is_empty() {
                    self.dependents.remove(o);
                }
            }
        }
        if self.by_uid.get(&node.uid).is_some_and(|k| k == key) {
            self.by_uid.remove(&node.uid);
        }
        Some(node)
    }

    /// An object all of whose owners are gone.
    fn dangling(&self, key: &str) -> bool {
        self.nodes.get(key).is_some_and(|n| {
            !n.owners.is_empty() && n.owners.iter().all(|o| !self.by_uid.contains_key(o))
        })
    }

    fn dependents_of(&self, key: &str) -> Vec<String> {
        self.nodes
            .get(key)
            .and_then(|n| self.dependents.get(&n.uid))
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, PartialEq, Eq, Hash, Clone)]
enum Work {
    /// Delete the object if its owners are all gone.
    Collect(String),
    /// A deleting object: honour its orphan/foregroundDeletion finalizers.
    Finalize(String),
    /// Empty a terminating namespace, then let it go.
    Namespace(String),
}

/// Runs until the store stops; restarts from a full list after errors.
pub async fn run(api: Arc<Api>) {
    loop {
        if let Err(e) = run_once(&api).await {
            tracing::warn!("lifecycle controller: {e}; restarting");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run_once(api: &Api) -> Result<(), ApiError> {
    let store = api.store().clone();
    let list = store
        .list("/registry/", store::ListOptions::default())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut graph = Graph::default();
    let mut queue: VecDeque<Work> = VecDeque::new();
    for kv in &list.items {
        let obj = decode(kv)?;
        graph.put(&kv.key, &obj);
    }
    for kv in &list.items {
        enqueue_for(&graph, &kv.key, &decode(kv)?, &mut queue);
    }
    let mut events = store
        .watch("/registry/", list.revision)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    loop {
        while let Some(w) = queue.pop_front() {
            // Drain events that arrived meanwhile first, so the graph is fresh.
            if let Err(e) = handle(api, &graph, &w).await {
                tracing::debug!("lifecycle {w:?}: {e}");
            }
        }
        let Some(ev) = events.next().await else { return Ok(()) };
        let ev = ev.map_err(|e| ApiError::internal(e.to_string()))?;
        let key = ev.kv.key.clone();
        match ev.kind {
            EventKind::Put => {
                let obj = decode(&ev.kv)?;
                graph.put(&key, &obj);
                enqueue_for(&graph, &key, &obj, &mut queue);
            }
            EventKind::Delete => {
                let Some(node) = graph.remove(&key) else { continue };
                for dep in graph.dependents.get(&node.uid).cloned().unwrap_or_default() {
                    push(&mut queue, Work::Collect(dep));
                }
                for owner in &node.owners {
                    if let Some(k) = graph.by_uid.get(owner)
                        && graph.nodes.get(k).is_some_and(|n| n.deleting)
                    {
                        push(&mut queue, Work::Finalize(k.clone()));
                    }
                }
                if let Some(ns) = &node.namespace {
                    let ns_key = format!("/registry/core/namespaces/{ns}");
                    if graph.nodes.get(&ns_key).is_some_and(|n| n.deleting) {
                        push(&mut queue, Work::Namespace(ns.clone()));
                    }
                }
            }
        }
    }
}

fn push(queue: &mut VecDeque<Work>, w: Work) {
    if !queue.contains(&w) {
        queue.push_back(w);
    }
}

fn enqueue_for(graph: &Graph, key: &str, obj: &Value, queue: &mut VecDeque<Work>) {
    if graph.dangling(key) {
        push(queue, Work::Collect(key.to_owned()));
    }
    if meta::is_deleting(obj) {
        let f = meta::finalizers(obj);
        if f.iter().any(|x| x == ORPHAN || x == FOREGROUND) {
            push(queue, Work::Finalize(key.to_owned()));
        }
        if key.starts_with("/registry/core/namespaces/") {
            push(queue, Work::Namespace(meta::name(obj).to_owned()));
        }
    }
}

fn background() -> DeleteOptions {
    DeleteOptions { propagation: Some(Propagation::Background), ..Default::default() }
}

async fn delete_key(api: &Api, graph: &Graph, key: &str) -> Result<(), ApiError> {
    let (Some(kind), Some(node)) = (kind_of_key(key), graph.nodes.get(key)) else { return Ok(()) };
    match api.delete_object(kind, node.namespace.as_deref(), &node.name, &background()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn handle(api: &Api, graph: &Graph, w: &Work) -> Result<(), ApiError> {
    match w {
        Work::Collect(key) => {
            if graph.dangling(key) {
                delete_key(api, graph, key).await?;
            }
        }
        Work::Finalize(key) => {
            let (Some(kind), Some(node)) = (kind_of_key(key), graph.nodes.get(key)) else {
                return Ok(());
            };
            let (obj, _) = match api.load_object(kind, node.namespace.as_deref(), &node.name).await
            {
                Ok(o) => o,
                Err(e) if e.code == 404 => return Ok(()),
                Err(e) => return Err(e),
            };
            let finalizers = meta::finalizers(&obj);
            let deps = graph.dependents_of(key);
            if finalizers.iter().any(|f| f == ORPHAN) {
                for dep in &deps {
                    let (Some(dk), Some(dn)) = (kind_of_key(dep), graph.nodes.get(dep)) else {
                        continue;
                    };
                    let uid = node.uid.clone();
                    let r = api
                        .modify(dk, dn.namespace.as_deref(), &dn.name, |o| {
                            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                                refs.retain(|r| r["uid"] != uid.as_str());
                            }
                        })
                        .await;
                    if let Err(e) = r
                        && e.code != 404
                    {
                        return Err(e);
                    }
                }
                remove_finalizer(api, kind, node, ORPHAN).await?;
            } else if finalizers.iter().any(|f| f == FOREGROUND) {
                if deps.is_empty() {
                    remove_finalizer(api, kind, node, FOREGROUND).await?;
                } else {
                    for dep in &deps {
                        if graph.nodes.get(dep).is_some_and(|n| !n.deleting) {
                            delete_key(api, graph, dep).await?;
                        }
                    }
                }
            }
        }
        Work::Namespace(ns) => {
            let mut remaining = 0;
            for kind in all().into_iter().filter(|k| k.namespaced && k.storage == Storage::Stored) {
                let t = Target { kind, namespace: Some(ns.clone()), name: None, subresource: None };
                let (items, _) = api.list_objects(&t, &ListOptions::default()).await?;
                for obj in items {
                    remaining += 1;
                    if !meta::is_deleting(&obj) {
                        let r = api
                            .delete_object(kind, Some(ns), meta::name(&obj), &background())
                            .await;
                        if let Err(e) = r
                            && e.code != 404
                        {
                            return Err(e);
                        }
                    }
                }
            }
            if remaining == 0 {
                let nskind = super::resources::find("", "v1", "namespaces")
                    .ok_or_else(|| ApiError::internal("no namespaces"))?;
                let r = api
                    .modify(nskind, None, ns, |o| {
                        o["spec"]["finalizers"] = json!([]);
                    })
                    .await;
                if let Err(e) = r
                    && e.code != 404
                {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

async fn remove_finalizer(
    api: &Api,
    kind: &'static super::resources::ResourceKind,
    node: &Node,
    finalizer: &str,
) -> Result<(), ApiError> {
    let r = api
        .modify(kind, node.namespace.as_deref(), &node.name, |o| {
            if let Some(f) = o["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != finalizer);
            }
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
