//! The OpenAPI schemas of every served kind, generated from k8s-openapi's types, and the walk
//! that finds (and drops) fields a schema does not know.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use schemars::r#gen::SchemaSettings;
use schemars::schema::{InstanceType, Schema, SchemaObject, SingleOrVec};
use serde_json::Value;

use super::resources::{KINDS, ResourceKind};

pub const REF_PREFIX: &str = "#/components/schemas/";

pub struct Schemas {
    /// Every definition, by name (e.g. `io.k8s.api.apps.v1.Deployment`).
    pub definitions: BTreeMap<String, Schema>,
}

/// The schemas, generated once.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut settings = SchemaSettings::openapi3();
        settings.definitions_path = REF_PREFIX.into();
        let mut generator = settings.into_generator();
        for k in KINDS {
            (k.schema)(&mut generator);
        }
        Schemas { definitions: generator.take_definitions().into_iter().collect() }
    })
}

impl Schemas {
    pub fn root(&self, kind: &ResourceKind) -> Option<&SchemaObject> {
        match self.definitions.get(&(kind.schema_name)())? {
            Schema::Object(o) => Some(o),
            Schema::Bool(_) => None,
        }
    }

    fn resolve<'a>(&'a self, s: &'a SchemaObject) -> Option<&'a SchemaObject> {
        match &s.reference {
            Some(r) => match self.definitions.get(r.strip_prefix(REF_PREFIX)?)? {
                Schema::Object(o) => Some(o),
                Schema::Bool(_) => None,
            },
            None => Some(s),
        }
    }

    /// Removes fields unknown to `kind`'s schema from `obj`; returns their paths. Numbers where
    /// a quantity goes (`cpu: 1`, `pods: 10` in YAML) become the quantity strings they stand
    /// for, as Kubernetes reads them.
    pub fn prune_unknown(&self, kind: &ResourceKind, obj: &mut Value) -> Vec<String> {
        let mut unknown = Vec::new();
        if let Some(root) = self.root(kind) {
            self.prune(root, obj, "", &mut unknown);
        }
        unknown
    }

    /// Removes fields unknown to the named definition from `value` (found at `path`).
    pub fn prune_definition(&self, name: &str, value: &mut Value, path: &str) -> Vec<String> {
        let mut unknown = Vec::new();
        if let Some(Schema::Object(o)) = self.definitions.get(name) {
            self.prune(o, value, path, &mut unknown);
        }
        unknown
    }

    fn prune(
        &self,
        schema: &SchemaObject,
        value: &mut Value,
        path: &str,
        unknown: &mut Vec<String>,
    ) {
        if let Value::Number(n) = value
            && schema.reference.as_deref().is_some_and(|r| r.ends_with(".Quantity"))
        {
            *value = Value::String(n.to_string());
            return;
        }
        let Some(schema) = self.resolve(schema) else { return };
        match value {
            Value::Object(map) => {
                let Some(ov) = schema.object.as_deref() else { return };
                if ov.properties.is_empty() && ov.additional_properties.is_none() {
                    return; // free-form object (e.g. RawExtension)
                }
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    let sub = ov.properties.get(&key).or(ov.additional_properties.as_deref());
                    let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                    match sub {
                        Some(Schema::Object(o)) => {
                            if let Some(v) = map.get_mut(&key) {
                                self.prune(o, v, &child, unknown);
                            }
                        }
                        Some(Schema::Bool(true)) => {}
                        Some(Schema::Bool(false)) | None => {
                            map.remove(&key);
                            unknown.push(child);
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(SingleOrVec::Single(item)) =
                    schema.array.as_ref().and_then(|a| a.items.as_ref())
                    && let Schema::Object(o) = item.as_ref()
                {
                    for (i, v) in items.iter_mut().enumerate() {
                        self.prune(o, v, &format!("{path}[{i}]"), unknown);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether the schema says `ty` (used by the OpenAPI documents and tests).
pub fn has_type(s: &SchemaObject, ty: InstanceType) -> bool {
    match &s.instance_type {
        Some(SingleOrVec::Single(t)) => **t == ty,
        Some(SingleOrVec::Vec(ts)) => ts.contains(&ty),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    #[test]
    fn unknown_fields_are_found_at_any_depth() {
        let d = find("apps", "v1", "deployments").unwrap();
        let mut obj = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"replicas": 1, "extra": true,
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always", "colour": "red"}]}}}
        });
        let unknown = schemas().prune_unknown(d, &mut obj);
        assert_eq!(
            unknown,
            ["metadata.bogus", "spec.extra", "spec.template.spec.containers[0].colour"]
        );
        assert!(obj["spec"].get("extra").is_none());
        assert_eq!(obj["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn numbers_are_read_as_quantities() {
        let q = find("", "v1", "resourcequotas").unwrap();
        let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q"}, "spec": {"hard": {"pods": 10, "requests.cpu": 0.5}}});
        assert!(schemas().prune_unknown(q, &mut obj).is_empty());
        assert_eq!(obj["spec"]["hard"], serde_json::json!({"pods": "10", "requests.cpu": "0.5"}));
    }
}
