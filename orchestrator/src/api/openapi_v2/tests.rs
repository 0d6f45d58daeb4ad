use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// Checks what Go clients' OpenAPI v2 models refuse (kube-openapi's `util/proto`): a
/// reference to no definition, more than one type, an array without exactly one item schema,
/// an unknown primitive type.
fn check(s: &Value, defs: &Map<String, Value>, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = s["$ref"].as_str() {
        match r.strip_prefix("#/definitions/") {
            Some(name) if defs.contains_key(name) => {}
            _ => errors.push(format!("{at}: dangling reference {r}")),
        }
        return;
    }
    match &s["type"] {
        Value::Null => {}
        Value::String(t) if t == "array" => match s["items"].is_object() {
            true => check(&s["items"], defs, &format!("{at}[]"), errors),
            false => errors.push(format!("{at}: array without one item schema")),
        },
        Value::String(t) if t == "object" => {}
        Value::String(t) if ["string", "integer", "number", "boolean"].contains(&t.as_str()) => {}
        other => errors.push(format!("{at}: type {other}")),
    }
    for (name, p) in s["properties"].as_object().into_iter().flatten() {
        check(p, defs, &format!("{at}.{name}"), errors);
    }
    if s["additionalProperties"].is_object() {
        check(&s["additionalProperties"], defs, &format!("{at}{{}}"), errors);
    }
}

#[test]
fn every_definition_is_one_go_clients_can_model() {
    let doc = build();
    let defs = doc["definitions"].as_object().unwrap();
    assert!(defs.len() > 300, "{} definitions", defs.len());
    let mut errors = Vec::new();
    for (name, s) in defs {
        check(s, defs, name, &mut errors);
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                check(&p["schema"], defs, &format!("{method} {path}"), &mut errors);
            }
            for r in op["responses"].as_object().into_iter().flatten().map(|(_, r)| r) {
                check(&r["schema"], defs, &format!("{method} {path}"), &mut errors);
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for (name, kind) in [
        ("io.k8s.api.core.v1.Pod", "Pod"),
        ("io.k8s.api.apps.v1.Deployment", "Deployment"),
        ("io.k8s.api.core.v1.ReplicationController", "ReplicationController"),
        ("io.k8s.api.rbac.v1.ClusterRole", "ClusterRole"),
    ] {
        assert_eq!(defs[name]["x-kubernetes-group-version-kind"][0]["kind"], kind, "{name}");
    }
    let put = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["put"];
    let body = put["parameters"].as_array().unwrap().iter().find(|p| p["in"] == "body").unwrap();
    assert_eq!(body["schema"]["$ref"], "#/definitions/io.k8s.api.apps.v1.Deployment");
}

/// The fields of one protobuf message: (number, varint value or bytes).
fn fields(mut b: &[u8]) -> Vec<(u32, Result<u64, &[u8]>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b);
        let n = (tag >> 3) as u32;
        match tag & 7 {
            0 => out.push((n, Ok(varint(&mut b)))),
            1 => {
                out.push((n, Ok(u64::from_le_bytes(b[..8].try_into().unwrap()))));
                b = &b[8..];
            }
            2 => {
                let len = varint(&mut b) as usize;
                out.push((n, Err(&b[..len])));
                b = &b[len..];
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn bytes(msg: &[u8], n: u32) -> Vec<&[u8]> {
    fields(msg).into_iter().filter(|(f, _)| *f == n).filter_map(|(_, v)| v.err()).collect()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn the_protobuf_form_holds_the_same_document() {
    let doc = build();
    let pb = protobuf();
    assert_eq!(text(bytes(&pb, 1)[0]), "2.0");
    let defs = bytes(&pb, 9)[0];
    let named: Vec<(&str, &[u8])> =
        bytes(defs, 1).into_iter().map(|n| (text(bytes(n, 1)[0]), bytes(n, 2)[0])).collect();
    let names: BTreeSet<&str> = named.iter().map(|(n, _)| *n).collect();
    let json_names: BTreeSet<&str> =
        doc["definitions"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(names, json_names);

    let (_, pod) = named.iter().find(|(n, _)| *n == "io.k8s.api.core.v1.Pod").unwrap();
    // type: TypeItem{value: ["object"]}
    assert_eq!(text(bytes(bytes(pod, 22)[0], 1)[0]), "object");
    // properties.spec.$ref
    let props = bytes(bytes(pod, 25)[0], 1);
    let spec = props.iter().find(|p| text(bytes(p, 1)[0]) == "spec").unwrap();
    assert_eq!(text(bytes(bytes(spec, 2)[0], 1)[0]), "#/definitions/io.k8s.api.core.v1.PodSpec");
    // x-kubernetes-group-version-kind as an Any whose yaml is the JSON value.
    let ext = bytes(pod, 31)
        .into_iter()
        .find(|e| text(bytes(e, 1)[0]) == "x-kubernetes-group-version-kind")
        .unwrap();
    let yaml = text(bytes(bytes(ext, 2)[0], 2)[0]);
    let gvk: Value = serde_json::from_str(yaml).unwrap();
    assert_eq!(gvk[0]["kind"], "Pod");

    // A path's operation with its query parameter (QueryParameterSubSchema: name 4, type 6).
    let paths = bytes(&pb, 8)[0];
    let item = bytes(paths, 2)
        .into_iter()
        .find(|p| text(bytes(p, 1)[0]) == "/api/v1/namespaces/{namespace}/pods")
        .map(|p| bytes(p, 2)[0])
        .unwrap();
    let get = bytes(item, 2)[0];
    assert_eq!(text(bytes(get, 5)[0]), "listPod");
    let query: Vec<&str> = bytes(get, 8)
        .into_iter()
        .filter_map(|p| bytes(bytes(p, 1)[0], 2).first().copied())
        .filter_map(|nb| bytes(nb, 3).first().copied())
        .map(|q| text(bytes(q, 4)[0]))
        .collect();
    assert!(query.contains(&"labelSelector"), "{query:?}");
}

#[test]
fn accept_headers_choose_the_form() {
    assert!(wants_protobuf(
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json"
    ));
    assert!(wants_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"));
    assert!(!wants_protobuf("application/json, */*"));
}
