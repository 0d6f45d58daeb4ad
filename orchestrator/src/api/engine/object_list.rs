//! A list answer that keeps its items as cached objects: written to the wire from each
//! object's once-encoded JSON, or turned into a tree for in-process callers and conversions.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::watch_cache::CachedObject;

pub struct ObjectList {
    /// e.g. `ConfigMapList`.
    pub kind: String,
    pub api_version: String,
    pub metadata: Value,
    pub items: Vec<Arc<CachedObject>>,
}

impl ObjectList {
    pub fn into_value(self) -> Value {
        let items: Vec<Value> = self.items.iter().map(|o| o.value.clone()).collect();
        json!({
            "kind": self.kind,
            "apiVersion": self.api_version,
            "metadata": self.metadata,
            "items": items,
        })
    }

    /// The list as JSON, the same document [`Self::into_value`] would serialize to.
    pub fn to_json(&self) -> Vec<u8> {
        let head =
            json!({ "kind": self.kind, "apiVersion": self.api_version, "metadata": self.metadata });
        let mut out = serde_json::to_vec(&head).unwrap_or_default();
        // Reopen the object to append the items.
        out.pop();
        let size: usize = self.items.iter().map(|o| o.json().len() + 1).sum();
        out.reserve(size + 16);
        out.extend_from_slice(b",\"items\":[");
        for (i, o) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(o.json());
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_tree_are_the_same_document() {
        let item = |n: &str| {
            Arc::new(CachedObject::new(
                format!("/registry/core/configmaps/default/{n}"),
                3,
                json!({"metadata": {"name": n, "resourceVersion": "3"}, "data": {"a": "\"b\""}}),
            ))
        };
        for items in [vec![], vec![item("a")], vec![item("a"), item("b")]] {
            let list = ObjectList {
                kind: "ConfigMapList".into(),
                api_version: "v1".into(),
                metadata: json!({"resourceVersion": "3", "continue": "x"}),
                items,
            };
            let parsed: Value = serde_json::from_slice(&list.to_json()).unwrap();
            assert_eq!(parsed, list.into_value());
        }
    }
}
