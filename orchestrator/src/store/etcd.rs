//! The etcd backend (etcd-client over gRPC): revisions, compare-and-swap transactions, watches
//! and compaction map one-to-one onto etcd's own.

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::types::prefix_end;
use super::{
    EventKind, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchEvent,
    WatchStream,
};

pub struct EtcdStore {
    client: Client,
}

fn kv_of(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn backend(e: etcd_client::Error) -> StoreError {
    let msg = e.to_string();
    if msg.contains("required revision has been compacted") {
        StoreError::Compacted { requested: 0, compacted: 0 }
    } else if msg.contains("required revision is a future revision") {
        StoreError::FutureRevision(0)
    } else {
        StoreError::Backend(format!("etcd: {msg}"))
    }
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map(|h| h.revision()).unwrap_or(0)
}

impl EtcdStore {
    /// Connects to the etcd at `endpoint` (e.g. `http://127.0.0.1:2379`).
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let client = Client::connect([endpoint], None).await.map_err(backend)?;
        let store = Self { client };
        store.current_revision().await?;
        Ok(store)
    }

    /// Whether the server answers reads.
    pub async fn current_revision_checked(&self) -> bool {
        self.current_revision().await.is_ok()
    }

    /// The current value of `key` after a failed comparison: a conflict, or not found.
    fn failed(resp: &etcd_client::TxnResponse) -> StoreError {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op
                && let Some(kv) = g.kvs().first()
            {
                return StoreError::Conflict { current: Box::new(kv_of(kv)) };
            }
        }
        StoreError::NotFound
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self.client.clone().get(key, None).await.map_err(backend)?;
        Ok(resp.kvs().first().map(kv_of))
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let start = match &opts.start {
            Some(s) if s.as_str() > prefix => s.clone(),
            _ => prefix.to_owned(),
        };
        let mut get =
            GetOptions::new().with_range(prefix_end(prefix).unwrap_or_else(|| "\0".into()));
        if opts.limit > 0 {
            get = get.with_limit(opts.limit as i64);
        }
        if let Some(r) = opts.revision.filter(|r| *r > 0) {
            get = get.with_revision(r);
        }
        let resp =
            self.client.clone().get(start, Some(get)).await.map_err(|e| match backend(e) {
                StoreError::Compacted { .. } => {
                    StoreError::Compacted { requested: opts.revision.unwrap_or(0), compacted: 0 }
                }
                StoreError::FutureRevision(_) => {
                    StoreError::FutureRevision(opts.revision.unwrap_or(0))
                }
                other => other,
            })?;
        let revision =
            opts.revision.filter(|r| *r > 0).unwrap_or_else(|| header_revision(resp.header()));
        Ok(ListResult {
            items: resp.kvs().iter().map(kv_of).collect(),
            revision,
            more: resp.more(),
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.clone().txn(txn).await.map_err(backend)?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists);
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue { key: key.to_owned(), value, create_revision: rev, mod_revision: rev })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(etcd_client::PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.clone().txn(txn).await.map_err(backend)?;
        if !resp.succeeded() {
            return Err(Self::failed(&resp));
        }
        let rev = header_revision(resp.header());
        let create = resp
            .op_responses()
            .iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(p) => p.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .unwrap_or(rev);
        Ok(KeyValue { key: key.to_owned(), value, create_revision: create, mod_revision: rev })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let cmp = match expected {
            Some(e) => Compare::mod_revision(key, CompareOp::Equal, e),
            None => Compare::version(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.clone().txn(txn).await.map_err(backend)?;
        if !resp.succeeded() {
            return Err(Self::failed(&resp));
        }
        let rev = header_revision(resp.header());
        let prev = resp.op_responses().iter().find_map(|op| match op {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().map(kv_of),
            _ => None,
        });
        let prev = prev.ok_or(StoreError::NotFound)?;
        Ok(KeyValue { mod_revision: rev, ..prev })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        // etcd reports a compacted start only inside the stream; a read at that revision
        // tells us up front, as the trait promises.
        if after > 0 {
            let probe = GetOptions::new().with_count_only().with_revision(after);
            if let Err(e) = self.client.clone().get(prefix, Some(probe)).await {
                match backend(e) {
                    StoreError::Compacted { .. } => {
                        return Err(StoreError::Compacted { requested: after, compacted: 0 });
                    }
                    // A watch from the future waits for it.
                    StoreError::FutureRevision(_) => {}
                    other => return Err(other),
                }
            }
        }
        let opts = WatchOptions::new().with_prefix().with_start_revision(after + 1).with_prev_key();
        let mut stream = self.client.clone().watch(prefix, Some(opts)).await.map_err(backend)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(backend(e))).await;
                        return;
                    }
                };
                if resp.compact_revision() > 0 {
                    let e = StoreError::Compacted {
                        requested: after,
                        compacted: resp.compact_revision(),
                    };
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                if resp.canceled() {
                    let reason = resp.cancel_reason().to_owned();
                    let _ = tx
                        .send(Err(StoreError::Backend(format!("etcd watch canceled: {reason}"))))
                        .await;
                    return;
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let prev = ev.prev_kv().map(kv_of);
                    let event = match ev.event_type() {
                        EventType::Put => WatchEvent { kind: EventKind::Put, kv: kv_of(kv), prev },
                        EventType::Delete => {
                            let base = prev.clone().unwrap_or_else(|| kv_of(kv));
                            WatchEvent {
                                kind: EventKind::Delete,
                                kv: KeyValue { mod_revision: kv.mod_revision(), ..base },
                                prev,
                            }
                        }
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        }))
        .boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.client.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            Err(e) => match backend(e) {
                StoreError::Compacted { .. } => Ok(()),
                StoreError::FutureRevision(_) => Err(StoreError::FutureRevision(revision)),
                other => Err(other),
            },
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        let resp = self
            .client
            .clone()
            .get("/", Some(GetOptions::new().with_count_only()))
            .await
            .map_err(backend)?;
        Ok(header_revision(resp.header()))
    }
}
