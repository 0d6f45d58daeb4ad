//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! A field set is a set of paths; a path is a list of Kubernetes FieldsV1 tokens: `f:name` (a
//! field), `k:{"name":"x"}` (a list item by its merge key), `v:"a"` (an item of a set) and `.`
//! (the list item itself). Writers own the leaves they set; appliers conflict with other owners
//! of a leaf whose value they would change, unless they force.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::meta;
use super::patch::{ListKind, list_kind, strategic_merge};
use super::resources::ResourceKind;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Identity fields that nobody owns.
fn ignored(path: &[String]) -> bool {
    matches!(path.first().map(String::as_str), Some("f:apiVersion" | "f:kind" | "f:status"))
        || matches!(
            (path.first().map(String::as_str), path.get(1).map(String::as_str)),
            (
                Some("f:metadata"),
                Some(
                    "f:name"
                        | "f:namespace"
                        | "f:uid"
                        | "f:resourceVersion"
                        | "f:generation"
                        | "f:creationTimestamp"
                        | "f:managedFields"
                        | "f:deletionTimestamp"
                        | "f:deletionGracePeriodSeconds"
                        | "f:selfLink"
                )
            )
        )
}

/// The leaf paths set in `obj` (`ty` is its schema definition name).
pub fn fields_of(obj: &Value, ty: &str) -> FieldSet {
    let mut set = FieldSet::new();
    walk(obj, Some(ty.to_owned()), &mut Vec::new(), &mut set);
    set.retain(|p| !ignored(p));
    set
}

fn walk(v: &Value, ty: Option<String>, path: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let child_ty = super::patch::child_type_of(ty.as_deref(), k);
                path.push(format!("f:{k}"));
                match (child, ty.as_deref().and_then(|t| list_kind(t, k))) {
                    (Value::Array(items), Some(ListKind::Keyed(key))) => {
                        for item in items {
                            let Some(kv) = item.get(key) else { continue };
                            path.push(format!("k:{}", json!({ key: kv })));
                            out.insert(with(path, "."));
                            walk(item, child_ty.clone(), path, out);
                            path.pop();
                        }
                        if items.is_empty() {
                            out.insert(path.clone());
                        }
                    }
                    (Value::Array(items), Some(ListKind::Set)) => {
                        for item in items {
                            out.insert(with(path, &format!("v:{item}")));
                        }
                        if items.is_empty() {
                            out.insert(path.clone());
                        }
                    }
                    _ => walk(child, child_ty, path, out),
                }
                path.pop();
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

fn with(path: &Path, last: &str) -> Path {
    let mut p = path.clone();
    p.push(last.to_owned());
    p
}

/// The value at `path` in `obj`, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for tok in path {
        if tok == "." {
            continue;
        }
        cur = if let Some(f) = tok.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = tok.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?
                .iter()
                .find(|item| want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))?
        } else if let Some(v) = tok.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|item| **item == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes what `path` names from `obj` (a field, or a list item for `.`).
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else { return };
    if last == "." {
        let Some((item_tok, list_path)) = parent_path.split_last() else { return };
        let Some(k) = item_tok.strip_prefix("k:") else { return };
        let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else { return };
        if let Some(Value::Array(items)) = value_mut(obj, list_path) {
            items.retain(|item| !want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)));
        }
        return;
    }
    let Some(parent) = value_mut(obj, parent_path) else { return };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(v) = last.strip_prefix("v:")
        && let (Ok(want), Some(items)) = (serde_json::from_str::<Value>(v), parent.as_array_mut())
    {
        items.retain(|i| *i != want);
    }
}

fn value_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for tok in path {
        if tok == "." {
            continue;
        }
        cur = if let Some(f) = tok.strip_prefix("f:") {
            cur.get_mut(f)?
        } else if let Some(k) = tok.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array_mut()?
                .iter_mut()
                .find(|item| want.iter().all(|(wk, wv)| item.get(wk) == Some(wv)))?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// FieldsV1 JSON (a trie of tokens) from a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for tok in path {
            let entry = node.entry(tok.clone()).or_insert_with(|| json!({}));
            match entry {
                Value::Object(m) => node = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// A set from FieldsV1 JSON.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, path: &mut Path, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    path.push(k.clone());
                    go(child, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub fields: FieldSet,
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or("").to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_owned(),
            subresource: e["subresource"].as_str().unwrap_or("").to_owned(),
            fields: from_fields_v1(&e["fieldsV1"]),
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: &[Entry]) {
    let now = meta::now_rfc3339();
    let v: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut o = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": now, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                o["subresource"] = json!(e.subresource);
            }
            o
        })
        .collect();
    let m = meta::metadata_mut(obj);
    if v.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(v));
    }
}

/// Records a non-apply write by `manager`: the leaves it changed become its own.
pub fn record_update(
    kind: &ResourceKind,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
) {
    let ty = (kind.schema_name)();
    let after = fields_of(new, &ty);
    let mut list = old.map(entries).unwrap_or_default();
    let changed: FieldSet = match old {
        None => after.clone(),
        Some(o) => after.iter().filter(|p| value_at(o, p) != value_at(new, p)).cloned().collect(),
    };
    let removed: Vec<Path> = match old {
        Some(o) => fields_of(o, &ty).into_iter().filter(|p| !after.contains(p)).collect(),
        None => Vec::new(),
    };
    for e in &mut list {
        e.fields.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        match list.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => e.fields.extend(changed),
            None => list.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version: kind.api_version(),
                subresource: subresource.to_owned(),
                fields: changed,
            }),
        }
    }
    store_entries(new, &list);
}

/// A field another manager owns with a different value than the applier wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub path: String,
}

fn render_path(p: &[String]) -> String {
    p.iter()
        .filter(|t| *t != ".")
        .map(|t| match t.strip_prefix("f:") {
            Some(f) => format!(".{f}"),
            None => format!("[{}]", &t[2..]),
        })
        .collect()
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is new).
/// Returns the object to store, or the conflicts.
pub fn apply(
    kind: &ResourceKind,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let ty = (kind.schema_name)();
    let want = fields_of(applied, &ty);
    let empty = json!({});
    let base = live.unwrap_or(&empty);
    let mut list = live.map(entries).unwrap_or_default();
    let mut conflicts = Vec::new();
    for e in &list {
        if e.manager == manager && e.operation == "Apply" {
            continue;
        }
        for p in e.fields.intersection(&want) {
            if p.last().is_some_and(|t| t == ".") {
                continue;
            }
            if value_at(base, p).is_some() && value_at(base, p) != value_at(applied, p) {
                conflicts.push(Conflict { manager: e.manager.clone(), path: render_path(p) });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let previous: FieldSet = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    // Forced (or agreeing) fields leave their other owners.
    for e in list.iter_mut().filter(|e| !(e.manager == manager && e.operation == "Apply")) {
        if force {
            e.fields.retain(|p| !want.contains(p));
        }
    }
    let mut merged = match live {
        Some(l) => strategic_merge(l, applied, kind).unwrap_or_else(|_| applied.clone()),
        None => applied.clone(),
    };
    // Fields this applier set before, no longer applies, and nobody else owns: removed.
    let others: FieldSet = list
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut dropped: Vec<&Path> =
        previous.iter().filter(|p| !want.contains(*p) && !others.contains(*p)).collect();
    // Remove deeper paths first so list items go after their fields.
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut merged, p);
    }
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: kind.api_version(),
        subresource: String::new(),
        fields: want,
    });
    store_entries(&mut merged, &list);
    Ok(merged)
}

/// The 409 message Kubernetes gives for apply conflicts.
pub fn conflict_message(kind: &ResourceKind, conflicts: &[Conflict]) -> String {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!("- conflict with \"{}\" using {}: {}", c.manager, kind.api_version(), c.path)
        })
        .collect();
    format!(
        "Apply failed with {} conflict{}: {}",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn field_sets_round_trip_and_key_list_items() {
        let d = find("apps", "v1", "deployments").unwrap();
        let set = fields_of(&deploy(1, "x"), &(d.schema_name)());
        let v1 = to_fields_v1(&set);
        assert!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"]
                .is_object()
        );
        assert!(v1["f:metadata"].get("f:name").is_none());
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let d = find("apps", "v1", "deployments").unwrap();
        let first = apply(d, None, &deploy(1, "x"), "alice", false).unwrap();
        // Another manager changes replicas through a plain update.
        let mut updated = first.clone();
        updated["spec"]["replicas"] = json!(5);
        record_update(d, Some(&first), &mut updated, "scaler", "");
        let owners: Vec<String> = entries(&updated).iter().map(|e| e.manager.clone()).collect();
        assert_eq!(owners, ["alice", "scaler"]);
        // Alice re-applies replicas 1: conflict with the scaler.
        let err = apply(d, Some(&updated), &deploy(1, "x"), "alice", false).unwrap_err();
        assert_eq!(err, [Conflict { manager: "scaler".into(), path: ".spec.replicas".into() }]);
        // Same value as live: no conflict.
        assert!(apply(d, Some(&updated), &deploy(5, "x"), "alice", false).is_ok());
        let forced = apply(d, Some(&updated), &deploy(1, "y"), "alice", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 1);
        assert_eq!(entries(&forced).len(), 1, "the scaler lost its only field");
        // Dropping a label from the applied config removes it.
        let mut less = deploy(1, "y");
        less["metadata"]["labels"] = json!({});
        less["metadata"].as_object_mut().unwrap().remove("labels");
        let out = apply(d, Some(&forced), &less, "alice", false).unwrap();
        assert!(out["metadata"]["labels"].get("a").is_none());
    }
}
