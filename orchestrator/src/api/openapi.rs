//! OpenAPI v3: the root index (`/openapi/v3`) and one document per group/version with the
//! schemas of its kinds (generated from k8s-openapi's types), the `x-kubernetes-*` extensions
//! kubectl reads (group-version-kind, patch strategies), and the paths with their parameters
//! (kubectl looks for `fieldValidation` on PATCH to use server-side validation).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::custom;
use super::discovery::GIT_VERSION;
use super::patch::patch_extensions;
use super::resources::{KINDS, ResourceKind, group_versions};
use super::schema::schemas;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

type Documents = HashMap<(String, String), (Value, String)>;

fn with_hash(doc: Value) -> (Value, String) {
    let hash = fnv(&serde_json::to_vec(&doc).unwrap_or_default());
    (doc, format!("{hash:016X}"))
}

/// The built-in kinds' documents, built once.
fn documents() -> &'static Documents {
    static DOCS: OnceLock<Documents> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for k in KINDS {
            if !gvs.contains(&k.group_version()) {
                gvs.push(k.group_version());
            }
        }
        gvs.into_iter()
            .map(|(g, v)| ((g.to_owned(), v.to_owned()), with_hash(build(g, v))))
            .collect()
    })
}

/// The group/versions served by custom kinds only (their documents change with definitions).
fn custom_group_versions() -> Vec<(&'static str, &'static str)> {
    let built_in = documents();
    group_versions()
        .into_iter()
        .filter(|(g, v)| !built_in.contains_key(&((*g).to_owned(), (*v).to_owned())))
        .collect()
}

/// The definition name a kind's paths refer to.
fn definition_name(k: &ResourceKind) -> String {
    if k.custom.is_some() { custom::openapi::definition_name(k) } else { (k.schema_name)() }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

pub fn root() -> Value {
    let mut paths = Map::new();
    let custom: Vec<((String, String), (Value, String))> = custom_group_versions()
        .into_iter()
        .map(|(g, v)| ((g.to_owned(), v.to_owned()), with_hash(build(g, v))))
        .collect();
    for ((g, v), (_, hash)) in documents().iter().chain(custom.iter().map(|(k, d)| (k, d))) {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}") }),
        );
    }
    json!({ "paths": paths })
}

pub fn document(group: &str, version: &str) -> Option<Value> {
    if let Some((d, _)) = documents().get(&(group.to_owned(), version.to_owned())) {
        return Some(d.clone());
    }
    custom_group_versions().contains(&(group, version)).then(|| build(group, version))
}

fn gvk(k: &ResourceKind) -> Value {
    json!({ "group": k.group, "version": k.version, "kind": k.kind })
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": location, "description": description, "schema": { "type": ty }, "required": location == "path" })
}

fn body_of(schema_ref: &str, types: &[&str]) -> Value {
    let content: Map<String, Value> = types
        .iter()
        .map(|t| ((*t).to_owned(), json!({ "schema": { "$ref": schema_ref } })))
        .collect();
    json!({ "content": content, "required": true })
}

fn response(schema_ref: &str) -> Value {
    json!({ "200": { "description": "OK", "content": { "application/json": { "schema": { "$ref": schema_ref } } } } })
}

fn paths_for(k: &ResourceKind, paths: &mut Map<String, Value>) {
    let sref = format!("#/components/schemas/{}", definition_name(k));
    let base = format!("/{}", gv_path(k.group, k.version));
    let ns_part = if k.namespaced { "/namespaces/{namespace}" } else { "" };
    let collection = format!("{base}{ns_part}/{}", k.plural);
    let item = format!("{collection}/{{name}}");
    let mut common = vec![];
    if k.namespaced {
        common.push(param(
            "namespace",
            "path",
            "string",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let write_params = || {
        vec![
            param(
                "dryRun",
                "query",
                "string",
                "When present, indicates that modifications should not be persisted.",
            ),
            param(
                "fieldManager",
                "query",
                "string",
                "A name associated with the actor or entity that is making these changes.",
            ),
            param(
                "fieldValidation",
                "query",
                "string",
                "Ignore, Warn or Strict: how to treat unknown or duplicate fields.",
            ),
        ]
    };
    let ext = gvk(k);
    let op = |id: &str, action: &str, extra: Vec<Value>| -> Value {
        json!({
            "operationId": format!("{id}{}", k.kind),
            "parameters": extra,
            "responses": response(&sref),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": ext,
        })
    };
    if k.verbs().contains(&"list") {
        let mut list = op("list", "list", vec![]);
        for p in ["labelSelector", "fieldSelector", "continue", "resourceVersion"] {
            if let Some(a) = list["parameters"].as_array_mut() {
                a.push(param(p, "query", "string", p));
            }
        }
        let mut create = op("create", "post", write_params());
        create["requestBody"] = body_of(&sref, &["application/json", "application/yaml"]);
        paths.insert(collection, json!({ "get": list, "post": create, "parameters": common }));
    } else {
        let mut create = op("create", "post", write_params());
        create["requestBody"] = body_of(&sref, &["application/json", "application/yaml"]);
        paths.insert(collection, json!({ "post": create, "parameters": common }));
        return;
    }
    let mut put = op("replace", "put", write_params());
    put["requestBody"] = body_of(&sref, &["application/json", "application/yaml"]);
    let mut patch_params = write_params();
    patch_params.push(param(
        "force",
        "query",
        "boolean",
        "Force is going to \"force\" Apply requests.",
    ));
    let mut patch = op("patch", "patch", patch_params);
    patch["requestBody"] = body_of(
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        &[
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ],
    );
    let mut item_params = common.clone();
    item_params.insert(0, param("name", "path", "string", "name of the object"));
    paths.insert(
        item,
        json!({
            "get": op("read", "get", vec![]),
            "put": put,
            "patch": patch,
            "delete": op("delete", "delete", vec![]),
            "parameters": item_params,
        }),
    );
}

fn build(group: &str, version: &str) -> Value {
    let defs = &schemas().definitions;
    let mut components = Map::new();
    for (name, schema) in defs {
        let mut s = serde_json::to_value(schema).unwrap_or(Value::Null);
        if let Some(props) = s.pointer_mut("/properties").and_then(Value::as_object_mut) {
            for (field, prop) in props.iter_mut() {
                if let Some((strategy, key)) = patch_extensions(name, field) {
                    prop["x-kubernetes-patch-strategy"] = json!(strategy);
                    if let Some(k) = key {
                        prop["x-kubernetes-patch-merge-key"] = json!(k);
                    }
                }
            }
        }
        components.insert(name.clone(), s);
    }
    components.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({ "type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body." }),
    );
    let mut paths = Map::new();
    for k in
        super::resources::all().into_iter().filter(|k| k.group == group && k.version == version)
    {
        if let Some(d) = custom::openapi::definition(k) {
            components.insert(definition_name(k), d);
        } else if let Some(s) = components.get_mut(&(k.schema_name)()) {
            s["x-kubernetes-group-version-kind"] = json!([gvk(k)]);
        }
        paths_for(k, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": GIT_VERSION },
        "paths": paths,
        "components": { "schemas": components },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_carry_kinds_and_patch_parameters() {
        let doc = document("apps", "v1").unwrap();
        let d = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(d["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
        assert!(
            d["properties"]["spec"]["$ref"]
                .as_str()
                .unwrap()
                .ends_with("io.k8s.api.apps.v1.DeploymentSpec")
        );
        let c =
            &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(c["x-kubernetes-patch-merge-key"], "name");
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(p["parameters"].as_array().unwrap().iter().any(|x| x["name"] == "fieldValidation"));
        assert!(
            root()["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
