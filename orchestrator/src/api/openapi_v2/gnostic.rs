//! The Swagger document as gnostic's `openapi.v2.Document` protobuf, the form Kubernetes
//! serves to protobuf clients. Field numbers are those of gnostic's OpenAPIv2.proto. Values
//! that are free JSON in Swagger (defaults, enums, examples, `x-` extensions) travel as an
//! `Any` whose `yaml` is their JSON text (JSON being YAML), which is how clients read them.

use serde_json::Value;

/// A protobuf message being written. Proto3: zero scalars are left out, messages are not.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, v: &Value) {
        for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn bool(&mut self, field: u32, v: &Value) {
        if v.as_bool() == Some(true) {
            self.tag(field, 0);
            self.varint(1);
        }
    }

    fn int(&mut self, field: u32, v: &Value) {
        if let Some(i) = v.as_i64().filter(|i| *i != 0) {
            self.tag(field, 0);
            self.varint(i as u64);
        }
    }

    fn double(&mut self, field: u32, v: &Value) {
        if let Some(d) = v.as_f64().filter(|d| *d != 0.0) {
            self.tag(field, 1);
            self.0.extend_from_slice(&d.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        write(&mut inner);
        self.bytes(field, &inner.0);
    }

    /// An `Any` holding `v` as YAML (its JSON text).
    fn any(&mut self, field: u32, v: &Value) {
        let text = v.to_string();
        self.message(field, |a| a.bytes(2, text.as_bytes()));
    }

    /// An `Any` holding `v`, when present.
    fn any_if_set(&mut self, field: u32, v: &Value) {
        if !v.is_null() {
            self.any(field, v);
        }
    }

    /// `repeated Any enum`: one per value.
    fn anys(&mut self, field: u32, v: &Value) {
        for e in v.as_array().into_iter().flatten() {
            self.any(field, e);
        }
    }

    /// `repeated NamedAny vendor_extension`: the `x-` keys of `obj`.
    fn extensions(&mut self, field: u32, obj: &Value) {
        for (name, v) in obj.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("x-"))
        {
            self.message(field, |n| {
                n.bytes(1, name.as_bytes());
                n.any(2, v);
            });
        }
    }

    /// `repeated NamedX` map entries: a name (1) and a message (2) written by `value`.
    fn named(&mut self, field: u32, map: &Value, value: impl Fn(&mut Writer, &Value)) {
        for (name, v) in map.as_object().into_iter().flatten() {
            self.message(field, |n| {
                n.bytes(1, name.as_bytes());
                n.message(2, |m| value(m, v));
            });
        }
    }
}

pub fn document(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, &doc["swagger"]);
    w.message(2, |info| {
        info.string(1, &doc["info"]["title"]);
        info.string(2, &doc["info"]["version"]);
    });
    w.message(8, |paths| paths.named(2, &doc["paths"], path_item));
    w.message(9, |defs| defs.named(1, &doc["definitions"], schema));
    w.extensions(16, doc);
    w.0
}

fn schema(w: &mut Writer, s: &Value) {
    w.string(1, &s["$ref"]);
    w.string(2, &s["format"]);
    w.string(3, &s["title"]);
    w.string(4, &s["description"]);
    w.any_if_set(5, &s["default"]);
    w.double(6, &s["multipleOf"]);
    w.double(7, &s["maximum"]);
    w.bool(8, &s["exclusiveMaximum"]);
    w.double(9, &s["minimum"]);
    w.bool(10, &s["exclusiveMinimum"]);
    w.int(11, &s["maxLength"]);
    w.int(12, &s["minLength"]);
    w.string(13, &s["pattern"]);
    w.int(14, &s["maxItems"]);
    w.int(15, &s["minItems"]);
    w.bool(16, &s["uniqueItems"]);
    w.int(17, &s["maxProperties"]);
    w.int(18, &s["minProperties"]);
    w.strings(19, &s["required"]);
    w.anys(20, &s["enum"]);
    match &s["additionalProperties"] {
        Value::Bool(b) => w.message(21, |item| {
            // A oneof member: written even when false.
            item.tag(2, 0);
            item.varint(u64::from(*b));
        }),
        Value::Object(_) => {
            w.message(21, |item| item.message(1, |m| schema(m, &s["additionalProperties"])))
        }
        _ => {}
    }
    match &s["type"] {
        Value::String(_) => w.message(22, |t| t.string(1, &s["type"])),
        Value::Array(_) => w.message(22, |t| t.strings(1, &s["type"])),
        _ => {}
    }
    if s["items"].is_object() {
        w.message(23, |items| items.message(1, |m| schema(m, &s["items"])));
    }
    for sub in s["allOf"].as_array().into_iter().flatten() {
        w.message(24, |m| schema(m, sub));
    }
    if s["properties"].is_object() {
        w.message(25, |props| props.named(1, &s["properties"], schema));
    }
    w.string(26, &s["discriminator"]);
    w.bool(27, &s["readOnly"]);
    w.any_if_set(30, &s["example"]);
    w.extensions(31, s);
}

fn path_item(w: &mut Writer, item: &Value) {
    w.string(1, &item["$ref"]);
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if item[method].is_object() {
            w.message(field, |op| operation(op, &item[method]));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        w.message(9, |m| parameter(m, p));
    }
    w.extensions(10, item);
}

fn operation(w: &mut Writer, op: &Value) {
    w.strings(1, &op["tags"]);
    w.string(2, &op["summary"]);
    w.string(3, &op["description"]);
    w.string(5, &op["operationId"]);
    w.strings(6, &op["produces"]);
    w.strings(7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        w.message(8, |m| parameter(m, p));
    }
    w.message(9, |responses| {
        responses.named(1, &op["responses"], |value, r| {
            value.message(1, |resp| {
                resp.string(1, &r["description"]);
                if r["schema"].is_object() {
                    resp.message(2, |item| item.message(1, |m| schema(m, &r["schema"])));
                }
                resp.extensions(5, r);
            });
        });
    });
    w.strings(10, &op["schemes"]);
    w.bool(11, &op["deprecated"]);
    w.extensions(13, op);
}

/// A `ParametersItem`: a body parameter, or a query/path/header/formData one.
fn parameter(w: &mut Writer, p: &Value) {
    w.message(1, |param| match p["in"].as_str() {
        Some("body") => param.message(1, |b| {
            b.string(1, &p["description"]);
            b.string(2, &p["name"]);
            b.string(3, &p["in"]);
            b.bool(4, &p["required"]);
            if p["schema"].is_object() {
                b.message(5, |m| schema(m, &p["schema"]));
            }
            b.extensions(6, p);
        }),
        location => param.message(2, |non_body| {
            // Query and formData sub-schemas carry allowEmptyValue (5), shifting the rest by one.
            let (field, shift) = match location {
                Some("header") => (1, 0),
                Some("formData") => (2, 1),
                Some("path") => (4, 0),
                _ => (3, 1),
            };
            non_body.message(field, |s| {
                s.bool(1, &p["required"]);
                s.string(2, &p["in"]);
                s.string(3, &p["description"]);
                s.string(4, &p["name"]);
                if shift == 1 {
                    s.bool(5, &p["allowEmptyValue"]);
                }
                s.string(5 + shift, &p["type"]);
                s.string(6 + shift, &p["format"]);
                s.any_if_set(9 + shift, &p["default"]);
                s.bool(19 + shift, &p["uniqueItems"]);
                s.anys(20 + shift, &p["enum"]);
                s.extensions(22 + shift, p);
            });
        }),
    });
}
