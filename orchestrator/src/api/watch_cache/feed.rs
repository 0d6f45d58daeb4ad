//! Keeps the cache current: one list of the registry, then one watch from the list's
//! revision; when the watch fails, the cache stops serving and starts over from a new list.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{CachedObject, WatchCache};
use crate::api::engine::decode;
use crate::store::{self, KeyValue, Store, StoreError};

const REGISTRY: &str = "/registry/";

fn cached(kv: &KeyValue) -> Option<CachedObject> {
    match decode(kv) {
        Ok(v) => Some(CachedObject::new(kv.key.clone(), kv.mod_revision, v)),
        Err(e) => {
            tracing::warn!("watch cache: skipping {}: {}", kv.key, e.message);
            None
        }
    }
}

/// Runs until aborted.
pub async fn run(cache: Arc<WatchCache>, store: Arc<dyn Store>) {
    loop {
        let e = follow(&cache, store.as_ref()).await;
        cache.clear();
        tracing::warn!("watch cache: {e}; filling it again");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fills the cache, then applies the store's events until the watch fails.
async fn follow(cache: &WatchCache, store: &dyn Store) -> StoreError {
    let list = match store.list(REGISTRY, store::ListOptions::default()).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    let mut events = match store.watch(REGISTRY, list.revision).await {
        Ok(w) => w,
        Err(e) => return e,
    };
    cache.fill(list.items.iter().filter_map(cached).collect(), list.revision);
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return e,
        };
        match cached(&ev.kv) {
            Some(obj) => cache.apply(ev.kind, obj),
            // Keep the revision moving even past an object that is not JSON.
            None => cache.skip(&ev.kv.key, ev.revision()),
        }
    }
    StoreError::Backend("the store's watch ended".into())
}
