//! Reads: point gets, lists (also as of an older revision, by undoing the newer history), and
//! watches (history from the log, then live events from the writer's bus).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::codec::{decode_event, decode_kv};
use super::{KV, LOG, META, META_COMPACTED, META_REVISION, Shared, backend};
use crate::store::types::prefix_end;
use crate::store::{
    KeyValue, ListOptions, ListResult, Result, Revision, StoreError, WatchEvent, WatchStream,
};

pub fn get(db: &Database, key: &str) -> Result<Option<KeyValue>> {
    let txn = db.begin_read().map_err(backend)?;
    let kv = txn.open_table(KV).map_err(backend)?;
    match kv.get(key).map_err(backend)? {
        Some(v) => Ok(Some(decode_kv(key, v.value())?)),
        None => Ok(None),
    }
}

/// The revision counters as seen by `txn`: (newest, compacted).
fn counters(txn: &ReadTransaction) -> Result<(Revision, Revision)> {
    let meta = txn.open_table(META).map_err(backend)?;
    let get = |k| meta.get(k).map(|v| v.map(|v| v.value() as Revision).unwrap_or(0));
    Ok((get(META_REVISION).map_err(backend)?, get(META_COMPACTED).map_err(backend)?))
}

pub fn list(shared: &Shared, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
    let txn = shared.db.begin_read().map_err(backend)?;
    let (now, compacted) = counters(&txn)?;
    let at = opts.revision.filter(|r| *r > 0).unwrap_or(now);
    if at > now {
        return Err(StoreError::FutureRevision(at));
    }
    if at < now && at < compacted {
        return Err(StoreError::Compacted { requested: at, compacted });
    }
    let start = match &opts.start {
        Some(s) if s.as_str() > prefix => s.clone(),
        _ => prefix.to_owned(),
    };
    let end = prefix_end(prefix);
    let in_range = |k: &str| k >= start.as_str() && end.as_deref().is_none_or(|e| k < e);

    // Keys changed after `at` get their value from before the first such change.
    let mut undo: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
    if at < now {
        let log = txn.open_table(LOG).map_err(backend)?;
        for entry in log.range((at + 1) as u64..).map_err(backend)? {
            let (rev, bytes) = entry.map_err(backend)?;
            let ev = decode_event(rev.value() as Revision, bytes.value())?;
            if in_range(&ev.kv.key) && !undo.contains_key(&ev.kv.key) {
                undo.insert(ev.kv.key.clone(), ev.prev);
            }
        }
    }

    let kv = txn.open_table(KV).map_err(backend)?;
    let current = match &end {
        Some(e) => kv.range(start.as_str()..e.as_str()),
        None => kv.range(start.as_str()..),
    }
    .map_err(backend)?
    .map(|entry| {
        let (k, v) = entry.map_err(backend)?;
        decode_kv(k.value(), v.value())
    });
    let merged = Merge { current: current.peekable(), undo: undo.into_iter().peekable() };
    let limit = if opts.limit == 0 { usize::MAX } else { opts.limit };
    let mut items = Vec::new();
    let mut more = false;
    for item in merged {
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(item?);
    }
    Ok(ListResult { items, revision: at, more })
}

/// Current values merged with undone ones, in key order, without keys absent at the revision.
struct Merge<C: Iterator<Item = Result<KeyValue>>, U: Iterator<Item = (String, Option<KeyValue>)>> {
    current: Peekable<C>,
    undo: Peekable<U>,
}

impl<C, U> Iterator for Merge<C, U>
where
    C: Iterator<Item = Result<KeyValue>>,
    U: Iterator<Item = (String, Option<KeyValue>)>,
{
    type Item = Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_undo = match (self.current.peek(), self.undo.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(Ok(c)), Some((u, _))) => {
                    if c.key == *u {
                        self.current.next();
                        true
                    } else {
                        u.as_str() < c.key.as_str()
                    }
                }
            };
            if !take_undo {
                return self.current.next();
            }
            if let Some((_, Some(kv))) = self.undo.next() {
                return Some(Ok(kv));
            }
        }
    }
}

/// Events under `prefix` after revision `after`, and the newest revision they cover.
fn read_log(shared: &Shared, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision)> {
    let txn = shared.db.begin_read().map_err(backend)?;
    let (now, compacted) = counters(&txn)?;
    if after < compacted {
        return Err(StoreError::Compacted { requested: after, compacted });
    }
    let log = txn.open_table(LOG).map_err(backend)?;
    let mut events = Vec::new();
    for entry in log.range((after + 1) as u64..).map_err(backend)? {
        let (rev, bytes) = entry.map_err(backend)?;
        let ev = decode_event(rev.value() as Revision, bytes.value())?;
        if ev.kv.key.starts_with(prefix) {
            events.push(ev);
        }
    }
    Ok((events, now.max(after)))
}

pub fn watch(
    shared: Arc<Shared>,
    mut bus: broadcast::Receiver<Arc<WatchEvent>>,
    prefix: String,
    after: Revision,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut last = after;
        loop {
            // History first (also after falling behind the bus), then live events.
            let (s, p) = (shared.clone(), prefix.clone());
            let history = tokio::task::spawn_blocking(move || read_log(&s, &p, last)).await;
            match history {
                Ok(Ok((events, upto))) => {
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    last = upto;
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(_) => return,
            }
            loop {
                tokio::select! {
                    r = bus.recv() => match r {
                        Ok(ev) if ev.revision() <= last => {}
                        Ok(ev) => {
                            last = ev.revision();
                            if ev.kv.key.starts_with(&prefix) && tx.send(Ok((*ev).clone())).await.is_err() {
                                return;
                            }
                        }
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|ev| (ev, rx))
    }))
}
