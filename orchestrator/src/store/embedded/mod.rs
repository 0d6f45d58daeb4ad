//! The embedded backend: one redb file. Every acknowledged write has been committed with
//! immediate durability (fsync), so it survives a crash of the process or the machine.
//!
//! Tables: `kv` (key → revisions + value), `log` (revision → event, the history that watches
//! and reads at old revisions replay until compaction drops it) and `meta` (counters).

mod codec;
mod reader;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, oneshot};

use super::{
    KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchEvent, WatchStream,
};
use writer::{Pending, WriteOp};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Events buffered per watcher before a slow one falls back to reading the log.
const BUS_CAPACITY: usize = 4096;

struct Shared {
    db: Database,
    revision: AtomicI64,
    compacted: AtomicI64,
}

pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Pending>,
    bus: broadcast::Sender<Arc<WatchEvent>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        let (revision, compacted) = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            txn.open_table(KV).map_err(backend)?;
            txn.open_table(LOG).map_err(backend)?;
            let get = |k| meta.get(k).map(|v| v.map(|v| v.value()).unwrap_or(0));
            let r = (get(META_REVISION).map_err(backend)?, get(META_COMPACTED).map_err(backend)?);
            meta.insert(META_REVISION, r.0).map_err(backend)?;
            r
        };
        txn.commit().map_err(backend)?;
        let shared = Arc::new(Shared {
            db,
            revision: AtomicI64::new(revision as i64),
            compacted: AtomicI64::new(compacted as i64),
        });
        let (tx, rx) = mpsc::channel();
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let (s, b) = (shared.clone(), bus.clone());
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(s, rx, b))
            .map_err(|e| StoreError::Backend(format!("starting the store writer: {e}")))?;
        Ok(Self { shared, writer: tx, bus })
    }

    async fn write(&self, op: WriteOp) -> Result<Option<KeyValue>> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Pending { op, reply })
            .map_err(|_| StoreError::Backend("the store writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Backend("the store writer has stopped".into()))?
    }

    async fn write_kv(&self, op: WriteOp) -> Result<KeyValue> {
        self.write(op).await?.ok_or_else(|| StoreError::Backend("write returned no value".into()))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| StoreError::Backend(format!("store reader: {e}")))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        reader::get(&self.shared.db, key)
    }

    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        self.blocking(move |s| reader::list(s, &prefix, &opts)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.write_kv(WriteOp::Create { key: key.to_owned(), value }).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue> {
        self.write_kv(WriteOp::Update { key: key.to_owned(), value, expected }).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        self.write_kv(WriteOp::Delete { key: key.to_owned(), expected }).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after < compacted {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        Ok(reader::watch(self.shared.clone(), self.bus.subscribe(), prefix.to_owned(), after))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.revision.load(Ordering::Acquire))
    }
}

fn backend(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(e.into().to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::conformance::run(Arc::new(
            EmbeddedStore::open(&dir.path().join("s.redb")).unwrap(),
        ))
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_etcd() {
        let dir = tempfile::tempdir().unwrap();
        let etcd = crate::store::local_etcd::LocalEtcd::start(dir.path()).await.unwrap();
        let store = crate::store::EtcdStore::connect(&etcd.endpoint).await.unwrap();
        crate::store::conformance::run(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let rev = {
            let s = EmbeddedStore::open(&path).unwrap();
            s.create("/k", b"v".to_vec()).await.unwrap();
            s.update("/k", b"w".to_vec(), 1).await.unwrap().mod_revision
        };
        // The writer thread lets go of the file once its channel closes.
        let s = loop {
            match EmbeddedStore::open(&path) {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        assert_eq!(s.current_revision().await.unwrap(), rev);
        assert_eq!(s.get("/k").await.unwrap().unwrap().value, b"w");
        assert_eq!(s.create("/k2", vec![]).await.unwrap().mod_revision, rev + 1);
    }
}
