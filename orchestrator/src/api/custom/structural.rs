//! Custom objects against their version's structural schema, as Kubernetes treats them:
//! unknown fields pruned (unless preserved), `default`s filled in, then every constraint
//! checked with causes naming the field path.

use serde_json::{Value, json};

use crate::api::error::Cause;

/// Fields the server owns at an object's root, never pruned by the custom schema.
const ROOT_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Drops the fields `schema` does not know from `obj`; returns their paths.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, obj, "", &mut unknown);
    unknown
}

fn prune_at(schema: &Value, v: &mut Value, path: &str, unknown: &mut Vec<String>) {
    if schema["x-kubernetes-embedded-resource"] == true && path.is_empty() {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if path.is_empty() && ROOT_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child = join(path, &key);
                let sub = props
                    .and_then(|p| p.get(&key))
                    .or(additional.is_object().then_some(additional));
                match sub {
                    Some(s) => {
                        if let Some(x) = map.get_mut(&key) {
                            prune_at(s, x, &child, unknown);
                        }
                    }
                    None if *additional == true || preserves(schema) => {}
                    None => {
                        map.remove(&key);
                        unknown.push(child);
                    }
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, x) in items.iter_mut().enumerate() {
                prune_at(&schema["items"], x, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

/// Fills in the schema's `default`s for fields left out (at any depth under present objects).
pub fn apply_defaults(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, sub) in schema["properties"].as_object().into_iter().flatten() {
                let slot = map.get(key);
                if (slot.is_none() || slot == Some(&Value::Null))
                    && let Some(d) = sub.get("default")
                    && sub["nullable"] != true
                {
                    map.insert(key.clone(), d.clone());
                }
                if let Some(x) = map.get_mut(key) {
                    apply_defaults(sub, x);
                }
            }
            if schema["additionalProperties"].is_object() {
                for x in map.values_mut() {
                    apply_defaults(&schema["additionalProperties"], x);
                }
            }
        }
        Value::Array(items) => {
            for x in items {
                apply_defaults(&schema["items"], x);
            }
        }
        _ => {}
    }
}

/// Every way `obj` breaks `schema` (the root's metadata is validated as ObjectMeta elsewhere).
pub fn validate(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_at(schema, obj, "", &mut causes);
    causes
}

/// How Kubernetes names a JSON value's type in messages.
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_fits(ty: &str, v: &Value) -> bool {
    match ty {
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

/// A value as Kubernetes quotes it in messages.
fn shown(v: &Value) -> String {
    v.to_string()
}

fn invalid(field: &str, v: &Value, what: String) -> Cause {
    Cause::invalid(field, format!("Invalid value: {}: {field} in body {what}", shown(v)))
}

fn validate_at(schema: &Value, v: &Value, path: &str, causes: &mut Vec<Cause>) {
    if !schema.is_object() {
        return;
    }
    let field = if path.is_empty() { "<root>" } else { path };
    if v.is_null() {
        if schema["nullable"] != true && schema["type"].is_string() && !path.is_empty() {
            causes.push(invalid(
                field,
                &json!("null"),
                format!("must be of type {}: \"null\"", schema["type"].as_str().unwrap_or("")),
            ));
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !(v.is_string() || type_fits("integer", v)) {
            causes.push(invalid(
                field,
                &json!(type_of(v)),
                format!("must be of type integer or string: \"{}\"", type_of(v)),
            ));
            return;
        }
    } else if let Some(ty) = schema["type"].as_str()
        && !type_fits(ty, v)
    {
        causes.push(invalid(
            field,
            &json!(type_of(v)),
            format!("must be of type {ty}: \"{}\"", type_of(v)),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(shown).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: field.to_owned(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(v),
                list.join(", ")
            ),
        });
    }
    if let Some(n) = v.as_f64() {
        let exclusive = |k: &str| schema[k] == true;
        if let Some(min) = schema["minimum"].as_f64() {
            if exclusive("exclusiveMinimum") && n <= min {
                causes.push(invalid(
                    field,
                    v,
                    format!("should be greater than {}", schema["minimum"]),
                ));
            } else if n < min {
                causes.push(invalid(
                    field,
                    v,
                    format!("should be greater than or equal to {}", schema["minimum"]),
                ));
            }
        }
        if let Some(max) = schema["maximum"].as_f64() {
            if exclusive("exclusiveMaximum") && n >= max {
                causes.push(invalid(
                    field,
                    v,
                    format!("should be less than {}", schema["maximum"]),
                ));
            } else if n > max {
                causes.push(invalid(
                    field,
                    v,
                    format!("should be less than or equal to {}", schema["maximum"]),
                ));
            }
        }
        if let Some(m) = schema["multipleOf"].as_f64()
            && m > 0.0
            && (n / m).fract() != 0.0
        {
            causes.push(invalid(
                field,
                v,
                format!("should be a multiple of {}", schema["multipleOf"]),
            ));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && len < min
        {
            causes.push(invalid(field, v, format!("should be at least {min} chars long")));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && len > max
        {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: field.to_owned(),
                message: format!("Too long: may not be more than {max} bytes"),
            });
        }
        if let Some(p) = schema["pattern"].as_str() {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(s) => {
                    causes.push(invalid(field, v, format!("should match '{p}'")))
                }
                Ok(_) => {}
                Err(_) => causes.push(Cause::invalid(
                    field,
                    format!("Invalid value: the schema's pattern '{p}' does not compile"),
                )),
            }
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64()
            && n < min
        {
            causes.push(invalid(field, v, format!("should have at least {min} items")));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && n > max
        {
            causes.push(Cause {
                reason: "FieldValueTooMany",
                field: field.to_owned(),
                message: format!("Too many: {n}: must have at most {max} items"),
            });
        }
        for (i, x) in items.iter().enumerate() {
            validate_at(&schema["items"], x, &format!("{path}[{i}]"), causes);
        }
    }
    if let Some(map) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                causes.push(Cause::required(&join(path, r)));
            }
        }
        let n = map.len() as u64;
        if let Some(min) = schema["minProperties"].as_u64()
            && n < min
        {
            causes.push(invalid(
                field,
                &json!(n),
                format!("should have at least {min} properties"),
            ));
        }
        if let Some(max) = schema["maxProperties"].as_u64()
            && n > max
        {
            causes.push(invalid(field, &json!(n), format!("should have at most {max} properties")));
        }
        let props = schema["properties"].as_object();
        for (k, x) in map {
            if path.is_empty() && ROOT_FIELDS.contains(&k.as_str()) {
                continue;
            }
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate_at(s, x, &join(path, k), causes),
                None if schema["additionalProperties"].is_object() => {
                    validate_at(&schema["additionalProperties"], x, &join(path, k), causes)
                }
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                "image": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "size": {"type": "string", "enum": ["small", "large"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "env": {"type": "object", "additionalProperties": {"type": "integer"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }})
    }

    #[test]
    fn unknown_fields_are_pruned_unless_preserved() {
        let mut o = json!({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "x"},
            "spec": {"cronSpec": "* * * * *", "colour": 1, "extra": {"any": {"thing": 1}},
                     "env": {"A": 1}}, "junk": true});
        assert_eq!(prune(&schema(), &mut o), ["junk", "spec.colour"]);
        assert_eq!(o["spec"]["extra"]["any"]["thing"], 1);
        assert_eq!(o["spec"]["env"]["A"], 1);
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let mut o = json!({"spec": {"cronSpec": "* * * * *"}});
        apply_defaults(&schema(), &mut o);
        assert_eq!(o["spec"]["replicas"], 1);
    }

    #[test]
    fn causes_name_each_field() {
        let o = json!({"metadata": {}, "spec": {"image": "", "replicas": "two", "size": "huge",
            "tags": ["a", "b", "c"], "env": {"A": "x"}}});
        let c = validate(&schema(), &o);
        let got: Vec<(&str, &str)> =
            c.iter().map(|c| (c.field.as_str(), c.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("spec.cronSpec", "Required value"),
                (
                    "spec.env.A",
                    "Invalid value: \"string\": spec.env.A in body must be of type integer: \"string\""
                ),
                (
                    "spec.image",
                    "Invalid value: \"\": spec.image in body should be at least 1 chars long"
                ),
                (
                    "spec.replicas",
                    "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
                ),
                (
                    "spec.size",
                    "Unsupported value: \"huge\": supported values: \"small\", \"large\""
                ),
                ("spec.tags", "Too many: 3: must have at most 2 items"),
            ]
        );
        let o = json!({"spec": {"cronSpec": "bad", "replicas": 11}});
        let fields: Vec<String> = validate(&schema(), &o).into_iter().map(|c| c.message).collect();
        assert!(fields[0].contains("should match"), "{fields:?}");
        assert!(fields[1].contains("less than or equal to 10"), "{fields:?}");
    }
}
