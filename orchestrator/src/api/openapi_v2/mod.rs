//! OpenAPI v2 (`/openapi/v2`): one Swagger 2.0 document of every served kind, made from the
//! OpenAPI v3 documents (so both always agree), as JSON or as the protobuf kubectl asks for
//! (`kubectl explain --output=plaintext-openapiv2`, and Go clients' `OpenAPISchema()`).

mod convert;
mod gnostic;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::discovery::GIT_VERSION;
use super::openapi;
use super::resources::group_versions;

/// The protobuf form's content type (`gnostic`'s openapi.v2.Document). Clients ask for it
/// spelt with an `@` too, but Go's media type parser refuses that spelling in an answer.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an Accept header asks for the protobuf form (either spelling).
pub fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').map(|a| a.split(';').next().unwrap_or("").trim()).any(|a| {
        a == PROTOBUF_CONTENT_TYPE
            || a == "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    })
}

const GVK: &str = "x-kubernetes-group-version-kind";

/// The document, encoded in both forms.
struct Encoded {
    json: Bytes,
    protobuf: Bytes,
}

/// Built and encoded once per set of v3 documents (they change only with
/// CustomResourceDefinitions; the v3 index's hashes say when).
fn encoded() -> Arc<Encoded> {
    static CACHE: Mutex<Option<(String, Arc<Encoded>)>> = Mutex::new(None);
    let key = openapi::root().to_string();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, built)) = cache.as_ref()
        && *k == key
    {
        return built.clone();
    }
    let doc = build();
    let built = Arc::new(Encoded {
        json: serde_json::to_vec(&doc).unwrap_or_default().into(),
        protobuf: gnostic::document(&doc).into(),
    });
    *cache = Some((key, built.clone()));
    built
}

/// The document in JSON.
pub fn json() -> Bytes {
    encoded().json.clone()
}

/// The document in protobuf.
pub fn protobuf() -> Bytes {
    encoded().protobuf.clone()
}

/// The Swagger 2.0 document.
fn build() -> Value {
    let mut definitions = Map::new();
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let Some(v3) = openapi::document(group, version) else { continue };
        // Every group/version's document holds every schema; only its own kinds' carry their
        // group-version-kind, which clients look kinds up by.
        for (name, schema) in v3["components"]["schemas"].as_object().into_iter().flatten() {
            let kind_here = schema.get(GVK).is_some();
            if kind_here || !definitions.contains_key(name) {
                definitions.insert(name.clone(), convert::schema(schema));
            }
        }
        for (path, item) in v3["paths"].as_object().into_iter().flatten() {
            paths.insert(path.clone(), convert::path_item(item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": GIT_VERSION },
        "paths": paths,
        "definitions": definitions,
    })
}

#[cfg(test)]
mod tests;
