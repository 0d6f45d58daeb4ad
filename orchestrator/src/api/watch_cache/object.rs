//! One stored object as the cache holds it: decoded once (selectors, tables and conversions
//! need the tree) and serialized at most once, so a list of hundreds of objects for hundreds
//! of clients copies bytes instead of encoding every object for every request.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

use crate::store::Revision;

#[derive(Debug)]
pub struct CachedObject {
    /// The store key.
    pub key: String,
    /// The revision of the write that made this state (of a deletion, for deleted objects).
    pub revision: Revision,
    /// The object, `metadata.resourceVersion` included.
    pub value: Value,
    json: OnceLock<Bytes>,
}

impl CachedObject {
    pub fn new(key: String, revision: Revision, value: Value) -> Self {
        Self { key, revision, value, json: OnceLock::new() }
    }

    /// The object as JSON, encoded on first use.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| Bytes::from(serde_json::to_vec(&self.value).unwrap_or_default()))
    }
}
