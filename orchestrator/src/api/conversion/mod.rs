//! Versions served by conversion: a kind whose objects are stored as another version (or
//! another group's kind) and converted on the way in and out, as the Kubernetes API server
//! serves autoscaling/v1 from autoscaling/v2 objects and events.k8s.io/v1 from core Events.

mod events_v1;
mod hpa_v1;

use serde_json::Value;

use super::resources::{self, ResourceKind};

/// How one served version maps to its stored one.
#[derive(Clone, Copy)]
pub struct Conversion {
    /// The kind objects are stored as.
    pub storage: &'static ResourceKind,
    /// A request body of the served version as the stored version.
    pub to_storage: fn(Value) -> Value,
    /// A stored object as the served version.
    pub from_storage: fn(Value) -> Value,
}

/// The conversion serving `kind`, if it is served by one.
pub fn of(kind: &ResourceKind) -> Option<Conversion> {
    Some(match (kind.group, kind.version, kind.kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => Conversion {
            storage: resources::find("autoscaling", "v2", "horizontalpodautoscalers")?,
            to_storage: hpa_v1::to_v2,
            from_storage: hpa_v1::from_v2,
        },
        ("events.k8s.io", "v1", "Event") => Conversion {
            storage: resources::find("", "v1", "events")?,
            to_storage: events_v1::to_core,
            from_storage: events_v1::from_core,
        },
        _ => return None,
    })
}

/// Moves `from[key]` to `to[key]` when present.
fn carry(from: &Value, key: &str, to: &mut Value, to_key: &str) {
    if let Some(v) = from.get(key).filter(|v| !v.is_null()) {
        to[to_key] = v.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_converted_kind_names_a_stored_one() {
        for k in resources::KINDS.iter().filter(|k| k.storage == resources::Storage::Converted) {
            let c = of(k).unwrap_or_else(|| panic!("{k:?} has no conversion"));
            assert_eq!(c.storage.storage, resources::Storage::Stored);
            assert_eq!(c.storage.kind, k.kind);
        }
    }
}
