//! The watch cache: every stored object, per resource kind, in memory, filled by one list of
//! the registry and kept current by one watch on the store, with a bounded window of each
//! kind's recent events — so lists and watches (the bulk of an API server's reads) are served
//! without touching the store, as the Kubernetes API server does.
//!
//! One watch over the whole registry (rather than one per kind) gives the cache a single
//! revision that every store write advances: a consistent read asks the store for its current
//! revision and waits until the cache has applied it, which makes reads from the cache never
//! older than any write acknowledged before them.

mod feed;
mod object;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

pub use feed::run;
pub use object::CachedObject;

use crate::store::{EventKind, Revision, Store};

/// Recent events kept per kind for watches that start from a resourceVersion.
const WINDOW: usize = 10_000;
/// Longest a read waits for the cache to catch up before it is served by the store.
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// One change of one object, as watches replay it.
#[derive(Debug)]
pub struct CachedEvent {
    pub kind: EventKind,
    /// The new state (of a deletion: the last state, at the deletion's revision).
    pub object: Arc<CachedObject>,
    /// The state before, if the object existed.
    pub prev: Option<Arc<CachedObject>>,
}

impl CachedEvent {
    pub fn revision(&self) -> Revision {
        self.object.revision
    }
}

#[derive(Default)]
struct KindCache {
    objects: BTreeMap<String, Arc<CachedObject>>,
    events: VecDeque<Arc<CachedEvent>>,
    /// Every event of this kind after this revision is in `events`.
    window_start: Revision,
}

#[derive(Default)]
struct State {
    /// Filled and following the store.
    ready: bool,
    /// Bumped on every refill, so watchers of an older fill stop instead of missing events.
    generation: u64,
    /// The store revision the cache reflects.
    revision: Revision,
    /// The revision of the last fill: no window reaches further back.
    filled_at: Revision,
    /// The newest compaction the cache was told of.
    compacted: Revision,
    kinds: HashMap<String, KindCache>,
}

/// A page read from the cache.
pub struct Page {
    pub items: Vec<Arc<CachedObject>>,
    /// The revision the page reflects.
    pub revision: Revision,
    /// The key of the first matching object after the page, when the limit cut it.
    pub next: Option<String>,
}

/// Why a watch cannot be served from the cache's window.
#[derive(Debug, PartialEq, Eq)]
pub enum WindowError {
    /// The revision is older than the window: the store may still have it.
    TooOld,
    /// The cache was refilled since the watch began (the store's watch failed).
    Refilled,
    /// The cache is not filled.
    NotReady,
}

/// Events a watcher has not seen yet.
pub struct Batch {
    pub events: Vec<Arc<CachedEvent>>,
    /// The revision the watcher has now seen everything up to.
    pub upto: Revision,
}

pub struct WatchCache {
    state: RwLock<State>,
    revision: watch::Sender<Revision>,
    /// Lists answered by the cache and by the store, for `/metrics`.
    lists_cached: AtomicU64,
    lists_stored: AtomicU64,
}

impl Default for WatchCache {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            revision: watch::channel(0).0,
            lists_cached: AtomicU64::new(0),
            lists_stored: AtomicU64::new(0),
        }
    }
}

/// The kind part of a store key or prefix: `/registry/<group>/<plural>/`.
fn kind_prefix(key: &str) -> Option<&str> {
    const ROOT: &str = "/registry/";
    let rest = key.strip_prefix(ROOT)?;
    let group_end = rest.find('/')?;
    let plural_end = group_end + 1 + rest[group_end + 1..].find('/')?;
    Some(&key[..ROOT.len() + plural_end + 1])
}

impl WatchCache {
    /// Starts a cache of `store` (empty until [`run`] fills it).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a list answered by the cache (`true`) or by the store.
    pub fn count_list(&self, from_cache: bool) {
        let c = if from_cache { &self.lists_cached } else { &self.lists_stored };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The cache's metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_watch_cache_lists_total Lists by where they were served from.\n\
             # TYPE apiserver_watch_cache_lists_total counter\n",
        );
        for (source, c) in [("cache", &self.lists_cached), ("store", &self.lists_stored)] {
            let n = c.load(Ordering::Relaxed);
            let _ = writeln!(out, "apiserver_watch_cache_lists_total{{source=\"{source}\"}} {n}");
        }
        let s = self.read();
        let _ = writeln!(
            out,
            "# HELP apiserver_watch_cache_resource_version The store revision the watch cache reflects.\n\
             # TYPE apiserver_watch_cache_resource_version gauge\n\
             apiserver_watch_cache_resource_version {}",
            if s.ready { s.revision } else { 0 }
        );
        out
    }

    /// Filled and following the store.
    pub fn ready(&self) -> bool {
        self.read().ready
    }

    /// The revision the cache reflects, once filled.
    pub fn revision(&self) -> Option<Revision> {
        let s = self.read();
        s.ready.then_some(s.revision)
    }

    /// Waits until the cache reflects `revision` or later; its revision then, or `None` when
    /// it is not filled or did not catch up within `timeout`.
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Option<Revision> {
        let mut rx = self.revision.subscribe();
        let caught_up = async {
            loop {
                if let Some(r) = self.revision().filter(|r| *r >= revision) {
                    return Some(r);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, caught_up).await.ok().flatten()
    }

    /// Waits until the cache has applied every write the store acknowledged so far (a
    /// consistent read); its revision then, or `None` (not filled, behind, or the store
    /// failed to answer): the caller reads the store instead.
    pub async fn wait_fresh(&self, store: &dyn Store) -> Option<Revision> {
        if !self.ready() {
            return None;
        }
        let current = store.current_revision().await.ok()?;
        self.wait_for(current, FRESHNESS_TIMEOUT).await
    }

    /// Objects under `prefix` from `start` (inclusive) in key order that `keep` accepts, at
    /// most `limit` of them (0: all); only when the cache reflects `at` exactly, if given.
    pub fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        at: Option<Revision>,
        keep: impl Fn(&CachedObject) -> bool,
    ) -> Option<Page> {
        let s = self.read();
        if !s.ready || at.is_some_and(|r| r != s.revision) {
            return None;
        }
        let mut page = Page { items: Vec::new(), revision: s.revision, next: None };
        let Some(kind) = kind_prefix(prefix).and_then(|k| s.kinds.get(k)) else {
            return Some(page);
        };
        let from = match start {
            Some(st) if st > prefix => st,
            _ => prefix,
        };
        for (key, obj) in kind.objects.range::<str, _>((Bound::Included(from), Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !keep(obj) {
                continue;
            }
            if limit > 0 && page.items.len() == limit {
                page.next = Some(key.clone());
                break;
            }
            page.items.push(obj.clone());
        }
        Some(page)
    }

    /// The cache's generation, to hand to [`Self::events_after`].
    pub fn generation(&self) -> Option<u64> {
        let s = self.read();
        s.ready.then_some(s.generation)
    }

    /// Up to `max` events under `prefix` after revision `after`, of the cache's
    /// `generation`.
    pub fn events_after(
        &self,
        prefix: &str,
        after: Revision,
        generation: u64,
        max: usize,
    ) -> Result<Batch, WindowError> {
        let s = self.read();
        if !s.ready {
            return Err(WindowError::NotReady);
        }
        if s.generation != generation {
            return Err(WindowError::Refilled);
        }
        let Some(kind) = kind_prefix(prefix).and_then(|k| s.kinds.get(k)) else {
            // No object of this kind was ever seen: nothing happened to it since the fill.
            return if after >= s.window_floor() {
                Ok(Batch { events: Vec::new(), upto: s.revision.max(after) })
            } else {
                Err(WindowError::TooOld)
            };
        };
        if after < kind.window_start {
            return Err(WindowError::TooOld);
        }
        let first = kind.events.partition_point(|e| e.revision() <= after);
        let mut events = Vec::new();
        let mut upto = s.revision.max(after);
        for ev in kind.events.range(first..) {
            if events.len() == max {
                upto = events.last().map_or(after, |e: &Arc<CachedEvent>| e.revision());
                break;
            }
            if ev.object.key.starts_with(prefix) {
                events.push(ev.clone());
            }
        }
        Ok(Batch { events, upto })
    }

    /// A receiver that changes whenever the cache's revision does.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.revision.subscribe()
    }

    /// The store forgot its history up to `revision`: so do the windows (a watch from there
    /// is answered 410 Gone, as the store would).
    pub fn compacted(&self, revision: Revision) {
        let mut s = self.write();
        s.compacted = s.compacted.max(revision);
        for kind in s.kinds.values_mut() {
            while kind.events.front().is_some_and(|e| e.revision() <= revision) {
                kind.events.pop_front();
            }
            kind.window_start = kind.window_start.max(revision);
        }
    }

    /// Replaces the contents with `objects` as of `revision` (a fresh list of the store).
    fn fill(&self, objects: Vec<CachedObject>, revision: Revision) {
        let mut kinds: HashMap<String, KindCache> = HashMap::new();
        for obj in objects {
            let Some(k) = kind_prefix(&obj.key) else { continue };
            let kind = kinds
                .entry(k.to_owned())
                .or_insert_with(|| KindCache { window_start: revision, ..KindCache::default() });
            kind.objects.insert(obj.key.clone(), Arc::new(obj));
        }
        let mut s = self.write();
        s.generation += 1;
        s.kinds = kinds;
        s.revision = revision;
        s.filled_at = revision;
        s.ready = true;
        drop(s);
        self.revision.send_replace(revision);
    }

    /// Stops serving (the store's watch failed); reads go to the store until the next fill.
    fn clear(&self) {
        let mut s = self.write();
        s.ready = false;
        s.kinds.clear();
    }

    /// Advances past an event whose object could not be decoded (and forgets the object).
    fn skip(&self, key: &str, revision: Revision) {
        let mut s = self.write();
        if let Some(kind) = kind_prefix(key).and_then(|k| s.kinds.get_mut(k)) {
            kind.objects.remove(key);
        }
        s.revision = s.revision.max(revision);
        drop(s);
        self.revision.send_replace(revision);
    }

    /// Applies one store event (in revision order). `object` is the new state (for a delete,
    /// the last state at the deletion's revision).
    fn apply(&self, kind: EventKind, object: CachedObject) {
        let revision = object.revision;
        let mut s = self.write();
        let floor = s.window_floor();
        let Some(k) = kind_prefix(&object.key) else {
            s.revision = s.revision.max(revision);
            drop(s);
            self.revision.send_replace(revision);
            return;
        };
        let cache = s
            .kinds
            .entry(k.to_owned())
            .or_insert_with(|| KindCache { window_start: floor, ..KindCache::default() });
        let object = Arc::new(object);
        let prev = match kind {
            EventKind::Put => cache.objects.insert(object.key.clone(), object.clone()),
            EventKind::Delete => cache.objects.remove(&object.key),
        };
        cache.events.push_back(Arc::new(CachedEvent { kind, object, prev }));
        if cache.events.len() > WINDOW
            && let Some(old) = cache.events.pop_front()
        {
            cache.window_start = old.revision();
        }
        s.revision = s.revision.max(revision);
        drop(s);
        self.revision.send_replace(revision);
    }
}

impl State {
    /// The oldest revision a watch of a kind without events may start from.
    fn window_floor(&self) -> Revision {
        self.filled_at.max(self.compacted)
    }
}

#[cfg(test)]
mod tests;
