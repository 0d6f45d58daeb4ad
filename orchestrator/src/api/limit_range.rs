//! LimitRanges (core/v1): the defaults a namespace gives containers that state no requests or
//! limits, and the bounds (min, max, maxLimitRequestRatio) a new pod's containers and the pod
//! as a whole must keep. Admission applies both; this module is the arithmetic.

use serde_json::{Map, Value};

use super::error::Cause;
use crate::kube::quantity;

const TYPES: [&str; 3] = ["Container", "Pod", "PersistentVolumeClaim"];

fn entries(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A LimitRange's own defaults, as Kubernetes fills them for Container items: a default limit
/// from the max, a default request from the default limit, or else from the min.
pub fn defaults(obj: &mut Value) {
    for item in obj["spec"]["limits"].as_array_mut().into_iter().flatten() {
        if item["type"] != "Container" {
            continue;
        }
        let (max, min) = (entries(&item["max"]), entries(&item["min"]));
        let mut default = entries(&item["default"]);
        for (k, v) in max {
            default.entry(k).or_insert(v);
        }
        let mut request = entries(&item["defaultRequest"]);
        for (k, v) in default.iter().map(|(k, v)| (k.clone(), v.clone())).chain(min) {
            request.entry(k).or_insert(v);
        }
        if !default.is_empty() {
            item["default"] = Value::Object(default);
        }
        if !request.is_empty() {
            item["defaultRequest"] = Value::Object(request);
        }
    }
}

fn milli(v: &Value) -> Option<i64> {
    v.as_str().and_then(quantity::milli)
}

/// The causes of an invalid LimitRange.
pub fn validate(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, item) in obj["spec"]["limits"].as_array().into_iter().flatten().enumerate() {
        let at = format!("spec.limits[{i}]");
        let ty = item["type"].as_str().unwrap_or("");
        if !TYPES.contains(&ty) {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: format!("{at}.type"),
                message: format!(
                    "Unsupported value: \"{ty}\": supported values: \"Container\", \"Pod\", \"PersistentVolumeClaim\""
                ),
            });
        }
        for field in ["min", "max", "default", "defaultRequest", "maxLimitRequestRatio"] {
            for (k, v) in entries(&item[field]) {
                if milli(&v).is_none_or(|n| n < 0) {
                    causes.push(Cause::invalid(
                        &format!("{at}.{field}[{k}]"),
                        format!("Invalid value: {v}: must be a non-negative quantity"),
                    ));
                }
            }
        }
        let (min, max) = (entries(&item["min"]), entries(&item["max"]));
        for (k, lo) in &min {
            if let (Some(l), Some(h)) = (milli(lo), max.get(k).and_then(milli))
                && l > h
            {
                causes.push(Cause::invalid(
                    &format!("{at}.min[{k}]"),
                    format!(
                        "Invalid value: {lo}: min value {} is greater than max value {}",
                        s(lo),
                        s(&max[k])
                    ),
                ));
            }
        }
        for (k, r) in entries(&item["maxLimitRequestRatio"]) {
            if milli(&r).is_some_and(|n| n < 1000) {
                causes.push(Cause::invalid(
                    &format!("{at}.maxLimitRequestRatio[{k}]"),
                    format!("Invalid value: {r}: ratio {} is less than 1", s(&r)),
                ));
            }
        }
    }
    causes
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// Fills the requests and limits `ranges` default for containers that state none.
pub fn apply_defaults(pod: &mut Value, ranges: &[Value]) {
    let items: Vec<&Value> = ranges
        .iter()
        .flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten())
        .filter(|i| i["type"] == "Container")
        .collect();
    let lists = ["containers", "initContainers"];
    let spec = pod.get_mut("spec");
    let Some(spec) = spec.and_then(Value::as_object_mut) else { return };
    let containers = spec
        .iter_mut()
        .filter(|(k, _)| lists.contains(&k.as_str()))
        .flat_map(|(_, v)| v.as_array_mut().into_iter().flatten());
    for c in containers {
        for item in &items {
            for (which, from) in [("limits", "default"), ("requests", "defaultRequest")] {
                for (k, v) in entries(&item[from]) {
                    let res = &mut c["resources"];
                    if !res.is_object() {
                        *res = Value::Object(Map::new());
                    }
                    if !res[which].is_object() {
                        res[which] = Value::Object(Map::new());
                    }
                    if res[which][&k].is_null() {
                        res[which][&k] = v;
                    }
                }
            }
        }
    }
}

/// One container's (or the pod's summed) requests and limits.
struct Amounts {
    requests: Map<String, Value>,
    limits: Map<String, Value>,
}

fn check(scope: &str, a: &Amounts, item: &Value, errors: &mut Vec<String>) {
    let amount = |m: &Map<String, Value>, k: &str| m.get(k).and_then(milli);
    for (k, min) in entries(&item["min"]) {
        let lo = milli(&min).unwrap_or(0);
        match amount(&a.requests, &k) {
            None => errors.push(format!(
                "minimum {k} usage per {scope} is {}.  No request is specified",
                s(&min)
            )),
            Some(r) if r < lo => errors.push(format!(
                "minimum {k} usage per {scope} is {}, but request is {}",
                s(&min),
                s(&a.requests[&k])
            )),
            _ => {}
        }
        if let Some(l) = amount(&a.limits, &k)
            && l < lo
        {
            errors.push(format!(
                "minimum {k} usage per {scope} is {}, but limit is {}",
                s(&min),
                s(&a.limits[&k])
            ));
        }
    }
    for (k, max) in entries(&item["max"]) {
        let hi = milli(&max).unwrap_or(0);
        match amount(&a.limits, &k) {
            None => errors.push(format!(
                "maximum {k} usage per {scope} is {}.  No limit is specified",
                s(&max)
            )),
            Some(l) if l > hi => errors.push(format!(
                "maximum {k} usage per {scope} is {}, but limit is {}",
                s(&max),
                s(&a.limits[&k])
            )),
            _ => {}
        }
        if let Some(r) = amount(&a.requests, &k)
            && r > hi
        {
            errors.push(format!(
                "maximum {k} usage per {scope} is {}, but request is {}",
                s(&max),
                s(&a.requests[&k])
            ));
        }
    }
    for (k, ratio) in entries(&item["maxLimitRequestRatio"]) {
        let (req, lim) = (amount(&a.requests, &k), amount(&a.limits, &k));
        let want = milli(&ratio).unwrap_or(0) as f64 / 1000.0;
        match (req, lim) {
            (Some(r), Some(l)) if r > 0 => {
                let got = l as f64 / r as f64;
                if got > want {
                    errors.push(format!(
                        "{k} max limit to request ratio per {scope} is {}, but provided ratio is {got:.6}",
                        s(&ratio)
                    ));
                }
            }
            (_, Some(_)) => errors.push(format!(
                "{k} max limit to request ratio per {scope} is {}, but no request is specified or request is 0",
                s(&ratio)
            )),
            _ => {}
        }
    }
}

fn amounts_of(c: &Value) -> Amounts {
    Amounts {
        requests: entries(&c["resources"]["requests"]),
        limits: entries(&c["resources"]["limits"]),
    }
}

/// A pod's summed requests and limits over its containers (a resource counts only if every
/// container states it, as Kubernetes sums them for Pod limits).
fn pod_amounts(pod: &Value) -> Amounts {
    let cs: Vec<&Value> = pod["spec"]["containers"].as_array().into_iter().flatten().collect();
    let sum = |which: &str| -> Map<String, Value> {
        let mut keys: Vec<String> = cs
            .iter()
            .flat_map(|c| entries(&c["resources"][which]).keys().cloned().collect::<Vec<_>>())
            .collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let total: Option<i64> = cs.iter().map(|c| milli(&c["resources"][which][&k])).sum();
                let bytes = k.ends_with("memory") || k.ends_with("storage");
                total.map(|t| (k, Value::String(quantity::format_milli(t, bytes))))
            })
            .collect()
    };
    Amounts { requests: sum("requests"), limits: sum("limits") }
}

/// Why a pod breaks `ranges`, if it does: Kubernetes' messages, in order.
pub fn violations(pod: &Value, ranges: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    for item in ranges.iter().flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten()) {
        match item["type"].as_str() {
            Some("Container") => {
                for list in ["containers", "initContainers"] {
                    for c in pod["spec"][list].as_array().into_iter().flatten() {
                        check("Container", &amounts_of(c), item, &mut errors);
                    }
                }
            }
            Some("Pod") => check("Pod", &pod_amounts(pod), item, &mut errors),
            _ => {}
        }
    }
    errors
}

/// Why a claim's requested storage breaks `ranges`' PersistentVolumeClaim bounds, if it does.
pub fn claim_violations(claim: &Value, ranges: &[Value]) -> Vec<String> {
    let scope = "PersistentVolumeClaim";
    let requests = entries(&claim["spec"]["resources"]["requests"]);
    let mut errors = Vec::new();
    let items = ranges.iter().flat_map(|r| r["spec"]["limits"].as_array().into_iter().flatten());
    for item in items.filter(|i| i["type"] == scope) {
        for (bound, is_min) in [("min", true), ("max", false)] {
            for (k, limit) in entries(&item[bound]) {
                let word = if is_min { "minimum" } else { "maximum" };
                match requests.get(&k).and_then(milli) {
                    None => errors.push(format!(
                        "{word} {k} usage per {scope} is {}.  No request is specified",
                        s(&limit)
                    )),
                    Some(r)
                        if (is_min && r < milli(&limit).unwrap_or(0))
                            || (!is_min && r > milli(&limit).unwrap_or(0)) =>
                    {
                        errors.push(format!(
                            "{word} {k} usage per {scope} is {}, but request is {}",
                            s(&limit),
                            s(&requests[&k])
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range(item: Value) -> Value {
        let mut r = json!({"spec": {"limits": [item]}});
        defaults(&mut r);
        r
    }

    #[test]
    fn containers_get_the_namespace_defaults() {
        let r = range(
            json!({"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"memory": "64Mi"}}),
        );
        assert_eq!(
            r["spec"]["limits"][0]["defaultRequest"],
            json!({"cpu": "500m", "memory": "64Mi"})
        );
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"limits": {"cpu": "1"}}}]}});
        apply_defaults(&mut pod, &[r]);
        assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"], "500m");
        assert_eq!(pod["spec"]["containers"][0]["resources"]["requests"]["memory"], "64Mi");
        assert_eq!(pod["spec"]["containers"][1]["resources"]["limits"]["cpu"], "1");
    }

    #[test]
    fn bounds_are_enforced_with_kubernetes_words() {
        let r = range(
            json!({"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"}, "maxLimitRequestRatio": {"cpu": "2"}}),
        );
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}}]}});
        assert_eq!(
            violations(&pod, std::slice::from_ref(&r)),
            [
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
            ]
        );
        let ok = json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}});
        assert!(violations(&ok, &[r]).is_empty());
        let claims = range(
            json!({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}),
        );
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert_eq!(
            claim_violations(&claim("5Gi"), std::slice::from_ref(&claims)),
            ["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert!(claim_violations(&claim("1Gi"), &[claims]).is_empty());
        let bad = json!({"spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}});
        assert_eq!(validate(&bad).len(), 1);
    }
}
