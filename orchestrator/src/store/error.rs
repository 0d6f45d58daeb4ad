use super::{KeyValue, Revision};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key not found")]
    NotFound,
    #[error("key already exists")]
    AlreadyExists,
    /// The compare-and-swap failed: the key is now at a different revision.
    #[error("the object has been modified (now at revision {})", .current.mod_revision)]
    Conflict { current: Box<KeyValue> },
    /// The requested revision's history has been compacted away.
    #[error("revision {requested} has been compacted (oldest kept: {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// A revision newer than the store has.
    #[error("revision {0} is in the future")]
    FutureRevision(Revision),
    #[error("store backend: {0}")]
    Backend(String),
}
