//! A custom kind's OpenAPI v3 definition: its version's schema with the object's standard
//! fields (apiVersion, kind, metadata as ObjectMeta) and its group-version-kind, so kubectl's
//! client-side checks and `kubectl explain` see it like any built-in kind.

use serde_json::{Value, json};

use crate::api::resources::ResourceKind;
use crate::api::schema::REF_PREFIX;

/// The definition's name: the group reversed, then version and kind
/// (`com.example.stable.v1.CronTab`).
pub fn definition_name(k: &ResourceKind) -> String {
    let group: Vec<&str> = k.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), k.version, k.kind)
}

/// The definition of a custom kind (None for built-ins).
pub fn definition(k: &ResourceKind) -> Option<Value> {
    let custom = k.custom?;
    let mut s = match &custom.schema {
        Value::Object(_) => custom.schema.clone(),
        _ => json!({"type": "object"}),
    };
    let props = s
        .as_object_mut()
        .map(|o| o.entry("properties").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut);
    if let Some(props) = props {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}),
        );
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}],
                   "description": "Standard object's metadata."}),
        );
    }
    s["x-kubernetes-group-version-kind"] =
        json!([{ "group": k.group, "version": k.version, "kind": k.kind }]);
    Some(s)
}
