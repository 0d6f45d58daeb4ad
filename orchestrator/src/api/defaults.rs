//! Defaulting: the values Kubernetes fills in when a field is left out. Applied on every write,
//! so it must be idempotent.

use serde_json::{Value, json};

use super::resources::ResourceKind;

/// Sets `obj[key]` to `value` when absent or null.
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        let slot = m.entry(key.to_owned()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Makes `obj[key]` an object (creating it) and returns it.
fn object<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    default(obj, key, json!({}));
    &mut obj[key]
}

pub fn apply(kind: &ResourceKind, obj: &mut Value) {
    if let Some(custom) = kind.custom {
        super::custom::structural::apply_defaults(&custom.schema, obj);
        return;
    }
    match (kind.group, kind.kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let kind_name = obj["spec"]["names"]["kind"].as_str().unwrap_or("").to_owned();
            let names = object(object(obj, "spec"), "names");
            if !kind_name.is_empty() {
                default(names, "singular", json!(kind_name.to_lowercase()));
                default(names, "listKind", json!(format!("{kind_name}List")));
            }
            default(object(object(obj, "spec"), "conversion"), "strategy", json!("None"));
        }
        ("", "Pod") => {
            pod_spec(object(obj, "spec"));
            requests_from_limits(object(obj, "spec"));
            default_tolerations(object(obj, "spec"));
            let status = object(obj, "status");
            default(status, "phase", json!("Pending"));
        }
        ("", "Secret") => {
            // stringData is write-only: merged into data (winning over it), never stored.
            if let Some(Value::Object(strings)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine;
                let data = object(obj, "data");
                for (k, v) in strings {
                    let text = v.as_str().unwrap_or_default();
                    data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                }
            }
            default(obj, "type", json!("Opaque"));
        }
        ("", "LimitRange") => super::limit_range::defaults(obj),
        ("", "Namespace") => {
            let name = obj["metadata"]["name"].clone();
            let labels = object(object(obj, "metadata"), "labels");
            labels["kubernetes.io/metadata.name"] = name;
            default(object(obj, "spec"), "finalizers", json!(["kubernetes"]));
            default(object(obj, "status"), "phase", json!("Active"));
        }
        ("", "Service") => {
            let spec = object(obj, "spec");
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    default(p, "targetPort", port);
                    // 0 means "none" (protobuf clients send it for unset ports).
                    if p["nodePort"] == 0
                        && let Some(m) = p.as_object_mut()
                    {
                        m.remove("nodePort");
                    }
                }
            }
            default(object(obj, "status"), "loadBalancer", json!({}));
        }
        ("", "PersistentVolume") => {
            let spec = object(obj, "spec");
            default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default(spec, "volumeMode", json!("Filesystem"));
            default(object(obj, "status"), "phase", json!("Pending"));
        }
        ("", "PersistentVolumeClaim") => {
            default(object(obj, "spec"), "volumeMode", json!("Filesystem"));
            default(object(obj, "status"), "phase", json!("Pending"));
        }
        ("", "Node") => {
            default(object(obj, "status"), "phase", json!("Running"));
        }
        ("apps", "Deployment") => {
            let spec = object(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = object(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = object(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
            template(spec);
        }
        ("", "ReplicationController") => {
            // The template's labels are the selector's and the controller's own when those
            // are left out (core/v1 defaulting).
            let labels = obj["spec"]["template"]["metadata"]["labels"].clone();
            if labels.as_object().is_some_and(|l| !l.is_empty()) {
                let none = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
                if none(&obj["spec"]["selector"]) {
                    object(obj, "spec")["selector"] = labels.clone();
                }
                if none(&obj["metadata"]["labels"]) {
                    object(obj, "metadata")["labels"] = labels;
                }
            }
            let spec = object(obj, "spec");
            default(spec, "replicas", json!(1));
            if spec.get("template").is_some_and(Value::is_object) {
                template(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            let spec = object(obj, "spec");
            default(spec, "replicas", json!(1));
            template(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = object(obj, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = object(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = object(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
            template(spec);
        }
        ("apps", "StatefulSet") => {
            let spec = object(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = object(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                default(object(strategy, "rollingUpdate"), "partition", json!(0));
            }
            let retention = object(spec, "persistentVolumeClaimRetentionPolicy");
            default(retention, "whenDeleted", json!("Retain"));
            default(retention, "whenScaled", json!("Retain"));
            if let Some(claims) = spec.get_mut("volumeClaimTemplates").and_then(Value::as_array_mut)
            {
                for c in claims {
                    default(object(c, "spec"), "volumeMode", json!("Filesystem"));
                    default(object(c, "status"), "phase", json!("Pending"));
                }
            }
            template(spec);
        }
        ("batch", "Job") => {
            let spec = object(obj, "spec");
            default(spec, "parallelism", json!(1));
            default(spec, "completions", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "manualSelector", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            template(spec);
            job_selector(obj);
        }
        ("batch", "CronJob") => {
            let spec = object(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            let job = object(object(spec, "jobTemplate"), "spec");
            default(job, "backoffLimit", json!(6));
            default(job, "completionMode", json!("NonIndexed"));
            default(job, "suspend", json!(false));
            default(job, "podReplacementPolicy", json!("TerminatingOrFailed"));
            template(job);
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            default(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let spec = object(obj, "spec");
            default(spec, "minReplicas", json!(1));
            default(
                spec,
                "metrics",
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
        _ => {}
    }
}

/// Like the DefaultTolerationSeconds admission plugin: pods stay 300 s on a node that became
/// not-ready or unreachable before they are evicted, unless they say otherwise.
fn default_tolerations(spec: &mut Value) {
    default(spec, "tolerations", json!([]));
    let Some(list) = spec["tolerations"].as_array_mut() else { return };
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let covered = list.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or("");
            let effect = t["effect"].as_str().unwrap_or("");
            (k == key || (k.is_empty() && t["operator"] == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// A Job without a manual selector selects its pods by its own uid, as Kubernetes does.
fn job_selector(obj: &mut Value) {
    let uid = obj["metadata"]["uid"].clone();
    let name = obj["metadata"]["name"].clone();
    let spec = object(obj, "spec");
    if spec["manualSelector"] == json!(true) || !spec["selector"].is_null() || uid.is_null() {
        return;
    }
    spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let labels = object(object(object(spec, "template"), "metadata"), "labels");
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        default(labels, k, v.clone());
    }
}

fn template(spec: &mut Value) {
    let t = object(spec, "template");
    object(t, "metadata");
    pod_spec(object(t, "spec"));
}

fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

/// A pod's container that states a limit but no request for a resource requests its limit.
fn requests_from_limits(spec: &mut Value) {
    for list in ["containers", "initContainers"] {
        for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else { continue };
            let requests = object(object(c, "resources"), "requests");
            for (k, v) in limits {
                default(requests, &k, v);
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    let tag = image.rsplit('/').next().unwrap_or("");
    let pinned = image.contains('@') || tag.split_once(':').is_some_and(|(_, t)| t != "latest");
    default(c, "imagePullPolicy", json!(if pinned { "IfNotPresent" } else { "Always" }));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    #[test]
    fn deployment_defaults_are_idempotent() {
        let d = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}});
        apply(d, &mut obj);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let once = obj.clone();
        apply(d, &mut obj);
        assert_eq!(obj, once);
    }

    #[test]
    fn a_replication_controller_takes_its_selector_and_labels_from_the_template() {
        let rc = find("", "v1", "replicationcontrollers").unwrap();
        let template = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}});
        let mut obj = json!({"metadata": {"name": "x"}, "spec": {"template": template}});
        apply(rc, &mut obj);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["template"]["spec"]["restartPolicy"], "Always");
        // What the user gave stays; no template, nothing made up.
        let mut given = json!({"metadata": {"name": "x", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web", "tier": "x"}, "template": template}});
        apply(rc, &mut given);
        assert_eq!(given["spec"]["selector"], json!({"app": "web", "tier": "x"}));
        assert_eq!(given["metadata"]["labels"], json!({"team": "a"}));
        let mut bare = json!({"metadata": {"name": "x"}, "spec": {}});
        apply(rc, &mut bare);
        assert!(bare["spec"].get("template").is_none() && bare["spec"].get("selector").is_none());
    }
}
