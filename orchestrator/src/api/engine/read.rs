//! get, list (with selectors and limit/continue pagination) and watch.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::consistency::{self, ReadAt};
use super::{Api, ApiResponse, ObjectList, WatchEvents, decode, key, prefix};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::request::{Format, ListOptions, Target};
use crate::api::resources::ResourceKind;
use crate::api::table;
use crate::api::watch_cache::{
    CachedEvent, CachedObject, FRESHNESS_TIMEOUT, WatchCache, WindowError,
};
use crate::store::{self, EventKind, Revision, StoreError};

/// Longest a watch stays open when the client names no timeout.
const MAX_WATCH: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Items read from the store per round when filtering a list.
const SCAN_PAGE: usize = 500;

pub fn render(kind: &ResourceKind, obj: Value, format: Format) -> Value {
    match format {
        Format::Object => obj,
        Format::Table(include) => {
            let meta = json!({ "resourceVersion": obj["metadata"]["resourceVersion"] });
            table::table(kind, &[obj], meta, include)
        }
    }
}

fn matches(opts: &ListOptions, obj: &Value) -> bool {
    opts.label_selector.matches(&meta::labels(obj)) && opts.field_selector.matches(obj)
}

/// The continue token: where the next page starts and the revision all pages are read at.
fn encode_continue(start: &str, revision: Revision) -> String {
    let raw = json!({ "v": "meta.k8s.io/v1", "rv": revision, "start": start }).to_string();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> Result<(String, Revision), ApiError> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let raw = base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let start = v["start"].as_str().ok_or_else(bad)?;
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((start.to_owned(), rv))
}

impl Api {
    pub(super) async fn load(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        match self.store.get(&key(kind, ns, name)).await {
            Ok(Some(kv)) => Ok((decode(&kv)?, kv.mod_revision)),
            Ok(None) => Err(ApiError::not_found(kind, name)),
            Err(e) => Err(ApiError::from_store(e, kind, name)),
        }
    }

    /// Every object of `kind` in `ns`, each with its revision (admission reads a namespace's
    /// budgets, quotas and limit ranges so).
    pub(super) async fn load_all(
        &self,
        kind: &ResourceKind,
        ns: &str,
    ) -> Result<Vec<(Value, Revision)>, ApiError> {
        let list = self
            .store
            .list(&prefix(kind, Some(ns)), store::ListOptions::default())
            .await
            .map_err(|e| ApiError::from_store(e, kind, ""))?;
        list.items.iter().map(|kv| Ok((decode(kv)?, kv.mod_revision))).collect()
    }

    /// One object and its revision.
    pub async fn load_object(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(Value, Revision), ApiError> {
        self.load(kind, ns, name).await
    }

    pub(super) async fn get(&self, t: &Target, format: Format) -> Result<ApiResponse, ApiError> {
        let name = t.name.as_deref().unwrap_or("");
        let (obj, _) = self.load(t.kind, t.namespace.as_deref(), name).await?;
        Ok(ApiResponse::ok(render(t.kind, obj, format)))
    }

    /// Matching objects (one page when `opts.limit` is set) and the list's metadata.
    pub async fn list_objects(
        &self,
        t: &Target,
        opts: &ListOptions,
    ) -> Result<(Vec<Value>, Value), ApiError> {
        let (items, meta) = self.list_page(t, opts).await?;
        Ok((items.iter().map(|o| o.value.clone()).collect(), meta))
    }

    /// Matching objects (one page when `opts.limit` is set) and the list's metadata: from the
    /// watch cache when it holds the state `opts` asks for, else from the store.
    async fn list_page(
        &self,
        t: &Target,
        opts: &ListOptions,
    ) -> Result<(Vec<Arc<CachedObject>>, Value), ApiError> {
        let prefix = prefix(t.kind, t.namespace.as_deref());
        let (start, continued) = match &opts.continue_token {
            Some(tok) => {
                let (s, r) = decode_continue(tok, &prefix)?;
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let at = consistency::read_at(opts, continued)?;
        // Whether the cache may answer, and at which exact revision if one is required.
        let cached_at = match at {
            ReadAt::Consistent => self.cache.wait_fresh(self.store.as_ref()).await.map(|_| None),
            ReadAt::Any => self.cache.revision().map(|_| None),
            ReadAt::NotOlderThan(r) if self.cache.ready() => {
                match self.cache.wait_for(r, FRESHNESS_TIMEOUT).await {
                    Some(_) => Some(None),
                    None => return Err(too_large(r, self.cache.revision().unwrap_or(0))),
                }
            }
            ReadAt::NotOlderThan(_) => None,
            ReadAt::Exact(r) => Some(Some(r)),
        };
        if let Some(exact) = cached_at
            && let Some(page) = self
                .cache
                .list(&prefix, start.as_deref(), opts.limit, exact, |o| matches(opts, &o.value))
        {
            self.cache.count_list(true);
            return Ok((page.items, list_meta(page.revision, page.next)));
        }
        self.cache.count_list(false);
        let exact = match at {
            ReadAt::Exact(r) => Some(r),
            _ => None,
        };
        let (items, revision, next) =
            self.list_from_store(t, opts, &prefix, start, exact, continued.is_some()).await?;
        if let ReadAt::NotOlderThan(r) = at
            && revision < r
        {
            return Err(too_large(r, revision));
        }
        Ok((items, list_meta(revision, next)))
    }

    /// A page read from the store at `revision` (default: now): the items, the revision and
    /// the key the next page starts at.
    async fn list_from_store(
        &self,
        t: &Target,
        opts: &ListOptions,
        prefix: &str,
        mut start: Option<String>,
        mut revision: Option<Revision>,
        continued: bool,
    ) -> Result<(Vec<Arc<CachedObject>>, Revision, Option<String>), ApiError> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // One more than the page, to know whether another page follows.
            let want = if opts.limit == 0 { 0 } else { SCAN_PAGE.max(opts.limit + 1) };
            let page = self
                .store
                .list(prefix, store::ListOptions { start: start.clone(), limit: want, revision })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if continued => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    StoreError::Compacted { .. } => {
                        ApiError::gone("The resourceVersion for the provided list is too old.")
                    }
                    e => ApiError::from_store(e, t.kind, ""),
                })?;
            revision = Some(page.revision);
            let mut last_key = None;
            for kv in &page.items {
                let obj = decode(kv)?;
                if matches(opts, &obj) {
                    if opts.limit > 0 && items.len() == opts.limit {
                        next = Some(kv.key.clone());
                        break;
                    }
                    items.push(Arc::new(CachedObject::new(kv.key.clone(), kv.mod_revision, obj)));
                }
                last_key = Some(kv.key.clone());
            }
            if next.is_some() || !page.more {
                break;
            }
            start = last_key.map(|k| format!("{k}\0"));
        }
        Ok((items, revision.unwrap_or(0), next))
    }

    pub(super) async fn list(
        &self,
        t: &Target,
        opts: &ListOptions,
        format: Format,
    ) -> Result<ApiResponse, ApiError> {
        let (items, metadata) = self.list_page(t, opts).await?;
        Ok(match format {
            Format::Table(include) => {
                let values: Vec<Value> = items.iter().map(|o| o.value.clone()).collect();
                ApiResponse::ok(table::table(t.kind, &values, metadata, include))
            }
            Format::Object => ApiResponse::List(ObjectList {
                kind: format!("{}List", t.kind.kind),
                api_version: t.kind.api_version(),
                metadata,
                items,
            }),
        })
    }

    pub(super) async fn watch(
        &self,
        t: &Target,
        opts: ListOptions,
        format: Format,
    ) -> Result<ApiResponse, ApiError> {
        if opts.resource_version_match.is_some() {
            return Err(ApiError::bad_request("resourceVersionMatch is forbidden for watch"));
        }
        let kind = t.kind;
        let rv_text = opts.resource_version.clone().unwrap_or_default();
        let rv = meta::parse_revision(&rv_text).map_err(ApiError::bad_request)?;
        // No resourceVersion: the current state as ADDED events, then changes ("0": any
        // state at hand, from the cache).
        let (initial, from) = match rv {
            Some(r) => (Vec::new(), r),
            None => {
                let unpaged = ListOptions {
                    limit: 0,
                    continue_token: None,
                    resource_version: Some(if rv_text == "0" { "0" } else { "" }.to_owned()),
                    ..opts.clone()
                };
                let (items, m) = self.list_page(t, &unpaged).await?;
                let r = m["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                (items, r)
            }
        };
        let prefix = prefix(kind, t.namespace.as_deref());
        let timeout = opts.timeout.unwrap_or(MAX_WATCH).min(MAX_WATCH);
        // From the cache's window when it reaches back to `from`.
        if let Some(generation) = self.cache.generation()
            && self.cache.events_after(&prefix, from, generation, 0).is_ok()
        {
            let feed = CacheFeed { cache: self.cache.clone(), prefix, generation, from };
            return Ok(watch_cached(kind, opts, format, timeout, initial, feed));
        }
        let stream = match self.store.watch(&prefix, from).await {
            Ok(s) => s,
            Err(StoreError::Compacted { requested, compacted }) => {
                let status =
                    ApiError::gone(format!("too old resource version: {requested} ({compacted})"))
                        .status();
                let ev = json!({ "type": "ERROR", "object": status });
                return Ok(ApiResponse::Watch(Box::pin(futures_util::stream::iter([ev]))));
            }
            Err(e) => return Err(ApiError::from_store(e, kind, "")),
        };
        let (tx, rx) = mpsc::channel::<Value>(64);
        tokio::spawn(async move {
            let mut last = from;
            if !send_initial(&tx, kind, format, initial).await {
                return;
            }
            let mut stream = stream;
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut bookmarks = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            loop {
                let out = tokio::select! {
                    ev = stream.next() => match ev {
                        None => return,
                        Some(Err(e)) => {
                            let status = ApiError::from_store(e, kind, "").status();
                            let _ = tx.send(json!({ "type": "ERROR", "object": status })).await;
                            return;
                        }
                        Some(Ok(ev)) => {
                            last = ev.revision();
                            match to_event(kind, &opts, &ev, format) {
                                Some(v) => v,
                                None => continue,
                            }
                        }
                    },
                    _ = &mut deadline => return,
                    _ = bookmarks.tick(), if opts.allow_bookmarks => bookmark(kind, last),
                    _ = tx.closed() => return,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        Ok(ApiResponse::Watch(events_of(rx)))
    }
}

/// Where a watch served by the cache reads its events.
struct CacheFeed {
    cache: Arc<WatchCache>,
    prefix: String,
    generation: u64,
    from: Revision,
}

/// Events read from the cache's window per round.
const CACHE_BATCH: usize = 256;

fn watch_cached(
    kind: &'static ResourceKind,
    opts: ListOptions,
    format: Format,
    timeout: Duration,
    initial: Vec<Arc<CachedObject>>,
    feed: CacheFeed,
) -> ApiResponse {
    let (tx, rx) = mpsc::channel::<Value>(64);
    tokio::spawn(async move {
        if !send_initial(&tx, kind, format, initial).await {
            return;
        }
        let CacheFeed { cache, prefix, generation, from } = feed;
        let mut changed = cache.subscribe();
        let mut last = from;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmarks =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            changed.borrow_and_update();
            let batch = match cache.events_after(&prefix, last, generation, CACHE_BATCH) {
                Ok(b) => b,
                Err(WindowError::TooOld) => {
                    // Fell behind the window: as a store would after compaction.
                    let status =
                        ApiError::gone(format!("too old resource version: {last}")).status();
                    let _ = tx.send(json!({ "type": "ERROR", "object": status })).await;
                    return;
                }
                // Refilled: the client resumes from its last revision.
                Err(_) => return,
            };
            last = batch.upto;
            let idle = batch.events.is_empty();
            for ev in batch.events {
                if let Some(v) = cached_event(kind, &opts, &ev, format)
                    && tx.send(v).await.is_err()
                {
                    return;
                }
            }
            if !idle {
                continue;
            }
            let out = tokio::select! {
                r = changed.changed() => match r {
                    Ok(()) => continue,
                    Err(_) => return,
                },
                _ = &mut deadline => return,
                _ = bookmarks.tick(), if opts.allow_bookmarks => bookmark(kind, last),
                _ = tx.closed() => return,
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    ApiResponse::Watch(events_of(rx))
}

/// The initial state as ADDED events; false once the client has gone.
async fn send_initial(
    tx: &mpsc::Sender<Value>,
    kind: &ResourceKind,
    format: Format,
    initial: Vec<Arc<CachedObject>>,
) -> bool {
    for obj in initial {
        let ev = json!({ "type": "ADDED", "object": render(kind, obj.value.clone(), format) });
        if tx.send(ev).await.is_err() {
            return false;
        }
    }
    true
}

fn bookmark(kind: &ResourceKind, last: Revision) -> Value {
    json!({
        "type": "BOOKMARK",
        "object": {"kind": kind.kind, "apiVersion": kind.api_version(),
                   "metadata": {"resourceVersion": last.to_string()}},
    })
}

fn events_of(rx: mpsc::Receiver<Value>) -> WatchEvents {
    Box::pin(futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
    ))
}

fn list_meta(revision: Revision, next: Option<String>) -> Value {
    let mut meta = json!({ "resourceVersion": revision.to_string() });
    if let Some(n) = next {
        meta["continue"] = json!(encode_continue(&n, revision));
    }
    meta
}

/// A read asked for a revision the server has not reached in time.
fn too_large(wanted: Revision, current: Revision) -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        format!("Too large resource version: {wanted}, current: {current}"),
    )
}

/// The watch event type for a change, as a client with these selectors sees it: whether the
/// object matched before and matches now.
fn event_type(kind: EventKind, before: bool, now: bool) -> Option<&'static str> {
    match (kind, before, now) {
        (EventKind::Delete, true, _) => Some("DELETED"),
        (EventKind::Delete, false, _) => None,
        (EventKind::Put, false, true) => Some("ADDED"),
        (EventKind::Put, true, true) => Some("MODIFIED"),
        (EventKind::Put, true, false) => Some("DELETED"),
        (EventKind::Put, false, false) => None,
    }
}

/// A cached event as the watch event a client with these selectors sees, if any.
fn cached_event(
    kind: &ResourceKind,
    opts: &ListOptions,
    ev: &CachedEvent,
    format: Format,
) -> Option<Value> {
    let now = matches(opts, &ev.object.value);
    let before = ev.prev.as_ref().is_some_and(|p| matches(opts, &p.value));
    let ty = event_type(ev.kind, before, now)?;
    Some(json!({ "type": ty, "object": render(kind, ev.object.value.clone(), format) }))
}

/// A store event as the watch event a client with these selectors sees, if any.
fn to_event(
    kind: &ResourceKind,
    opts: &ListOptions,
    ev: &store::WatchEvent,
    format: Format,
) -> Option<Value> {
    let obj = decode(&ev.kv).ok()?;
    let prev = ev.prev.as_ref().and_then(|p| decode(p).ok());
    let now = matches(opts, &obj);
    let before = prev.as_ref().is_some_and(|p| matches(opts, p));
    let ty = event_type(ev.kind, before, now)?;
    Some(json!({ "type": ty, "object": render(kind, obj, format) }))
}
