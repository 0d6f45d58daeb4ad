//! The kinds served from CustomResourceDefinitions, beside the static table of built-ins:
//! `resources::find` and friends consult it after the table. The CRD controller replaces
//! its contents whenever a definition is established, changed or removed.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::Value;

use crate::api::resources::ResourceKind;

struct Entry {
    /// The definition's spec the kinds were built from (rebuilt only when it changes).
    spec: Value,
    kinds: Vec<&'static ResourceKind>,
    /// Deleted, its objects being cleaned up: still served, but no new objects.
    terminating: bool,
}

static REGISTRY: RwLock<BTreeMap<String, Entry>> = RwLock::new(BTreeMap::new());

/// Every served custom kind, by definition name, each definition's versions in priority order.
pub fn kinds() -> Vec<&'static ResourceKind> {
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    r.values().flat_map(|e| e.kinds.iter().copied()).collect()
}

/// Whether the named definition is being deleted.
pub fn is_terminating(definition: &str) -> bool {
    let r = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    r.get(definition).is_some_and(|e| e.terminating)
}

/// Whether a definition's Established condition is True.
pub fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True")
}

/// Serves exactly the established definitions among `crds`.
pub fn replace(crds: &[Value]) {
    let mut r = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    let wanted: BTreeMap<String, &Value> = crds
        .iter()
        .filter(|c| is_established(c))
        .map(|c| (c["metadata"]["name"].as_str().unwrap_or("").to_owned(), c))
        .collect();
    r.retain(|name, _| wanted.contains_key(name));
    for (name, crd) in wanted {
        let terminating = crate::api::meta::is_deleting(crd);
        if let Some(e) = r.get_mut(&name).filter(|e| e.spec == crd["spec"]) {
            e.terminating = terminating;
            continue;
        }
        let kinds = super::definition::served_kinds(crd);
        tracing::info!(definition = %name, versions = kinds.len(), "serving custom resources");
        r.insert(name, Entry { spec: crd["spec"].clone(), kinds, terminating });
    }
}
