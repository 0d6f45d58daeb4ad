//! The store: one small trait over a revisioned key-value database, with ordered revisions,
//! compare-and-swap, watch from a revision and compaction — the contract the API server needs
//! from etcd, so the embedded backend and etcd behave the same.

mod embedded;
mod error;
mod etcd;
pub mod local_etcd;
mod types;

pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use etcd::EtcdStore;
pub use types::{EventKind, KeyValue, ListOptions, ListResult, Revision, WatchEvent, WatchStream};

use async_trait::async_trait;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A revisioned key-value store. Every successful write gets the next revision of one global,
/// strictly increasing counter; reads report the revision they saw.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Keys starting with `prefix`, in key order, as of `opts.revision` (default: now).
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Creates `key`; [`StoreError::AlreadyExists`] if it exists.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replaces `key` if its current `mod_revision` is `expected`; otherwise
    /// [`StoreError::Conflict`] (or [`StoreError::NotFound`] when it is gone).
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<KeyValue>;

    /// Deletes `key` (if `expected` is given, only at that `mod_revision`). Returns the deleted
    /// value with `mod_revision` set to the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue>;

    /// Events for keys under `prefix` with revisions greater than `after`, in revision order.
    /// [`StoreError::Compacted`] if that history is gone.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets the history at and before `revision`.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the newest write.
    async fn current_revision(&self) -> Result<Revision>;
}

#[cfg(test)]
pub(crate) mod conformance;
