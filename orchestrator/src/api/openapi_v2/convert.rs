//! OpenAPI v3 to Swagger 2.0: schemas refer into `#/definitions/` and lose what v2 cannot say
//! (`nullable`, alternatives, a null type); paths take their request bodies as `body`
//! parameters, their parameters' types inline, and each response's schema directly.

use serde_json::{Map, Value, json};

use crate::api::schema::REF_PREFIX;

const V2_REF: &str = "#/definitions/";

/// A v3 schema in v2 form.
pub fn schema(s: &Value) -> Value {
    // `true` (anything) is the empty schema; `false` has no v2 form either.
    let Some(obj) = s.as_object() else { return json!({}) };
    // A reference with its own description is `allOf: [ref]` in v3, the reference beside the
    // description in v2.
    if let Some([only]) = obj.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        let mut merged = schema(only).as_object().cloned().unwrap_or_default();
        for (k, v) in
            schema(&Value::Object(without(obj, "allOf"))).as_object().into_iter().flatten()
        {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
        return Value::Object(merged);
    }
    let mut out = Map::new();
    for (k, v) in obj {
        let converted = match k.as_str() {
            "$ref" => v.as_str().map(|r| json!(r.replacen(REF_PREFIX, V2_REF, 1))),
            "type" => v2_type(v),
            "properties" => v.as_object().map(|props| {
                Value::Object(props.iter().map(|(n, p)| (n.clone(), schema(p))).collect())
            }),
            "additionalProperties" => Some(if v.is_boolean() { v.clone() } else { schema(v) }),
            "items" => match v {
                Value::Array(a) if a.len() == 1 => Some(schema(&a[0])),
                Value::Array(_) => None,
                other => Some(schema(other)),
            },
            "allOf" => v.as_array().map(|a| Value::Array(a.iter().map(schema).collect())),
            // v2 has no nullable values, no alternatives, and a discriminator is a name there.
            "nullable" | "oneOf" | "anyOf" | "not" | "deprecated" | "writeOnly"
            | "discriminator" | "externalDocs" | "xml" => None,
            _ => Some(v.clone()),
        };
        if let Some(c) = converted {
            out.insert(k.clone(), c);
        }
    }
    Value::Object(out)
}

fn without(obj: &Map<String, Value>, key: &str) -> Map<String, Value> {
    obj.iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// One type: v3's `["string", "null"]` is a nullable string, which v2 calls a string; more
/// than one real type is no type (anything).
fn v2_type(v: &Value) -> Option<Value> {
    match v {
        Value::Array(types) => {
            let real: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
            (real.len() == 1).then(|| real[0].clone())
        }
        other => Some(other.clone()),
    }
}

/// A v3 path item in v2 form.
pub fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        match k.as_str() {
            "parameters" => {
                out.insert(k.clone(), parameters(v));
            }
            "get" | "put" | "post" | "delete" | "patch" | "head" | "options" => {
                out.insert(k.clone(), operation(v));
            }
            _ if k.starts_with("x-") => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// Query, path and header parameters: the schema's type and format beside the name.
fn parameters(v: &Value) -> Value {
    let converted = v.as_array().into_iter().flatten().map(|p| {
        let mut out = without(p.as_object().unwrap_or(&Map::new()), "schema");
        for (k, s) in p["schema"].as_object().into_iter().flatten() {
            if matches!(k.as_str(), "type" | "format" | "enum" | "default" | "uniqueItems") {
                out.insert(k.clone(), s.clone());
            }
        }
        Value::Object(out)
    });
    Value::Array(converted.collect())
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params = parameters(&op["parameters"]);
    if let Some(body) = op["requestBody"].as_object() {
        let content = body.get("content").and_then(Value::as_object);
        let consumes: Vec<&String> = content.into_iter().flat_map(|c| c.keys()).collect();
        let body_schema = content.and_then(|c| c.values().next()).map(|m| schema(&m["schema"]));
        if let Some(a) = params.as_array_mut() {
            a.push(json!({
                "name": "body", "in": "body", "required": body.get("required") == Some(&json!(true)),
                "schema": body_schema.unwrap_or_else(|| json!({})),
            }));
        }
        out.insert("consumes".into(), json!(consumes));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, r) in op["responses"].as_object().into_iter().flatten() {
        let mut resp = Map::new();
        resp.insert("description".into(), r.get("description").cloned().unwrap_or(json!("")));
        let content = r.get("content").and_then(Value::as_object);
        for t in content.into_iter().flat_map(|c| c.keys()) {
            if !produces.contains(t) {
                produces.push(t.clone());
            }
        }
        if let Some(media) = content.and_then(|c| c.values().next()) {
            resp.insert("schema".into(), schema(&media["schema"]));
        }
        responses.insert(code.clone(), Value::Object(resp));
    }
    out.insert("parameters".into(), params);
    out.insert("responses".into(), Value::Object(responses));
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    for (k, v) in op.as_object().into_iter().flatten() {
        if matches!(k.as_str(), "operationId" | "description" | "summary" | "tags")
            || k.starts_with("x-")
        {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_take_v2_form() {
        let v3 = json!({
            "type": "object",
            "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/a.Spec"}], "description": "d"},
                "name": {"type": ["string", "null"], "nullable": true},
                "any": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true},
                "list": {"type": "array", "items": {"$ref": "#/components/schemas/a.Item"}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        });
        let v2 = schema(&v3);
        let p = &v2["properties"];
        assert_eq!(p["spec"], json!({"$ref": "#/definitions/a.Spec", "description": "d"}));
        assert_eq!(p["name"], json!({"type": "string"}));
        assert_eq!(p["any"], json!({"x-kubernetes-int-or-string": true}));
        assert_eq!(p["list"]["items"]["$ref"], "#/definitions/a.Item");
        assert_eq!(p["map"]["additionalProperties"], json!({"type": "string"}));
    }

    #[test]
    fn operations_take_body_parameters_and_response_schemas() {
        let v3 = json!({
            "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "put": {
                "operationId": "replaceX",
                "parameters": [{"name": "dryRun", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/a.X"}}}},
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/a.X"}}}}},
                "x-kubernetes-action": "put",
            },
        });
        let v2 = path_item(&v3);
        assert_eq!(
            v2["parameters"][0],
            json!({"name": "name", "in": "path", "required": true, "type": "string"})
        );
        let put = &v2["put"];
        assert_eq!(put["parameters"][1]["in"], "body");
        assert_eq!(put["parameters"][1]["schema"]["$ref"], "#/definitions/a.X");
        assert_eq!(put["consumes"], json!(["application/json"]));
        assert_eq!(put["responses"]["200"]["schema"]["$ref"], "#/definitions/a.X");
        assert_eq!(put["x-kubernetes-action"], "put");
    }
}
