//! `meta.k8s.io/v1` Table output: the columns `kubectl get` shows for each kind.

use serde_json::{Value, json};

use super::custom::PrinterColumn;
use super::custom::json_path::JsonPath;
use super::resources::ResourceKind;
use super::selector::LabelSelector;

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

struct Col(&'static str, &'static str, u8);

fn columns(kind: &ResourceKind) -> Vec<Col> {
    let name = Col("Name", "string", 0);
    let age = Col("Age", "string", 0);
    let wide_images =
        [Col("Containers", "string", 1), Col("Images", "string", 1), Col("Selector", "string", 1)];
    let mut cols = match (kind.group, kind.kind) {
        ("", "Namespace") => vec![name, Col("Status", "string", 0), age],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![name, Col("Created At", "date", 0)]
        }
        ("", "Pod") => vec![
            name,
            Col("Ready", "string", 0),
            Col("Status", "string", 0),
            Col("Restarts", "string", 0),
            age,
            Col("IP", "string", 1),
            Col("Node", "string", 1),
            Col("Nominated Node", "string", 1),
            Col("Readiness Gates", "string", 1),
        ],
        ("", "Service") => vec![
            name,
            Col("Type", "string", 0),
            Col("Cluster-IP", "string", 0),
            Col("External-IP", "string", 0),
            Col("Port(s)", "string", 0),
            age,
            Col("Selector", "string", 1),
        ],
        ("", "Endpoints") => vec![name, Col("Endpoints", "string", 0), age],
        ("", "Node") => vec![
            name,
            Col("Status", "string", 0),
            Col("Roles", "string", 0),
            age,
            Col("Version", "string", 0),
            Col("Internal-IP", "string", 1),
            Col("External-IP", "string", 1),
            Col("OS-Image", "string", 1),
            Col("Kernel-Version", "string", 1),
            Col("Container-Runtime", "string", 1),
        ],
        ("", "Event") => vec![
            Col("Last Seen", "string", 0),
            Col("Type", "string", 0),
            Col("Reason", "string", 0),
            Col("Object", "string", 0),
            Col("Message", "string", 0),
        ],
        ("", "ConfigMap") => vec![name, Col("Data", "integer", 0), age],
        ("", "Secret") => vec![name, Col("Type", "string", 0), Col("Data", "integer", 0), age],
        ("", "ServiceAccount") => vec![name, Col("Secrets", "integer", 0), age],
        ("", "PersistentVolume") => vec![
            name,
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("Reclaim Policy", "string", 0),
            Col("Status", "string", 0),
            Col("Claim", "string", 0),
            Col("StorageClass", "string", 0),
            Col("Reason", "string", 0),
            age,
        ],
        ("", "PersistentVolumeClaim") => vec![
            name,
            Col("Status", "string", 0),
            Col("Volume", "string", 0),
            Col("Capacity", "string", 0),
            Col("Access Modes", "string", 0),
            Col("StorageClass", "string", 0),
            age,
        ],
        ("apps", "Deployment") => vec![
            name,
            Col("Ready", "string", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            age,
        ],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => vec![
            name,
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            age,
        ],
        ("apps", "DaemonSet") => vec![
            name,
            Col("Desired", "integer", 0),
            Col("Current", "integer", 0),
            Col("Ready", "integer", 0),
            Col("Up-to-date", "integer", 0),
            Col("Available", "integer", 0),
            Col("Node Selector", "string", 0),
            age,
        ],
        ("apps", "StatefulSet") => vec![name, Col("Ready", "string", 0), age],
        ("apps", "ControllerRevision") => {
            vec![name, Col("Controller", "string", 0), Col("Revision", "integer", 0), age]
        }
        ("batch", "Job") => vec![
            name,
            Col("Status", "string", 0),
            Col("Completions", "string", 0),
            Col("Duration", "string", 0),
            age,
        ],
        ("batch", "CronJob") => vec![
            name,
            Col("Schedule", "string", 0),
            Col("Timezone", "string", 0),
            Col("Suspend", "boolean", 0),
            Col("Active", "integer", 0),
            Col("Last Schedule", "string", 0),
            age,
        ],
        ("scheduling.k8s.io", "PriorityClass") => {
            vec![name, Col("Value", "integer", 0), Col("Global-Default", "boolean", 0), age]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => vec![
            name,
            Col("Reference", "string", 0),
            Col("Targets", "string", 0),
            Col("MinPods", "string", 0),
            Col("MaxPods", "integer", 0),
            Col("Replicas", "integer", 0),
            age,
        ],
        ("coordination.k8s.io", "Lease") => vec![name, Col("Holder", "string", 0), age],
        ("policy", "PodDisruptionBudget") => vec![
            name,
            Col("Min Available", "string", 0),
            Col("Max Unavailable", "string", 0),
            Col("Allowed Disruptions", "integer", 0),
            age,
        ],
        ("", "ResourceQuota") => {
            vec![name, age, Col("Request", "string", 0), Col("Limit", "string", 0)]
        }
        ("", "LimitRange") => vec![name, Col("Created At", "date", 0)],
        ("node.k8s.io", "RuntimeClass") => vec![name, Col("Handler", "string", 0), age],
        ("certificates.k8s.io", "CertificateSigningRequest") => vec![
            name,
            age,
            Col("SignerName", "string", 0),
            Col("Requestor", "string", 0),
            Col("Condition", "string", 0),
        ],
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            vec![name, Col("Created At", "date", 0)]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => vec![
            name,
            Col("Role", "string", 0),
            age,
            Col("Users", "string", 1),
            Col("Groups", "string", 1),
            Col("ServiceAccounts", "string", 1),
        ],
        ("discovery.k8s.io", "EndpointSlice") => vec![
            name,
            Col("AddressType", "string", 0),
            Col("Ports", "string", 0),
            Col("Endpoints", "string", 0),
            age,
        ],
        _ => vec![name, age],
    };
    match (kind.group, kind.kind) {
        ("apps", "ControllerRevision") => {}
        // Kubernetes shows no selector for StatefulSets.
        ("apps", "StatefulSet") => cols.extend(wide_images.into_iter().take(2)),
        ("apps", _) | ("batch", "Job") | ("", "ReplicationController") => cols.extend(wide_images),
        _ => {}
    }
    cols
}

/// "cpu: 90%/50%" per Resource metric, as kubectl shows HPA targets.
fn hpa_targets(spec: &Value, status: &Value) -> String {
    let current = status["currentMetrics"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = spec["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["type"] == "Resource")
        .map(|m| {
            let name = s(&m["resource"]["name"]);
            let now = current
                .iter()
                .find(|c| c["resource"]["name"] == m["resource"]["name"])
                .map(|c| &c["resource"]["current"]);
            let t = &m["resource"]["target"];
            match t["averageUtilization"].as_i64() {
                Some(want) => {
                    let have = now
                        .and_then(|c| c["averageUtilization"].as_i64())
                        .map_or("<unknown>".to_owned(), |v| format!("{v}%"));
                    format!("{name}: {have}/{want}%")
                }
                None => {
                    let have = now.map(|c| s(&c["averageValue"])).filter(|v| !v.is_empty());
                    format!(
                        "{name}: {}/{}",
                        have.unwrap_or_else(|| "<unknown>".into()),
                        s(&t["averageValue"])
                    )
                }
            }
        })
        .collect();
    if parts.is_empty() { "<unknown>".into() } else { parts.join(", ") }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn or_none(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn count(v: &Value) -> usize {
    match v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    }
}

/// Kubernetes' short human duration ("45s", "3m12s", "5h", "12d").
pub fn human_duration(secs: i64) -> String {
    if secs < 0 {
        return "0s".into();
    }
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 { format!("{m}m") } else { format!("{m}m{}s", secs % 60) }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 { format!("{h}h") } else { format!("{h}h{}m", m % 60) }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 { format!("{d}d") } else { format!("{d}d{}h", h % 24) }
    } else if d < 730 {
        format!("{d}d")
    } else if d < 2920 {
        format!("{}y{}d", d / 365, d % 365)
    } else {
        format!("{}y", d / 365)
    }
}

fn age_of(ts: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    match ts.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => human_duration((now - t.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn pod_template_cells(kind: &ResourceKind, spec: &Value) -> [String; 3] {
    let containers = spec["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = containers.iter().map(|c| s(&c["name"])).collect();
    let images: Vec<String> = containers.iter().map(|c| s(&c["image"])).collect();
    let selector = LabelSelector::of_workload(kind, &spec["selector"])
        .map(|s| s.to_string())
        .unwrap_or_default();
    [names.join(","), images.join(","), or_none(selector)]
}

fn cells(kind: &ResourceKind, o: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let name = json!(s(&o["metadata"]["name"]));
    let age = json!(age_of(&o["metadata"]["creationTimestamp"], now));
    let spec = &o["spec"];
    let status = &o["status"];
    let mut row = match (kind.group, kind.kind) {
        ("", "Namespace") => vec![name, json!(s(&status["phase"])), age],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![name, json!(s(&o["metadata"]["creationTimestamp"]))]
        }
        ("", "Pod") => {
            let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            let mut phase = s(&status["phase"]);
            if let Some(r) = status["reason"].as_str() {
                phase = r.to_owned();
            }
            for c in &statuses {
                if let Some(reason) = c["state"]["waiting"]["reason"].as_str() {
                    phase = reason.to_owned();
                }
            }
            if o["metadata"].get("deletionTimestamp").is_some_and(|v| !v.is_null()) {
                phase = "Terminating".into();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!(restarts.to_string()),
                age,
                json!(or_none(s(&status["podIP"]))),
                json!(or_none(s(&spec["nodeName"]))),
                json!(or_none(s(&status["nominatedNodeName"]))),
                json!("<none>"),
            ]
        }
        ("", "Service") => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match p["nodePort"].as_i64() {
                    Some(np) => format!("{}:{np}/{}", int(&p["port"]), s(&p["protocol"])),
                    None => format!("{}/{}", int(&p["port"]), s(&p["protocol"])),
                })
                .collect();
            let external = match spec["type"].as_str() {
                Some("ExternalName") => s(&spec["externalName"]),
                Some("LoadBalancer") => "<pending>".into(),
                _ => "<none>".into(),
            };
            let selector: Vec<String> = spec["selector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect();
            vec![
                name,
                json!(s(&spec["type"])),
                json!(or_none(s(&spec["clusterIP"]))),
                json!(external),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector.join(","))),
            ]
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in o["subsets"].as_array().into_iter().flatten() {
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    for p in subset["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", s(&a["ip"]), int(&p["port"])));
                    }
                }
            }
            vec![name, json!(or_none(eps.join(","))), age]
        }
        ("", "Node") => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .map(|c| if c["status"] == "True" { "Ready" } else { "NotReady" })
                .unwrap_or("Unknown");
            let mut state = ready.to_owned();
            if spec["unschedulable"] == true {
                state.push_str(",SchedulingDisabled");
            }
            let roles: Vec<&str> = o["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let addr = |t: &str| {
                status["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map(|a| s(&a["address"]))
                    .unwrap_or_default()
            };
            let info = &status["nodeInfo"];
            vec![
                name,
                json!(state),
                json!(or_none(roles.join(","))),
                age,
                json!(s(&info["kubeletVersion"])),
                json!(or_none(addr("InternalIP"))),
                json!(or_none(addr("ExternalIP"))),
                json!(s(&info["osImage"])),
                json!(s(&info["kernelVersion"])),
                json!(s(&info["containerRuntimeVersion"])),
            ]
        }
        ("", "Event") => {
            let last = [&o["lastTimestamp"], &o["eventTime"], &o["metadata"]["creationTimestamp"]]
                .into_iter()
                .find(|v| v.is_string())
                .cloned()
                .unwrap_or(Value::Null);
            let io = &o["involvedObject"];
            vec![
                json!(age_of(&last, now)),
                json!(s(&o["type"])),
                json!(s(&o["reason"])),
                json!(format!("{}/{}", s(&io["kind"]).to_lowercase(), s(&io["name"]))),
                json!(s(&o["message"])),
            ]
        }
        ("", "ConfigMap") => vec![name, json!(count(&o["data"]) + count(&o["binaryData"])), age],
        ("", "Secret") => vec![name, json!(s(&o["type"])), json!(count(&o["data"])), age],
        ("", "ServiceAccount") => vec![name, json!(count(&o["secrets"])), age],
        ("", "PersistentVolume") => {
            let claim = &spec["claimRef"];
            let claim = if claim.is_object() {
                format!("{}/{}", s(&claim["namespace"]), s(&claim["name"]))
            } else {
                String::new()
            };
            vec![
                name,
                json!(s(&spec["capacity"]["storage"])),
                json!(access_modes(&spec["accessModes"])),
                json!(s(&spec["persistentVolumeReclaimPolicy"])),
                json!(s(&status["phase"])),
                json!(claim),
                json!(s(&spec["storageClassName"])),
                json!(s(&status["reason"])),
                age,
            ]
        }
        ("", "PersistentVolumeClaim") => vec![
            name,
            json!(s(&status["phase"])),
            json!(s(&spec["volumeName"])),
            json!(s(&status["capacity"]["storage"])),
            json!(access_modes(&status["accessModes"])),
            json!(s(&spec["storageClassName"])),
            age,
        ],
        ("apps", "Deployment") => vec![
            name,
            json!(format!("{}/{}", int(&status["readyReplicas"]), int(&spec["replicas"]))),
            json!(int(&status["updatedReplicas"])),
            json!(int(&status["availableReplicas"])),
            age,
        ],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => vec![
            name,
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ],
        ("apps", "DaemonSet") => {
            let sel: Vec<String> = spec["template"]["spec"]["nodeSelector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect();
            vec![
                name,
                json!(int(&status["desiredNumberScheduled"])),
                json!(int(&status["currentNumberScheduled"])),
                json!(int(&status["numberReady"])),
                json!(int(&status["updatedNumberScheduled"])),
                json!(int(&status["numberAvailable"])),
                json!(or_none(sel.join(","))),
                age,
            ]
        }
        ("apps", "StatefulSet") => vec![
            name,
            json!(format!("{}/{}", int(&status["readyReplicas"]), int(&spec["replicas"]))),
            age,
        ],
        ("apps", "ControllerRevision") => {
            let controller = o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == true)
                .map(|r| {
                    let group = s(&r["apiVersion"]).split_once('/').map(|(g, _)| g.to_owned());
                    let kind = s(&r["kind"]).to_lowercase();
                    match group {
                        Some(g) => format!("{kind}.{g}/{}", s(&r["name"])),
                        None => format!("{kind}/{}", s(&r["name"])),
                    }
                })
                .unwrap_or_else(|| "<none>".into());
            vec![name, json!(controller), json!(int(&o["revision"])), age]
        }
        ("batch", "Job") => {
            let conds = status["conditions"].as_array().cloned().unwrap_or_default();
            let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
            let state = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if spec["suspend"] == true {
                "Suspended"
            } else {
                "Running"
            };
            let duration = match (
                status["startTime"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
                status["completionTime"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
            ) {
                (Some(a), Some(b)) => human_duration((b - a).num_seconds()),
                (Some(a), None) => {
                    human_duration((now - a.with_timezone(&chrono::Utc)).num_seconds())
                }
                _ => String::new(),
            };
            vec![
                name,
                json!(state),
                json!(format!("{}/{}", int(&status["succeeded"]), int(&spec["completions"]))),
                json!(duration),
                age,
            ]
        }
        ("batch", "CronJob") => {
            let last = status["lastScheduleTime"].as_str().map(|t| age_of(&json!(t), now));
            vec![
                name,
                json!(s(&spec["schedule"])),
                json!(or_none(s(&spec["timeZone"]))),
                json!(spec["suspend"] == true),
                json!(status["active"].as_array().map_or(0, Vec::len)),
                json!(last.unwrap_or_else(|| "<none>".into())),
                age,
            ]
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            vec![name, json!(int(&o["value"])), json!(o["globalDefault"] == true), age]
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let r = &spec["scaleTargetRef"];
            vec![
                name,
                json!(format!("{}/{}", s(&r["kind"]), s(&r["name"]))),
                json!(hpa_targets(spec, status)),
                json!(int(&spec["minReplicas"]).to_string()),
                json!(int(&spec["maxReplicas"])),
                json!(int(&status["currentReplicas"])),
                age,
            ]
        }
        ("coordination.k8s.io", "Lease") => vec![name, json!(s(&spec["holderIdentity"])), age],
        ("policy", "PodDisruptionBudget") => {
            let or_na = |v: &Value| if v.is_null() { "N/A".to_owned() } else { s(v) };
            vec![
                name,
                json!(or_na(&spec["minAvailable"])),
                json!(or_na(&spec["maxUnavailable"])),
                json!(int(&status["disruptionsAllowed"])),
                age,
            ]
        }
        ("", "ResourceQuota") => {
            let (requests, limits) = quota_cells(spec, status);
            vec![name, age, json!(requests), json!(limits)]
        }
        ("", "LimitRange") => vec![name, json!(s(&o["metadata"]["creationTimestamp"]))],
        ("node.k8s.io", "RuntimeClass") => vec![name, json!(s(&o["handler"])), age],
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            // As kubectl words it: Pending, or the conditions, then Issued.
            let mut state: Vec<String> = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["type"].as_str().map(str::to_owned))
                .collect();
            if !s(&status["certificate"]).is_empty() {
                state.push("Issued".into());
            }
            let state = if state.is_empty() { "Pending".to_owned() } else { state.join(",") };
            let (signer, requestor) = (s(&spec["signerName"]), s(&spec["username"]));
            vec![name, age, json!(signer), json!(requestor), json!(state)]
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            vec![name, json!(s(&o["metadata"]["creationTimestamp"]))]
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let subjects = o["subjects"].as_array().cloned().unwrap_or_default();
            let of = |k: &str| {
                subjects
                    .iter()
                    .filter(|x| x["kind"] == k)
                    .map(|x| match x["namespace"].as_str() {
                        Some(ns) if k == "ServiceAccount" => format!("{ns}/{}", s(&x["name"])),
                        _ => s(&x["name"]),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                name,
                json!(format!("{}/{}", s(&o["roleRef"]["kind"]), s(&o["roleRef"]["name"]))),
                age,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports: Vec<String> =
                o["ports"].as_array().into_iter().flatten().map(|p| s(&p["port"])).collect();
            let eps: Vec<String> = o["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                .map(|a| s(&a))
                .collect();
            vec![
                name,
                json!(s(&o["addressType"])),
                json!(or_none(ports.join(","))),
                json!(or_none(eps.join(","))),
                age,
            ]
        }
        _ => vec![name, age],
    };
    match (kind.group, kind.kind) {
        ("apps", "ControllerRevision") => {}
        ("apps", "StatefulSet") => {
            row.extend(pod_template_cells(kind, spec).into_iter().take(2).map(Value::String))
        }
        ("apps", _) | ("batch", "Job") | ("", "ReplicationController") => {
            row.extend(pod_template_cells(kind, spec).map(Value::String))
        }
        _ => {}
    }
    row
}

/// A quota's `used/hard` per resource, as kubectl shows them: limits apart from the rest.
fn quota_cells(spec: &Value, status: &Value) -> (String, String) {
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for (resource, hard) in spec["hard"].as_object().into_iter().flatten() {
        let used = status["used"][resource.as_str()].as_str().unwrap_or("0");
        let cell = format!("{resource}: {used}/{}", s(hard));
        if resource.starts_with("limits.") { limits.push(cell) } else { requests.push(cell) }
    }
    requests.sort();
    limits.sort();
    (requests.join(", "), limits.join(", "))
}

fn access_modes(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The row's `object`: all of it, its metadata only, or nothing.
fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"],
        }),
    }
}

/// A custom kind's `additionalPrinterColumns` cell: the path's first value, typed as the
/// column says (dates shown as ages, as kubectl does).
fn printer_cell(col: &PrinterColumn, o: &Value, now: chrono::DateTime<chrono::Utc>) -> Value {
    let Ok(path) = JsonPath::parse(&col.json_path) else { return Value::Null };
    let Some(v) = path.find(o).into_iter().next() else { return Value::Null };
    match col.type_.as_str() {
        "date" => json!(age_of(v, now)),
        "string" if !v.is_string() => json!(v.to_string()),
        _ => v.clone(),
    }
}

/// A Table of custom objects: Name, then the definition's printer columns (or Age).
fn custom_table(
    columns: &[PrinterColumn],
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    let now = chrono::Utc::now();
    let mut defs = vec![json!({ "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0 })];
    if columns.is_empty() {
        defs.push(json!({ "name": "Age", "type": "date", "format": "", "description": "", "priority": 0 }));
    }
    for c in columns {
        defs.push(json!({ "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![json!(s(&o["metadata"]["name"]))];
            if columns.is_empty() {
                cells.push(json!(age_of(&o["metadata"]["creationTimestamp"], now)));
            }
            cells.extend(columns.iter().map(|c| printer_cell(c, o, now)));
            json!({ "cells": cells, "object": row_object(o, include) })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// A Table of `objects`; `list_meta` becomes the Table's metadata.
pub fn table(
    kind: &ResourceKind,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
) -> Value {
    if let Some(custom) = kind.custom {
        return custom_table(&custom.columns, objects, list_meta, include);
    }
    let now = chrono::Utc::now();
    let defs: Vec<Value> = columns(kind)
        .iter()
        .map(|Col(name, ty, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({ "name": name, "type": ty, "format": format, "description": "", "priority": priority })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({ "cells": cells(kind, o, now), "object": row_object(o, include) }))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::KINDS;

    #[test]
    fn every_row_fits_its_columns() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {}, "status": {}});
        for k in KINDS {
            let t = table(k, std::slice::from_ref(&obj), json!({}), IncludeObject::Metadata);
            assert_eq!(
                t["rows"][0]["cells"].as_array().unwrap().len(),
                t["columnDefinitions"].as_array().unwrap().len(),
                "{}",
                k.kind
            );
        }
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(190), "3m10s");
        assert_eq!(human_duration(3600 * 5 + 60 * 7), "5h7m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
