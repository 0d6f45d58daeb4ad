//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes' strategic merge patch.
//!
//! Strategic merge follows the types: lists whose Go type declares `patchStrategy:"merge"` merge
//! element-wise by their merge key (containers by name, ports by containerPort, ...), and the
//! `$patch`, `$setElementOrder/`, `$deleteFromPrimitiveList/` and `$retainKeys` directives apply.

use serde_json::{Map, Value};

use super::resources::ResourceKind;
use super::schema::{REF_PREFIX, schemas};
use schemars::schema::{Schema, SingleOrVec};

pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &ops).map_err(|e| format!("the JSON patch failed: {e}"))?;
    Ok(out)
}

pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, String> {
    if !patch.is_object() {
        return Err("a merge patch must be a JSON object".into());
    }
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    Ok(out)
}

/// How a list field merges, from the Kubernetes types' patch strategies.
pub enum ListKind {
    /// Elements are objects identified by this key.
    Keyed(&'static str),
    /// A set of scalars.
    Set,
}

/// The OpenAPI patch extensions of `ty.field`: (x-kubernetes-patch-strategy, merge key).
pub fn patch_extensions(ty: &str, field: &str) -> Option<(&'static str, Option<&'static str>)> {
    match list_kind(ty, field)? {
        ListKind::Keyed(k) => Some(("merge", Some(k))),
        ListKind::Set => Some(("merge", None)),
    }
}

pub fn list_kind(ty: &str, field: &str) -> Option<ListKind> {
    use ListKind::*;
    let short = ty.rsplit('.').next().unwrap_or(ty);
    Some(match (short, field) {
        ("ObjectMeta", "finalizers") => Set,
        ("ObjectMeta", "ownerReferences") => Keyed("uid"),
        (
            "PodSpec",
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets",
        )
        | ("PodSpec", "resourceClaims" | "schedulingGates") => Keyed("name"),
        ("PodSpec", "hostAliases") => Keyed("ip"),
        ("Container" | "EphemeralContainer", "ports") => Keyed("containerPort"),
        ("Container" | "EphemeralContainer", "env") => Keyed("name"),
        ("Container" | "EphemeralContainer", "volumeMounts") => Keyed("mountPath"),
        ("Container" | "EphemeralContainer", "volumeDevices") => Keyed("devicePath"),
        ("ServiceSpec", "ports") => Keyed("port"),
        ("ServiceAccount", "secrets") => Keyed("name"),
        ("NodeStatus", "addresses") => Keyed("type"),
        (
            "PodStatus"
            | "NodeStatus"
            | "DeploymentStatus"
            | "ReplicaSetStatus"
            | "DaemonSetStatus"
            | "StatefulSetStatus"
            | "JobStatus"
            | "NamespaceStatus"
            | "PersistentVolumeClaimStatus"
            | "ServiceStatus",
            "conditions",
        ) => Keyed("type"),
        ("PodStatus", "podIPs") => Keyed("ip"),
        _ => return None,
    })
}

/// The definition name of `ty.field` (for a list, of its elements).
pub fn child_type_of(ty: Option<&str>, field: &str) -> Option<String> {
    let def = match schemas().definitions.get(ty?)? {
        Schema::Object(o) => o,
        Schema::Bool(_) => return None,
    };
    let Schema::Object(prop) = def.object.as_ref()?.properties.get(field)? else { return None };
    let target = match (&prop.reference, prop.array.as_ref().and_then(|a| a.items.as_ref())) {
        (Some(r), _) => r.clone(),
        (None, Some(SingleOrVec::Single(item))) => match item.as_ref() {
            Schema::Object(o) => o.reference.clone()?,
            Schema::Bool(_) => return None,
        },
        _ => return None,
    };
    target.strip_prefix(REF_PREFIX).map(str::to_owned)
}

pub fn strategic_merge(doc: &Value, patch: &Value, kind: &ResourceKind) -> Result<Value, String> {
    let Value::Object(p) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let mut out = doc.clone();
    let ty = (kind.schema_name)();
    match &mut out {
        Value::Object(m) => {
            if merge_map(m, p, Some(&ty))? == Outcome::Delete {
                return Err("a strategic merge patch cannot delete the whole object".into());
            }
        }
        _ => return Err("the object is not a JSON object".into()),
    }
    Ok(out)
}

#[derive(PartialEq, Eq)]
enum Outcome {
    Keep,
    Delete,
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Option<&str>,
) -> Result<Outcome, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return Ok(Outcome::Keep);
        }
        Some("delete") => return Ok(Outcome::Delete),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch directive {other:?}")),
    }
    let mut orders = Vec::new();
    let mut retain: Option<Vec<String>> = None;
    for (key, pv) in patch {
        if key == "$patch" {
            continue;
        }
        if key == "$retainKeys" {
            let keys = pv.as_array().ok_or("$retainKeys must be a list")?;
            retain = Some(keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect());
            continue;
        }
        if let Some(field) = key.strip_prefix("$setElementOrder/") {
            orders.push((field.to_owned(), pv.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let remove = pv.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown patch directive {key:?}"));
        }
        if pv.is_null() {
            orig.remove(key);
            continue;
        }
        let child = child_type_of(ty, key);
        match (orig.get_mut(key), pv) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if merge_map(o, p, child.as_deref())? == Outcome::Delete {
                    orig.remove(key);
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                let strategy = ty.and_then(|t| list_kind(t, key));
                if let Some(merged) = merge_list(o, p, strategy, child.as_deref())? {
                    *o = merged;
                }
            }
            (_, Value::Object(p)) if p.get("$patch").and_then(Value::as_str) == Some("delete") => {
                orig.remove(key);
            }
            _ => {
                orig.insert(key.clone(), strip_directives(pv));
            }
        }
    }
    for (field, order) in orders {
        let strategy = ty.and_then(|t| list_kind(t, &field));
        if let Some(Value::Array(list)) = orig.get_mut(&field) {
            reorder(list, &order, strategy);
        }
    }
    if let Some(keep) = retain {
        orig.retain(|k, _| keep.contains(k));
    }
    Ok(Outcome::Keep)
}

/// The merged list, or None to keep `orig` as modified in place.
fn merge_list(
    orig: &mut Vec<Value>,
    patch: &[Value],
    strategy: Option<ListKind>,
    elem_ty: Option<&str>,
) -> Result<Option<Vec<Value>>, String> {
    match strategy {
        None => Ok(Some(patch.iter().map(strip_directives).collect())),
        Some(ListKind::Set) => {
            for v in patch {
                if !orig.contains(v) {
                    orig.push(v.clone());
                }
            }
            Ok(None)
        }
        Some(ListKind::Keyed(mk)) => {
            if patch.iter().any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace")) {
                return Ok(Some(
                    patch
                        .iter()
                        .filter(|p| p.get("$patch").is_none())
                        .map(strip_directives)
                        .collect(),
                ));
            }
            for p in patch {
                let Value::Object(pm) = p else {
                    return Err(format!("list items merged by {mk} must be objects"));
                };
                let key =
                    pm.get(mk).ok_or_else(|| format!("a list item lacks its merge key {mk:?}"))?;
                let idx = orig.iter().position(|o| o.get(mk) == Some(key));
                match (idx, pm.get("$patch").and_then(Value::as_str)) {
                    (Some(i), Some("delete")) => {
                        orig.remove(i);
                    }
                    (None, Some("delete")) => {}
                    (Some(i), _) => {
                        if let Value::Object(om) = &mut orig[i]
                            && merge_map(om, pm, elem_ty)? == Outcome::Delete
                        {
                            orig.remove(i);
                        }
                    }
                    (None, _) => orig.push(strip_directives(p)),
                }
            }
            Ok(None)
        }
    }
}

fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: Option<ListKind>) {
    let key_of = |v: &Value| -> Value {
        match strategy {
            Some(ListKind::Keyed(mk)) => v.get(mk).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let wanted: Vec<Value> = order.iter().map(key_of).collect();
    let mut items = std::mem::take(list);
    for w in &wanted {
        if let Some(i) = items.iter().position(|v| key_of(v) == *w) {
            list.push(items.remove(i));
        }
    }
    list.extend(items);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"metadata": {"name": "d", "finalizers": ["a"]},
               "spec": {"replicas": 1, "template": {"spec": {"containers": [
                   {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
                   {"name": "b", "image": "b:1"}]}}}})
    }

    #[test]
    fn containers_merge_by_name() {
        let d = find("apps", "v1", "deployments").unwrap();
        let patch = json!({"metadata": {"finalizers": ["b"]},
            "spec": {"template": {"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "c", "image": "c:1"}]}}}});
        let out = strategic_merge(&deployment(), &patch, d).unwrap();
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "a:1");
        assert_eq!(cs[0]["env"].as_array().unwrap().len(), 2);
        assert_eq!(cs[1]["image"], "b:2");
        assert_eq!(cs[2]["name"], "c");
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    }

    #[test]
    fn directives() {
        let d = find("apps", "v1", "deployments").unwrap();
        let patch = json!({"spec": {"replicas": null, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "$patch": "delete"}]}}}});
        let out = strategic_merge(&deployment(), &patch, d).unwrap();
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "b:1"}])
        );
        let replace = json!({"spec": {"template": {"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}}}});
        let out = strategic_merge(&deployment(), &replace, d).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "z", "image": "z"}])
        );
        let del = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}});
        assert_eq!(
            strategic_merge(&deployment(), &del, d).unwrap()["metadata"]["finalizers"],
            json!([])
        );
        assert!(strategic_merge(&deployment(), &json!({"$bogus": 1}), d).is_err());
    }
}
