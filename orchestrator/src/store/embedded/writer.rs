//! The single writer thread: it gathers the writes that queued up while the previous commit was
//! syncing and commits them together (group commit), so one fsync acknowledges many writes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::{broadcast, oneshot};

use super::codec::{decode_kv, encode_event, encode_kv};
use super::{KV, LOG, META, META_COMPACTED, META_REVISION, Shared};
use crate::store::{EventKind, KeyValue, Revision, StoreError, WatchEvent};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

pub enum WriteOp {
    Create { key: String, value: Vec<u8> },
    Update { key: String, value: Vec<u8>, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
    Compact { revision: Revision },
}

pub struct Pending {
    pub op: WriteOp,
    pub reply: oneshot::Sender<Result<Option<KeyValue>, StoreError>>,
}

pub fn run(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Pending>,
    bus: broadcast::Sender<Arc<WatchEvent>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut events = Vec::new();
        let outcome = commit_batch(&shared, &mut batch, &mut events);
        match outcome {
            Ok(results) => {
                if let Some(last) = events.last() {
                    shared.revision.store(last.revision(), Ordering::Release);
                }
                for (p, r) in batch.iter().zip(&results) {
                    if let (WriteOp::Compact { revision }, Ok(_)) = (&p.op, r) {
                        shared.compacted.fetch_max(*revision, Ordering::AcqRel);
                    }
                }
                for ev in events {
                    // No receivers is fine: nobody watches.
                    let _ = bus.send(Arc::new(ev));
                }
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!("embedded store commit failed: {e}");
                for p in batch {
                    let _ = p.reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

type OpResult = Result<Option<KeyValue>, StoreError>;

fn commit_batch(
    shared: &Shared,
    batch: &mut [Pending],
    events: &mut Vec<WatchEvent>,
) -> Result<Vec<OpResult>, redb::Error> {
    let txn = shared.db.begin_write()?;
    let results = apply_all(&txn, batch, events)?;
    txn.commit()?;
    Ok(results)
}

fn apply_all(
    txn: &WriteTransaction,
    batch: &mut [Pending],
    events: &mut Vec<WatchEvent>,
) -> Result<Vec<OpResult>, redb::Error> {
    let mut kv = txn.open_table(KV)?;
    let mut log = txn.open_table(LOG)?;
    let mut meta = txn.open_table(META)?;
    let mut revision = meta.get(META_REVISION)?.map(|v| v.value()).unwrap_or(0) as Revision;
    let compacted = meta.get(META_COMPACTED)?.map(|v| v.value()).unwrap_or(0) as Revision;
    let mut results = Vec::with_capacity(batch.len());
    for p in batch.iter_mut() {
        let current = match &p.op {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => match kv.get(key.as_str())? {
                Some(v) => Some(decode_kv(key, v.value()).map_err(io_err)?),
                None => None,
            },
            WriteOp::Compact { .. } => None,
        };
        let event = match (&mut p.op, current) {
            (WriteOp::Create { .. }, Some(_)) => Err(StoreError::AlreadyExists),
            (WriteOp::Create { key, value }, None) => {
                let rev = revision + 1;
                let new = KeyValue {
                    key: std::mem::take(key),
                    value: std::mem::take(value),
                    create_revision: rev,
                    mod_revision: rev,
                };
                Ok(WatchEvent { kind: EventKind::Put, kv: new, prev: None })
            }
            (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => Err(StoreError::NotFound),
            (WriteOp::Update { expected, .. }, Some(cur)) if cur.mod_revision != *expected => {
                Err(StoreError::Conflict { current: Box::new(cur) })
            }
            (WriteOp::Update { key, value, .. }, Some(cur)) => {
                let rev = revision + 1;
                let new = KeyValue {
                    key: std::mem::take(key),
                    value: std::mem::take(value),
                    create_revision: cur.create_revision,
                    mod_revision: rev,
                };
                Ok(WatchEvent { kind: EventKind::Put, kv: new, prev: Some(cur) })
            }
            (WriteOp::Delete { expected: Some(e), .. }, Some(cur)) if cur.mod_revision != *e => {
                Err(StoreError::Conflict { current: Box::new(cur) })
            }
            (WriteOp::Delete { .. }, Some(cur)) => {
                let gone = KeyValue { mod_revision: revision + 1, ..cur.clone() };
                Ok(WatchEvent { kind: EventKind::Delete, kv: gone, prev: Some(cur) })
            }
            (WriteOp::Compact { revision: target }, _) => {
                let target = *target;
                if target > revision {
                    results.push(Err(StoreError::FutureRevision(target)));
                } else {
                    if target > compacted {
                        log.retain_in(..=(target as u64), |_, _| false)?;
                        meta.insert(META_COMPACTED, target as u64)?;
                    }
                    results.push(Ok(None));
                }
                continue;
            }
        };
        match event {
            Err(e) => results.push(Err(e)),
            Ok(ev) => {
                revision += 1;
                match ev.kind {
                    EventKind::Put => {
                        let bytes =
                            encode_kv(ev.kv.create_revision, ev.kv.mod_revision, &ev.kv.value);
                        kv.insert(ev.kv.key.as_str(), bytes.as_slice())?;
                    }
                    EventKind::Delete => {
                        kv.remove(ev.kv.key.as_str())?;
                    }
                }
                log.insert(revision as u64, encode_event(&ev).as_slice())?;
                results.push(Ok(Some(ev.kv.clone())));
                events.push(ev);
            }
        }
    }
    meta.insert(META_REVISION, revision as u64)?;
    Ok(results)
}

fn io_err(e: StoreError) -> redb::Error {
    redb::Error::Corrupted(e.to_string())
}
