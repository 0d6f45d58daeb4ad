//! Checking a request body against its kind: apiVersion/kind, unknown fields (per
//! `fieldValidation`), and field types (by decoding into the k8s-openapi struct).

use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::request::FieldValidation;
use crate::api::resources::ResourceKind;
use crate::api::schema::schemas;

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The body as an object of `kind`, with unknown fields dropped. Warnings go to `warnings`.
pub fn check(
    kind: &ResourceKind,
    mut body: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<Value, ApiError> {
    let Value::Object(map) = &mut body else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a {} object, not {}",
            kind.kind,
            type_name(&body)
        )));
    };
    let want = kind.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want.clone()));
        }
        Some(v) if v == want => {}
        // A custom object read from the store (patches) carries its storage version.
        Some(v) if kind.custom.is_some_and(|c| c.storage_api_version(kind.group) == v) => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(kind.kind.into()));
        }
        Some(k) if k == kind.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    let unknown = match kind.custom {
        Some(custom) => {
            let mut unknown = crate::api::custom::structural::prune(&custom.schema, &mut body);
            if let Some(m) = body.get_mut("metadata") {
                unknown.extend(schemas().prune_definition(OBJECT_META, m, "metadata"));
            }
            // Conversion `None`: every served version is stored as the storage version.
            body["apiVersion"] = Value::String(custom.storage_api_version(kind.group));
            unknown
        }
        None => schemas().prune_unknown(kind, &mut body),
    };
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
        match validation {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => warnings.extend(list),
            FieldValidation::Ignore => {}
        }
    }
    (kind.decode)(body.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            kind.kind, kind.version, kind.kind
        ))
    })?;
    Ok(body)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
