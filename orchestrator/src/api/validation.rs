//! Validation of names, labels and the required fields of each kind. Errors are collected as
//! causes so one 422 answer lists every problem.

use serde_json::Value;

use super::error::Cause;
use super::resources::ResourceKind;
use super::selector::LabelSelector;

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: lowercase alphanumerics and '-', at most 63, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum(c) || c == '-')
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
}

/// RFC 1123 subdomain: dot-separated labels, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_name_part(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| ok(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(ok)
        && s.ends_with(ok)
}

/// A label or annotation key: optional DNS-subdomain prefix and '/', then a name.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

/// Kinds whose names must be DNS labels rather than subdomains.
fn wants_dns_label(kind: &ResourceKind) -> bool {
    matches!((kind.group, kind.kind), ("", "Namespace") | ("", "Service"))
}

/// RBAC names are path segments: anything without '/' or '%' and not "." or "..".
fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
}

pub fn name_ok(kind: &ResourceKind, name: &str) -> bool {
    if kind.group == "rbac.authorization.k8s.io" || kind.kind == "Node" {
        is_path_segment(name)
    } else if wants_dns_label(kind) {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    }
}

/// Validates an object about to be stored.
pub fn validate(kind: &ResourceKind, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = &obj["metadata"];
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => causes.push(Cause::required("metadata.name")),
        Some(n) if !name_ok(kind, n) => causes.push(Cause::invalid(
            "metadata.name",
            format!(
                "Invalid value: \"{n}\": a lowercase RFC 1123 {} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                if wants_dns_label(kind) { "label" } else { "subdomain" }
            ),
        )),
        _ => {}
    }
    validate_map(meta, "labels", &mut causes, true);
    validate_map(meta, "annotations", &mut causes, false);
    let annotations_size: usize = meta
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum())
        .unwrap_or(0);
    if annotations_size > 256 * 1024 {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: "metadata.annotations".into(),
            message: "Too long: must have at most 262144 bytes".into(),
        });
    }
    if let Some(custom) = kind.custom {
        causes.extend(super::custom::structural::validate(&custom.schema, obj));
    }
    match (kind.group, kind.kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            causes.extend(super::custom::definition::validate(obj))
        }
        ("", "Pod") => pod_spec(&obj["spec"], "spec", &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") | ("", "ReplicationController") => {
            workload(kind, obj, &mut causes)
        }
        ("apps", "StatefulSet") => {
            workload(kind, obj, &mut causes);
            super::stateful_sets::validate(&obj["spec"], &mut causes);
        }
        ("apps", "ControllerRevision") => match obj.get("revision").and_then(Value::as_i64) {
            Some(r) if r >= 0 => {}
            Some(r) => causes.push(Cause::invalid(
                "revision",
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            )),
            None => causes.push(Cause::required("revision")),
        },
        ("batch", "Job") => {
            pod_spec(&obj["spec"]["template"]["spec"], "spec.template.spec", &mut causes);
            let rp = obj["spec"]["template"]["spec"]["restartPolicy"].as_str().unwrap_or("");
            if !matches!(rp, "Never" | "OnFailure") {
                causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: "spec.template.spec.restartPolicy".into(),
                    message: format!(
                        "Unsupported value: \"{rp}\": supported values: \"OnFailure\", \"Never\""
                    ),
                });
            }
        }
        ("batch", "CronJob") => {
            let schedule = obj["spec"]["schedule"].as_str().unwrap_or("");
            if schedule.is_empty() {
                causes.push(Cause::required("spec.schedule"));
            } else if let Err(e) = super::cron::Schedule::parse(schedule) {
                causes.push(Cause::invalid(
                    "spec.schedule",
                    format!("Invalid value: \"{schedule}\": {e}"),
                ));
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let spec = &obj["spec"];
            let max = spec["maxReplicas"].as_i64();
            let min = spec["minReplicas"].as_i64().unwrap_or(1);
            match max {
                None => causes.push(Cause::required("spec.maxReplicas")),
                Some(m) if m < 1 => causes.push(Cause::invalid(
                    "spec.maxReplicas",
                    format!("Invalid value: {m}: must be greater than or equal to 1"),
                )),
                Some(m) if min > m => causes.push(Cause::invalid(
                    "spec.minReplicas",
                    format!("Invalid value: {min}: must be less than or equal to maxReplicas"),
                )),
                _ => {}
            }
            if min < 1 {
                causes.push(Cause::invalid(
                    "spec.minReplicas",
                    format!("Invalid value: {min}: must be greater than or equal to 1"),
                ));
            }
        }
        ("", "Service") => service(obj, &mut causes),
        ("policy", "PodDisruptionBudget") => causes.extend(super::disruption_budget::validate(obj)),
        ("", "ResourceQuota") => causes.extend(super::quota::validate(obj)),
        ("", "LimitRange") => causes.extend(super::limit_range::validate(obj)),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            super::certificate_requests::validate(obj, &mut causes)
        }
        ("", "ConfigMap" | "Secret") => {
            for field in ["data", "binaryData", "stringData"] {
                for key in
                    obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.keys())
                {
                    let ok = !key.is_empty()
                        && key.len() <= 253
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if !ok {
                        causes.push(Cause::invalid(
                            &format!("{field}[{key}]"),
                            format!("Invalid value: \"{key}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
                        ));
                    }
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if obj["roleRef"]["name"].as_str().unwrap_or("").is_empty() {
                causes.push(Cause::required("roleRef.name"));
            }
            if !matches!(obj["roleRef"]["kind"].as_str(), Some("Role" | "ClusterRole")) {
                causes.push(Cause::invalid(
                    "roleRef.kind",
                    "Unsupported value: must be Role or ClusterRole",
                ));
            }
        }
        _ => {}
    }
    causes
}

/// Fields an update may not change, as Kubernetes refuses them: a workload's selector, a
/// Job's selector and pod template, a binding's roleRef, a claim's spec (but its requests,
/// and the volume it is bound to once). `old` and `new` are both defaulted.
pub fn immutable(kind: &ResourceKind, old: &Value, new: &Value) -> Vec<Cause> {
    let fields: &[&str] = match (kind.group, kind.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => &["spec.selector"],
        ("apps", "StatefulSet") => {
            return super::stateful_sets::update(old, new).into_iter().collect();
        }
        ("apps", "ControllerRevision") => &["data"],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &["spec.group", "spec.scope"],
        ("batch", "Job") => &["spec.selector", "spec.template"],
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &["roleRef"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec"],
        ("", "PersistentVolumeClaim") => &["spec"],
        _ => &[],
    };
    let at = |v: &Value, path: &str| {
        let mut v =
            path.split('.').fold(v.clone(), |v, k| v.get(k).cloned().unwrap_or(Value::Null));
        if kind.kind == "PersistentVolumeClaim"
            && let Some(spec) = v.as_object_mut()
        {
            // Requests may grow (expansion); the volume is set once, by the binder.
            spec.remove("resources");
            spec.remove("volumeAttributesClassName");
            if old["spec"]["volumeName"].as_str().unwrap_or("").is_empty() {
                spec.remove("volumeName");
            }
        }
        v
    };
    fields
        .iter()
        .filter(|f| at(old, f) != at(new, f))
        .map(|f| Cause::invalid(f, "Invalid value: field is immutable"))
        .collect()
}

fn validate_map(meta: &Value, field: &str, causes: &mut Vec<Cause>, values_are_labels: bool) {
    let Some(m) = meta.get(field).and_then(Value::as_object) else { return };
    for (k, v) in m {
        if !is_qualified_name(k) {
            causes.push(Cause::invalid(
                &format!("metadata.{field}"),
                format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        if values_are_labels && !v.as_str().is_some_and(is_label_value) {
            causes.push(Cause::invalid(
                &format!("metadata.{field}"),
                format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
    }
}

fn pod_spec(spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(Cause::required(&format!("{at}.containers")));
    }
    let mut seen = Vec::new();
    let init = spec.get("initContainers").and_then(Value::as_array);
    for (list, items) in [("containers", containers), ("initContainers", init)] {
        for (i, c) in items.into_iter().flatten().enumerate() {
            let path = format!("{at}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(&format!("{path}.name"))),
                Some(n) if !is_dns_label(n) => causes.push(Cause::invalid(&format!("{path}.name"), format!("Invalid value: \"{n}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"))),
                Some(n) if seen.contains(&n) => causes.push(Cause { reason: "FieldValueDuplicate", field: format!("{path}.name"), message: format!("Duplicate value: \"{n}\"") }),
                Some(n) => seen.push(n),
            }
            if c.get("image").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                causes.push(Cause::required(&format!("{path}.image")));
            }
            for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(p) = c.get(kind).filter(|p| !p.is_null()) {
                    probe(p, &format!("{path}.{kind}"), kind != "readinessProbe", causes);
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        causes.push(Cause { reason: "FieldValueNotSupported", field: format!("{at}.restartPolicy"), message: format!("Unsupported value: \"{rp}\": supported values: \"Always\", \"OnFailure\", \"Never\"") });
    }
}

/// A container probe: exactly one handler, sane numbers, ports in range.
fn probe(p: &Value, at: &str, single_success: bool, causes: &mut Vec<Cause>) {
    let handlers: Vec<&str> = ["exec", "httpGet", "tcpSocket", "grpc"]
        .into_iter()
        .filter(|h| p.get(*h).is_some_and(|v| !v.is_null()))
        .collect();
    match handlers.len() {
        0 => causes.push(Cause {
            reason: "FieldValueRequired",
            field: at.into(),
            message: "Required value: must specify a handler type".into(),
        }),
        1 => {}
        _ => causes.push(Cause {
            reason: "FieldValueForbidden",
            field: format!("{at}.{}", handlers[1]),
            message: "Forbidden: may not specify more than 1 handler type".into(),
        }),
    }
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(v) = p.get(f).filter(|v| !v.is_null())
            && v.as_i64().is_none_or(|n| n < 0)
        {
            causes.push(Cause::invalid(
                &format!("{at}.{f}"),
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
        }
    }
    if single_success && p.get("successThreshold").and_then(Value::as_i64).is_some_and(|n| n != 1) {
        causes.push(Cause::invalid(
            &format!("{at}.successThreshold"),
            "Invalid value: must be 1".to_string(),
        ));
    }
    let ports = [p.pointer("/httpGet/port"), p.pointer("/tcpSocket/port"), p.pointer("/grpc/port")];
    for (port, handler) in ports.into_iter().zip(["httpGet", "tcpSocket", "grpc"]) {
        match port {
            Some(Value::Number(n)) if n.as_u64().is_none_or(|n| !(1..=65535).contains(&n)) => {
                causes.push(Cause::invalid(
                    &format!("{at}.{handler}.port"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                ))
            }
            Some(Value::Null) | None if handler != "grpc" && handlers.contains(&handler) => {
                causes.push(Cause::required(&format!("{at}.{handler}.port")))
            }
            _ => {}
        }
    }
    if p.get("exec").is_some_and(|e| !e.is_null())
        && p.pointer("/exec/command").and_then(Value::as_array).is_none_or(|c| c.is_empty())
    {
        causes.push(Cause::required(&format!("{at}.exec.command")));
    }
}

fn workload(kind: &ResourceKind, obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    if let Some(r) = spec.get("replicas").and_then(Value::as_i64)
        && r < 0
    {
        causes.push(Cause::invalid(
            "spec.replicas",
            format!("Invalid value: {r}: must be greater than or equal to 0"),
        ));
    }
    let template_labels = spec["template"]["metadata"]["labels"].as_object();
    let rc = (kind.group, kind.kind) == ("", "ReplicationController");
    if rc && spec.get("template").is_none_or(Value::is_null) {
        causes.push(Cause::required("spec.template"));
        return;
    }
    // A ReplicationController's selector is a map of labels; empty is as good as absent.
    let empty_map = |s: &&Value| rc && s.as_object().is_some_and(|m| m.is_empty());
    match spec.get("selector").filter(|s| !s.is_null()).filter(|s| !empty_map(s)) {
        None => causes.push(Cause::required("spec.selector")),
        Some(sel) => match LabelSelector::of_workload(kind, sel) {
            Err(e) => causes.push(Cause::invalid("spec.selector", e)),
            Ok(s) if s.is_empty() => causes.push(Cause::invalid(
                "spec.selector",
                format!(
                    "Invalid value: {sel}: empty selector is invalid for {}",
                    kind.kind.to_lowercase()
                ),
            )),
            Ok(s) => {
                let labels = template_labels
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                if !s.matches(&labels) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            Value::Object(template_labels.cloned().unwrap_or_default())
                        ),
                    ));
                }
            }
        },
    }
    pod_spec(&spec["template"]["spec"], "spec.template.spec", causes);
    if kind.kind != "ReplicaSet" {
        let rp = spec["template"]["spec"]["restartPolicy"].as_str().unwrap_or("Always");
        if rp != "Always" {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: "spec.template.spec.restartPolicy".into(),
                message: format!("Unsupported value: \"{rp}\": supported values: \"Always\""),
            });
        }
    }
}

fn service(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.type".into(),
            message: format!("Unsupported value: \"{ty}\""),
        });
    }
    let ports = spec.get("ports").and_then(Value::as_array);
    let headless = spec["clusterIP"].as_str() == Some("None");
    if ty != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
        causes.push(Cause::required("spec.ports"));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        match p.get("port").and_then(Value::as_i64) {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => causes.push(Cause::invalid(
                &format!("spec.ports[{i}].port"),
                format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
            )),
            None => causes.push(Cause::required(&format!("spec.ports[{i}].port"))),
        }
        if ports.is_some_and(|ps| ps.len() > 1)
            && p.get("name").and_then(Value::as_str).is_none_or(str::is_empty)
        {
            causes.push(Cause::required(&format!("spec.ports[{i}].name")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    #[test]
    fn names_and_labels() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("a.b-c"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }

    #[test]
    fn deployments_need_a_matching_selector() {
        let d = find("apps", "v1", "deployments").unwrap();
        let obj = serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "other"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
        });
        let causes = validate(d, &obj);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn selectors_templates_role_refs_and_claims_are_immutable() {
        let job = find("batch", "v1", "jobs").unwrap();
        let j = |image: &str| serde_json::json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}, "parallelism": 1}});
        assert!(immutable(job, &j("x"), &j("x")).is_empty());
        let mut more = j("x");
        more["spec"]["parallelism"] = 3.into();
        assert!(immutable(job, &j("x"), &more).is_empty(), "parallelism may change");
        let fields: Vec<String> =
            immutable(job, &j("x"), &j("y")).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.template"]);
        let rb = find("rbac.authorization.k8s.io", "v1", "rolebindings").unwrap();
        let r = |role: &str| serde_json::json!({"roleRef": {"kind": "Role", "name": role}});
        assert_eq!(immutable(rb, &r("a"), &r("b")).len(), 1);
        let pvc = find("", "v1", "persistentvolumeclaims").unwrap();
        let c = |size: &str, volume: Option<&str>, mode: &str| serde_json::json!({"spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}, "volumeName": volume}});
        assert!(
            immutable(
                pvc,
                &c("1Gi", None, "ReadWriteOnce"),
                &c("2Gi", Some("pv1"), "ReadWriteOnce")
            )
            .is_empty(),
            "bound once, grown"
        );
        assert_eq!(
            immutable(
                pvc,
                &c("1Gi", Some("pv1"), "ReadWriteOnce"),
                &c("1Gi", Some("pv2"), "ReadWriteOnce")
            )
            .len(),
            1
        );
        assert_eq!(
            immutable(pvc, &c("1Gi", None, "ReadWriteOnce"), &c("1Gi", None, "ReadWriteMany"))
                .len(),
            1
        );
    }

    #[test]
    fn cron_schedules_and_autoscaler_bounds_are_checked() {
        let cj = find("batch", "v1", "cronjobs").unwrap();
        let cron = |schedule: &str| {
            let obj =
                serde_json::json!({"metadata": {"name": "c"}, "spec": {"schedule": schedule}});
            validate(cj, &obj).into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        assert!(cron("*/5 * * * *").is_empty());
        assert!(cron("@daily").is_empty());
        assert_eq!(cron("61 * * * *"), ["spec.schedule"]);
        assert_eq!(cron("every minute"), ["spec.schedule"]);
        assert_eq!(cron(""), ["spec.schedule"]);
        let hpa = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        let bounds = |spec: serde_json::Value| {
            let obj = serde_json::json!({"metadata": {"name": "h"}, "spec": spec});
            validate(hpa, &obj).into_iter().map(|c| c.field).collect::<Vec<_>>()
        };
        assert!(bounds(serde_json::json!({"minReplicas": 2, "maxReplicas": 5})).is_empty());
        assert!(bounds(serde_json::json!({"maxReplicas": 1})).is_empty());
        assert_eq!(
            bounds(serde_json::json!({"minReplicas": 6, "maxReplicas": 5})),
            ["spec.minReplicas"]
        );
        assert_eq!(
            bounds(serde_json::json!({"minReplicas": 0, "maxReplicas": 5})),
            ["spec.minReplicas"]
        );
        assert_eq!(bounds(serde_json::json!({"minReplicas": 1})), ["spec.maxReplicas"]);
    }
}
