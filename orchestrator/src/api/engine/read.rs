//! get, list (with selectors and limit/continue pagination) and watch.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Api, ApiResponse, WatchEvents, decode, key, prefix};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::request::{Format, ListOptions, Target};
use crate::api::resources::ResourceKind;
use crate::api::table;
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
        let prefix = prefix(t.kind, t.namespace.as_deref());
        let (mut start, mut revision) = match &opts.continue_token {
            Some(tok) => {
                let (s, r) = decode_continue(tok, &prefix)?;
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let want = if opts.limit == 0 { 0 } else { SCAN_PAGE.max(opts.limit) };
            let page = self
                .store
                .list(&prefix, store::ListOptions { start: start.clone(), limit: want, revision })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
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
                    items.push(obj);
                }
                last_key = Some(kv.key.clone());
            }
            if next.is_some() || !page.more {
                break;
            }
            start = last_key.map(|k| format!("{k}\0"));
        }
        let revision = revision.unwrap_or(0);
        let mut list_meta = json!({ "resourceVersion": revision.to_string() });
        if let Some(n) = next {
            list_meta["continue"] = json!(encode_continue(&n, revision));
        }
        Ok((items, list_meta))
    }

    pub(super) async fn list(
        &self,
        t: &Target,
        opts: &ListOptions,
        format: Format,
    ) -> Result<ApiResponse, ApiError> {
        let (items, list_meta) = self.list_objects(t, opts).await?;
        let body = match format {
            Format::Table(include) => table::table(t.kind, &items, list_meta, include),
            Format::Object => json!({
                "kind": format!("{}List", t.kind.kind),
                "apiVersion": t.kind.api_version(),
                "metadata": list_meta,
                "items": items,
            }),
        };
        Ok(ApiResponse::ok(body))
    }

    pub(super) async fn watch(
        &self,
        t: &Target,
        opts: ListOptions,
        format: Format,
    ) -> Result<ApiResponse, ApiError> {
        let kind = t.kind;
        let rv = meta::parse_revision(opts.resource_version.as_deref().unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        // No resourceVersion: the current state as ADDED events, then changes.
        let (initial, from) = match rv {
            Some(r) => (Vec::new(), r),
            None => {
                let unpaged = ListOptions { limit: 0, continue_token: None, ..opts.clone() };
                let (items, m) = self.list_objects(t, &unpaged).await?;
                let r = m["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                (items, r)
            }
        };
        let stream = match self.store.watch(&prefix(kind, t.namespace.as_deref()), from).await {
            Ok(s) => Some(s),
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
        let timeout = opts.timeout.unwrap_or(MAX_WATCH).min(MAX_WATCH);
        tokio::spawn(async move {
            let mut last = from;
            for obj in initial {
                if tx
                    .send(json!({ "type": "ADDED", "object": render(kind, obj, format) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let Some(mut stream) = stream else { return };
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
                    _ = bookmarks.tick(), if opts.allow_bookmarks => json!({
                        "type": "BOOKMARK",
                        "object": {"kind": kind.kind, "apiVersion": kind.api_version(),
                                   "metadata": {"resourceVersion": last.to_string()}},
                    }),
                    _ = tx.closed() => return,
                };
                if tx.send(out).await.is_err() {
                    return;
                }
            }
        });
        let events: WatchEvents = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }));
        Ok(ApiResponse::Watch(events))
    }
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
    let ty = match (ev.kind, before, now) {
        (EventKind::Delete, true, _) => "DELETED",
        (EventKind::Delete, false, _) => return None,
        (EventKind::Put, false, true) => "ADDED",
        (EventKind::Put, true, true) => "MODIFIED",
        (EventKind::Put, true, false) => "DELETED",
        (EventKind::Put, false, false) => return None,
    };
    Some(json!({ "type": ty, "object": render(kind, obj, format) }))
}
