//! ResourceQuota accounting, shared by admission (which charges a new object to the quotas of
//! its namespace) and the quota controller (which recounts what a namespace uses): what one
//! object uses of each quota resource, and whether a charge fits.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{ApiError, Cause};
use super::resources::ResourceKind;
use crate::kube::quantity;

/// Amounts per resource name, in thousandths (CPU in millicores, the rest in milli-units).
pub type Usage = BTreeMap<String, i64>;

/// Container resources a quota on them makes every container state.
const COMPUTE: [&str; 6] =
    ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory"];

/// Kinds with a quota name of their own besides `count/<plural>`.
fn legacy_count(kind: &ResourceKind) -> Option<&'static str> {
    match (kind.group, kind.plural) {
        (
            "",
            p @ ("pods"
            | "services"
            | "configmaps"
            | "secrets"
            | "persistentvolumeclaims"
            | "replicationcontrollers"
            | "resourcequotas"),
        ) => Some(p),
        _ => None,
    }
}

/// `count/<plural>` or `count/<plural>.<group>`.
pub fn count_name(kind: &ResourceKind) -> String {
    if kind.group.is_empty() {
        format!("count/{}", kind.plural)
    } else {
        format!("count/{}.{}", kind.plural, kind.group)
    }
}

/// Whether a resource name is one this server counts for `kind`.
pub fn counted_for(kind: &ResourceKind, resource: &str) -> bool {
    let compute_or_pods =
        COMPUTE.contains(&resource) || resource == "pods" || resource.starts_with("requests.");
    resource == count_name(kind)
        || legacy_count(kind) == Some(resource)
        || (kind.group.is_empty() && kind.plural == "pods" && compute_or_pods)
        || (kind.group.is_empty()
            && kind.plural == "services"
            && matches!(resource, "services.nodeports" | "services.loadbalancers"))
        || (kind.group.is_empty()
            && kind.plural == "persistentvolumeclaims"
            && resource == "requests.storage")
}

fn milli(v: &Value) -> i64 {
    v.as_str().and_then(quantity::milli).or_else(|| v.as_i64().map(|n| n * 1000)).unwrap_or(0)
}

/// A pod's effective `requests` or `limits` of `resource`: the sum over its containers, or
/// an init container's if larger (they run one at a time, before the others).
fn pod_amount(spec: &Value, which: &str, resource: &str) -> i64 {
    let of = |field: &str| -> Vec<i64> {
        spec[field]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| milli(&c["resources"][which][resource]))
            .collect()
    };
    let sum: i64 = of("containers").iter().sum();
    let init = of("initContainers").into_iter().max().unwrap_or(0);
    sum.max(init)
}

fn pod_is_finished(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// What `obj` (of `kind`) uses of every quota resource it counts towards.
pub fn usage_of(kind: &ResourceKind, obj: &Value) -> Usage {
    let mut u = Usage::new();
    if !kind.namespaced {
        return u;
    }
    let is_pod = kind.group.is_empty() && kind.plural == "pods";
    if is_pod && pod_is_finished(obj) {
        return u;
    }
    u.insert(count_name(kind), 1000);
    if let Some(name) = legacy_count(kind) {
        u.insert(name.to_owned(), 1000);
    }
    if is_pod {
        for res in ["cpu", "memory", "ephemeral-storage"] {
            let requests = pod_amount(&obj["spec"], "requests", res);
            let limits = pod_amount(&obj["spec"], "limits", res);
            u.insert(format!("requests.{res}"), requests);
            u.insert(format!("limits.{res}"), limits);
            if res != "ephemeral-storage" {
                u.insert(res.to_owned(), requests);
            }
        }
    }
    if kind.group.is_empty() && kind.plural == "services" {
        let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
        let ports = obj["spec"]["ports"].as_array().map_or(0, Vec::len) as i64;
        if matches!(ty, "NodePort" | "LoadBalancer") {
            u.insert("services.nodeports".into(), ports * 1000);
        }
        if ty == "LoadBalancer" {
            u.insert("services.loadbalancers".into(), 1000);
        }
    }
    if kind.group.is_empty() && kind.plural == "persistentvolumeclaims" {
        u.insert(
            "requests.storage".into(),
            milli(&obj["spec"]["resources"]["requests"]["storage"]),
        );
    }
    u
}

/// Whether a pod's activity matches a quota scope.
fn in_scope(scope: &str, pod: &Value) -> Option<bool> {
    let spec = &pod["spec"];
    let best_effort = ["containers", "initContainers"].iter().all(|f| {
        spec[*f].as_array().into_iter().flatten().all(|c| {
            let r = &c["resources"];
            r["requests"].as_object().is_none_or(|m| m.is_empty())
                && r["limits"].as_object().is_none_or(|m| m.is_empty())
        })
    });
    let terminating = !spec["activeDeadlineSeconds"].is_null();
    match scope {
        "BestEffort" => Some(best_effort),
        "NotBestEffort" => Some(!best_effort),
        "Terminating" => Some(terminating),
        "NotTerminating" => Some(!terminating),
        _ => None,
    }
}

/// The scopes this server evaluates.
pub const SCOPES: [&str; 4] = ["BestEffort", "NotBestEffort", "Terminating", "NotTerminating"];

/// Whether `quota` governs `obj` of `kind` at all (its scopes, which only pods can match).
pub fn governs(quota: &Value, kind: &ResourceKind, obj: &Value) -> bool {
    let scopes: Vec<&str> = quota["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if scopes.is_empty() {
        return true;
    }
    kind.group.is_empty()
        && kind.plural == "pods"
        && scopes.iter().all(|s| in_scope(s, obj).unwrap_or(false))
}

/// A quota's hard limits as the controller last recorded them, and what it counted as used.
pub fn hard_and_used(quota: &Value) -> (Usage, Option<Usage>) {
    let read = |v: &Value| -> Usage {
        v.as_object().into_iter().flatten().map(|(k, q)| (k.clone(), milli(q))).collect()
    };
    let hard = read(&quota["status"]["hard"]);
    let used = quota["status"]["used"].is_object().then(|| read(&quota["status"]["used"]));
    (hard, used)
}

/// Whether `resource` is a size in bytes (shown with binary suffixes when they fit).
fn is_bytes(resource: &str) -> bool {
    ["memory", "storage", "ephemeral-storage"].iter().any(|s| resource.ends_with(s))
}

/// `amount` (in thousandths) of `resource` as a quantity string.
pub fn format(resource: &str, amount: i64) -> String {
    quantity::format_milli(amount, is_bytes(resource))
}

fn listing(u: &[(String, i64)]) -> String {
    u.iter().map(|(k, v)| format!("{k}={}", format(k, *v))).collect::<Vec<_>>().join(",")
}

/// `quota`'s status.used after charging `charge`, or why the charge does not fit.
/// `charge` is already restricted to what the quota governs.
pub fn charge(
    quota: &Value,
    kind: &ResourceKind,
    obj: &Value,
    charge: &Usage,
    what: &str,
) -> Result<Option<Value>, ApiError> {
    let name = quota["metadata"]["name"].as_str().unwrap_or("");
    let (hard, used) = hard_and_used(quota);
    let tracked: Vec<&String> = charge.keys().filter(|r| hard.contains_key(*r)).collect();
    if tracked.is_empty() {
        return Ok(None);
    }
    if kind.group.is_empty() && kind.plural == "pods" {
        let required: Vec<&str> =
            COMPUTE.iter().copied().filter(|r| hard.contains_key(*r)).collect();
        let missing = missing_resources(&obj["spec"], &required);
        if !missing.is_empty() {
            return Err(ApiError::forbidden(format!(
                "{what} is forbidden: failed quota: {name}: must specify {missing}"
            )));
        }
    }
    let Some(mut used) = used.filter(|u| tracked.iter().all(|r| u.contains_key(*r))) else {
        let names: Vec<&str> = tracked.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::forbidden(format!(
            "{what} is forbidden: status unknown for quota: {name}, resources: {}",
            names.join(",")
        )));
    };
    let mut over = Vec::new();
    for r in &tracked {
        let (want, now, limit) = (charge[*r], used[*r], hard[*r]);
        if want > 0 && now + want > limit {
            over.push(((*r).clone(), want, now, limit));
        }
    }
    if !over.is_empty() {
        let pick = |f: fn(&(String, i64, i64, i64)) -> i64| -> Vec<(String, i64)> {
            over.iter().map(|o| (o.0.clone(), f(o))).collect()
        };
        return Err(ApiError::forbidden(format!(
            "{what} is forbidden: exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            listing(&pick(|o| o.1)),
            listing(&pick(|o| o.2)),
            listing(&pick(|o| o.3)),
        )));
    }
    for r in tracked {
        *used.entry(r.clone()).or_default() += charge[r];
    }
    Ok(Some(used_value(&used)))
}

/// A usage as a `status.used` map.
pub fn used_value(used: &Usage) -> Value {
    used.iter().map(|(k, v)| (k.clone(), Value::String(format(k, *v)))).collect()
}

/// The compute resources some container leaves unstated, as "limits.cpu for: c1; ...".
fn missing_resources(spec: &Value, required: &[&str]) -> String {
    let mut missing: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in ["containers", "initContainers"].iter().flat_map(|f| spec[*f].as_array()).flatten() {
        for r in required {
            let (which, res) = match r.split_once('.') {
                Some((w, res)) => (w, res),
                None => ("requests", *r),
            };
            if c["resources"][which][res].is_null() {
                missing.entry(r).or_default().push(c["name"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    missing
        .into_iter()
        .map(|(r, cs)| format!("{r} for: {}", cs.join(",")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The causes of an invalid quota: every hard limit a non-negative quantity, known scopes.
pub fn validate(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (k, v) in obj["spec"]["hard"].as_object().into_iter().flatten() {
        let path = format!("spec.hard[{k}]");
        match v.as_str().and_then(quantity::parse).or_else(|| v.as_f64()) {
            None => causes.push(Cause::invalid(
                &path,
                format!("Invalid value: {v}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
            )),
            Some(n) if n < 0.0 => causes.push(Cause::invalid(
                &path,
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            )),
            Some(_) => {}
        }
        let qualified = k.contains('/') || k.contains('.');
        if !qualified && !counted_names().contains(&k.as_str()) {
            causes.push(Cause::invalid(
                &format!("spec.hard[{k}]"),
                format!("Invalid value: \"{k}\": must be a standard resource for quota"),
            ));
        }
    }
    for s in obj["spec"]["scopes"].as_array().into_iter().flatten() {
        if !s.as_str().is_some_and(|s| SCOPES.contains(&s)) {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.scopes".into(),
                message: format!("Unsupported value: {s}: supported values: {SCOPES:?}"),
            });
        }
    }
    // Scopes are about pods: a scoped quota may only limit what pods use.
    let scopes = &obj["spec"]["scopes"];
    let pod_resource = |k: &str| {
        matches!(k, "pods" | "count/pods" | "cpu" | "memory" | "ephemeral-storage")
            || k.starts_with("requests.")
            || k.starts_with("limits.")
    };
    let scoped = scopes.as_array().is_some_and(|a| !a.is_empty());
    if scoped
        && obj["spec"]["hard"].as_object().into_iter().flatten().any(|(k, _)| !pod_resource(k))
    {
        causes.push(Cause::invalid(
            "spec.scopes",
            format!("Invalid value: {scopes}: unsupported scope applied to resource"),
        ));
    }
    if !obj["spec"]["scopeSelector"].is_null() {
        causes.push(Cause::invalid(
            "spec.scopeSelector",
            "Invalid value: scope selectors are not supported by this server",
        ));
    }
    causes
}

/// Unqualified names a quota may limit.
fn counted_names() -> [&'static str; 9] {
    [
        "pods",
        "services",
        "configmaps",
        "secrets",
        "persistentvolumeclaims",
        "replicationcontrollers",
        "resourcequotas",
        "cpu",
        "memory",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources;
    use serde_json::json;

    fn pods() -> &'static ResourceKind {
        resources::find("", "v1", "pods").unwrap()
    }

    fn pod(cpu: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": cpu}}}]}})
    }

    #[test]
    fn pods_use_their_containers_requests() {
        let u = usage_of(pods(), &pod("250m"));
        assert_eq!(u["pods"], 1000);
        assert_eq!(u["count/pods"], 1000);
        assert_eq!(u["requests.cpu"], 500);
        assert_eq!(format("requests.memory", u["requests.memory"]), "64Mi");
        assert_eq!(format("requests.cpu", u["requests.cpu"]), "500m");
    }

    #[test]
    fn charges_fit_or_say_why_not() {
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "2", "requests.cpu": "1"}, "used": {"pods": "1", "requests.cpu": "500m"}}});
        let p = pod("250m");
        let used =
            charge(&quota, pods(), &p, &usage_of(pods(), &p), "pods \"p\"").unwrap().unwrap();
        assert_eq!(used, json!({"pods": "2", "requests.cpu": "1"}));
        let big = pod("300m");
        let e = charge(&quota, pods(), &big, &usage_of(pods(), &big), "pods \"p\"").unwrap_err();
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
        let bare = json!({"spec": {"containers": [{"name": "c"}]}});
        let e = charge(&quota, pods(), &bare, &usage_of(pods(), &bare), "pods \"p\"").unwrap_err();
        assert!(
            e.message.ends_with("failed quota: q: must specify requests.cpu for: c"),
            "{}",
            e.message
        );
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}});
        assert!(charge(&fresh, pods(), &p, &usage_of(pods(), &p), "x").is_ok_and(|c| c.is_none()));
    }

    #[test]
    fn quota_validation() {
        assert!(
            validate(&json!({"spec": {"hard": {"pods": "2", "count/deployments.apps": "1"}}}))
                .is_empty()
        );
        assert_eq!(validate(&json!({"spec": {"hard": {"pods": "many"}}})).len(), 1);
        assert_eq!(validate(&json!({"spec": {"hard": {"pods": "-1"}}})).len(), 1);
        assert_eq!(validate(&json!({"spec": {"hard": {"widgets": "1"}}})).len(), 1);
        let scoped =
            json!({"spec": {"hard": {"pods": "1", "configmaps": "1"}, "scopes": ["BestEffort"]}});
        assert_eq!(validate(&scoped)[0].field, "spec.scopes");
    }
}
