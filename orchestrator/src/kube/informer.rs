//! Informers: a list + watch cache of one kind, kept current in one task, that tells handlers
//! about every change. Handlers only enqueue keys (they run under the cache's lock and must not
//! read the same informer). Writers may feed their own results back ([`Informer::observe`]) so
//! a controller sees its writes before the watch delivers them; resourceVersions (store
//! revisions, totally ordered) keep that from ever going backwards.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::key::{ObjectKey, revision};
use super::typed::{Kube, Object, kind_of};
use crate::api::ApiError;
use crate::api::resources::ResourceKind;
use crate::api::selector::LabelSelector;

/// What an informer caches: anything with object metadata.
pub trait Cached: DeserializeOwned + Send + Sync + 'static {
    fn meta(&self) -> &ObjectMeta;
}

impl<K: Object> Cached for K {
    fn meta(&self) -> &ObjectMeta {
        self.metadata()
    }
}

pub enum Change<T> {
    Added(Arc<T>),
    Updated { old: Arc<T>, new: Arc<T> },
    Deleted(Arc<T>),
}

impl<T> Change<T> {
    /// The object as it is now (or was last, when deleted).
    pub fn object(&self) -> &Arc<T> {
        match self {
            Self::Added(o) | Self::Deleted(o) | Self::Updated { new: o, .. } => o,
        }
    }
}

type Handler<T> = Box<dyn Fn(&Change<T>) + Send + Sync>;

struct State<T> {
    items: BTreeMap<ObjectKey, Arc<T>>,
    by_owner: HashMap<String, BTreeSet<ObjectKey>>,
    /// Deletions seen through writes, until the watch passes them.
    tombstones: HashMap<ObjectKey, i64>,
}

impl<T: Cached> State<T> {
    fn index(&mut self, key: &ObjectKey, obj: &T, add: bool) {
        for r in obj.meta().owner_references.iter().flatten() {
            if add {
                self.by_owner.entry(r.uid.clone()).or_default().insert(key.clone());
            } else if let Some(s) = self.by_owner.get_mut(&r.uid) {
                s.remove(key);
                if s.is_empty() {
                    self.by_owner.remove(&r.uid);
                }
            }
        }
    }
}

pub struct Informer<T> {
    kind: &'static ResourceKind,
    state: Mutex<State<T>>,
    handlers: RwLock<Vec<Handler<T>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<T: Cached> Informer<T> {
    pub fn new(kind: &'static ResourceKind) -> Arc<Self> {
        Arc::new(Self {
            kind,
            state: Mutex::new(State {
                items: BTreeMap::new(),
                by_owner: HashMap::new(),
                tombstones: HashMap::new(),
            }),
            handlers: RwLock::new(Vec::new()),
            synced: tokio::sync::watch::channel(false).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` on every change (the initial list arrives as additions).
    pub fn on_change(&self, f: impl Fn(&Change<T>) + Send + Sync + 'static) {
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
    }

    fn dispatch(&self, change: &Change<T>) {
        for h in self.handlers.read().unwrap_or_else(|e| e.into_inner()).iter() {
            h(change);
        }
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<T>> {
        self.lock().items.get(key).cloned()
    }

    pub fn list(&self) -> Vec<Arc<T>> {
        self.lock().items.values().cloned().collect()
    }

    /// Objects in one namespace.
    pub fn list_in(&self, ns: &str) -> Vec<Arc<T>> {
        let st = self.lock();
        let from = ObjectKey { namespace: Some(ns.to_owned()), name: String::new() };
        st.items
            .range(from..)
            .take_while(|(k, _)| k.ns() == Some(ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects in `ns` whose labels match `selector`.
    pub fn select(&self, ns: &str, selector: &LabelSelector) -> Vec<Arc<T>> {
        self.list_in(ns)
            .into_iter()
            .filter(|o| {
                let labels = o.meta().labels.clone().unwrap_or_default();
                selector.matches(&labels)
            })
            .collect()
    }

    /// Objects with an ownerReference to `uid`.
    pub fn owned_by(&self, uid: &str) -> Vec<Arc<T>> {
        let st = self.lock();
        st.by_owner
            .get(uid)
            .map(|keys| keys.iter().filter_map(|k| st.items.get(k).cloned()).collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an object as written or read; ignored unless newer than what is cached.
    pub fn observe(&self, obj: T) {
        let key = ObjectKey::of(obj.meta());
        let rv = revision(obj.meta());
        let mut st = self.lock();
        if st.tombstones.get(&key).is_some_and(|t| *t >= rv) {
            return;
        }
        let new = Arc::new(obj);
        let change = match st.items.get(&key).cloned() {
            Some(old) if revision(old.meta()) >= rv => return,
            Some(old) => {
                st.index(&key, &old, false);
                Change::Updated { old, new: new.clone() }
            }
            None => Change::Added(new.clone()),
        };
        st.index(&key, &new, true);
        st.items.insert(key, new);
        self.dispatch(&change);
    }

    /// Records a deletion at `rv` (the revision of the deletion).
    pub fn observe_deleted(&self, key: &ObjectKey, rv: i64) {
        let mut st = self.lock();
        st.tombstones.insert(key.clone(), rv);
        if let Some(old) = st.items.get(key).cloned()
            && revision(old.meta()) < rv
        {
            st.items.remove(key);
            st.index(key, &old, false);
            self.dispatch(&Change::Deleted(old));
        }
    }

    /// The watch has reached `rv`: deletions up to it are now known through it.
    fn passed(&self, rv: i64) {
        let mut st = self.lock();
        if !st.tombstones.is_empty() {
            st.tombstones.retain(|_, t| *t > rv);
        }
    }

    /// Replaces the cache with a fresh list, telling handlers the difference.
    fn replace(&self, items: Vec<T>, rv: i64) {
        let mut fresh: BTreeMap<ObjectKey, T> =
            items.into_iter().map(|o| (ObjectKey::of(o.meta()), o)).collect();
        let gone: Vec<ObjectKey> = {
            let st = self.lock();
            st.items.keys().filter(|k| !fresh.contains_key(*k)).cloned().collect()
        };
        for k in gone {
            self.observe_deleted(&k, rv);
        }
        for (_, o) in std::mem::take(&mut fresh) {
            self.observe(o);
        }
        self.passed(rv);
    }

    /// Whether the first list has been loaded.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Keeps the cache current until the task is aborted.
    pub async fn run(self: Arc<Self>, kube: Kube) {
        loop {
            match self.list_and_watch(&kube).await {
                Ok(()) => {}
                Err(e) => tracing::debug!("informer {}: {e}; relisting", self.kind.plural),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn list_and_watch(&self, kube: &Kube) -> Result<(), ApiError> {
        let (items, rv) = kube.list_raw(self.kind, None, LabelSelector::default()).await?;
        let decoded = items.into_iter().filter_map(|v| self.decode(v)).collect();
        let mut rv: i64 = rv.parse().unwrap_or(0);
        self.replace(decoded, rv);
        self.synced.send_replace(true);
        loop {
            let mut events = kube.watch(self.kind, &rv.to_string()).await?;
            while let Some(mut ev) = events.next().await {
                let obj = ev["object"].take();
                let seen = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse::<i64>().ok())
                    .unwrap_or(rv);
                match ev["type"].as_str() {
                    Some("ADDED" | "MODIFIED") => {
                        if let Some(o) = self.decode(obj) {
                            self.observe(o);
                        }
                    }
                    Some("DELETED") => {
                        if let Some(o) = self.decode(obj) {
                            self.observe_deleted(&ObjectKey::of(o.meta()), seen);
                        }
                    }
                    Some("BOOKMARK") => {}
                    _ => {
                        let msg = obj["message"].as_str().unwrap_or("watch error").to_owned();
                        return Err(ApiError::gone(msg));
                    }
                }
                rv = rv.max(seen);
                self.passed(rv);
            }
        }
    }

    fn decode(&self, v: Value) -> Option<T> {
        match serde_json::from_value(v) {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!("informer {}: undecodable object: {e}", self.kind.plural);
                None
            }
        }
    }
}

type Runner = Box<dyn FnOnce() -> tokio::task::JoinHandle<()> + Send>;

/// The informers of one process, shared by every component in it: one per kind.
pub struct Informers {
    kube: Kube,
    map: Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>,
    runners: Mutex<Vec<Runner>>,
    waiters: Mutex<Vec<Arc<dyn Synced>>>,
}

trait Synced: Send + Sync {
    fn synced(&self) -> bool;
}

impl<T: Cached> Synced for Informer<T> {
    fn synced(&self) -> bool {
        self.has_synced()
    }
}

impl Informers {
    pub fn new(kube: Kube) -> Arc<Self> {
        Arc::new(Self {
            kube,
            map: Mutex::new(HashMap::new()),
            runners: Mutex::new(Vec::new()),
            waiters: Mutex::new(Vec::new()),
        })
    }

    pub fn kube(&self) -> &Kube {
        &self.kube
    }

    /// The informer of `K` (created on first use; runs from [`Self::start`]).
    pub fn get<K: Object>(&self) -> Arc<Informer<K>> {
        let kind = kind_of::<K>();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = map.get(kind.plural).and_then(|a| a.clone().downcast::<Informer<K>>().ok())
        {
            return i;
        }
        let inf = Informer::<K>::new(kind);
        map.insert(kind.plural, inf.clone());
        let (run, kube) = (inf.clone(), self.kube.clone());
        self.runners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(move || tokio::spawn(run.run(kube))));
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).push(inf.clone());
        inf
    }

    /// Starts every informer created so far.
    pub fn start(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|e| e.into_inner()));
        runners.into_iter().map(|r| r()).collect()
    }

    /// Starts every informer created so far, for as long as the returned guard lives (for
    /// informers that belong to one loop, which ends them by ending).
    pub fn start_scoped(&self) -> ScopedInformers {
        ScopedInformers(self.start())
    }

    /// Waits until every informer has loaded its first list.
    pub async fn wait_synced(&self) {
        loop {
            let all =
                self.waiters.lock().unwrap_or_else(|e| e.into_inner()).iter().all(|w| w.synced());
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
/// Running informers that stop when this is dropped ([`Informers::start_scoped`]).
pub struct ScopedInformers(Vec<tokio::task::JoinHandle<()>>);

impl ScopedInformers {
    /// Another task that ends with these informers.
    pub fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for ScopedInformers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
