//! Field numbers and JSON names of the messages of every built-in kind the server serves
//! (metrics aside): what kubectl's typed clients send (every
//! `kubectl create` subcommand, `kubectl debug` node pods and `--copy-to` copies, `kubectl
//! drain`, `kubectl autoscale`, `kubectl auth`, `kubectl certificate`) and what client-go
//! programs send (statuses, leases, events). Numbers follow
//! the API's generated.proto; one file per API group, with the pod's closure split by concept
//! (containers, probes, security, placement, volumes, status).
//!
//! The statuses of access and token reviews, which the server alone computes, are left out:
//! a client sends them empty, which the decoder reads past, and a non-empty one is refused
//! like any other field outside the tables.

// The macro is declared before the modules so that they can use it.
macro_rules! f {
    ($num:literal $json:literal [$ty:expr]) => {
        Field { num: $num, json: $json, ty: $ty, repeated: true, omitempty: false }
    };
    ($num:literal $json:literal $ty:expr, omitempty) => {
        Field { num: $num, json: $json, ty: $ty, repeated: false, omitempty: true }
    };
    ($num:literal $json:literal $ty:expr) => {
        Field { num: $num, json: $json, ty: $ty, repeated: false, omitempty: false }
    };
}

mod apiextensions;
mod apps;
mod auth;
mod autoscaling;
mod batch;
mod certificates;
mod container;
mod coordination;
mod core_kinds;
mod endpoints;
mod events;
mod meta;
mod networking;
mod node;
mod placement;
mod pod;
mod pod_status;
mod policy;
mod probe;
mod quota;
mod rbac;
mod scheduling;
mod security;
mod service;
mod storage;
mod volume;

/// How a field's value is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    /// Bytes, base64 in JSON.
    Bytes,
    /// Any varint integer (int32 and int64 alike; negatives arrive sign-extended).
    Int,
    Bool,
    Msg(&'static Msg),
    /// A Go struct embedded with `json:",inline"`: a message field of its own on the wire
    /// whose fields JSON writes into the parent object (a Volume's source, a Probe's handler).
    Inline(&'static Msg),
    /// map<string, V>: entries with key = 1 and value = 2, an object in JSON.
    Map(&'static Ty),
    /// A message whose only field (1) is a repeated string, written in JSON as the bare list
    /// (the `extra` values of user info).
    StrList,
    /// metav1.Time: seconds and nanos, RFC 3339 in JSON.
    Time,
    /// metav1.MicroTime: the same on the wire, RFC 3339 with microseconds in JSON.
    MicroTime,
    /// runtime.RawExtension: a message whose bytes field 1 holds the JSON of an embedded
    /// object (a ControllerRevision's data).
    Raw,
    /// A double (fixed 64 bits on the wire).
    Double,
    /// A message standing for one of its fields (a schema or a list of them, a schema or a
    /// bool): JSON holds the first of them, in table order, that is set, or null.
    Either(&'static Msg),
    /// resource.Quantity: its string.
    Quantity,
    /// intstr.IntOrString: an integer or a string.
    IntOrString,
    /// What the server keeps from the stored object whatever a client sends (managedFields,
    /// sent back by `kubectl certificate approve`): read past and dropped.
    ServerOwned,
}

#[derive(Debug)]
pub struct Field {
    pub num: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub repeated: bool,
    /// A Go value field (not a pointer) tagged omitempty: its zero (0, false, a "0"
    /// quantity) is sent on the wire but means "unset", and JSON leaves it out.
    pub omitempty: bool,
}

#[derive(Debug)]
pub struct Msg {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// Kinds whose message is told by apiVersion and kind (their kind names another message in
/// some other group or version).
static VERSIONED: &[(&str, &str, &Msg)] = &[
    ("autoscaling/v1", "HorizontalPodAutoscaler", &autoscaling::HORIZONTAL_POD_AUTOSCALER),
    ("autoscaling/v2", "HorizontalPodAutoscaler", &autoscaling::HORIZONTAL_POD_AUTOSCALER_V2),
    ("autoscaling/v1", "Scale", &autoscaling::SCALE),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &apiextensions::CUSTOM_RESOURCE_DEFINITION,
    ),
    ("v1", "Event", &events::EVENT),
    ("events.k8s.io/v1", "Event", &events::EVENTS_V1_EVENT),
    ("batch/v1", "CronJob", &batch::CRON_JOB),
    ("networking.k8s.io/v1", "Ingress", &networking::INGRESS),
    ("scheduling.k8s.io/v1", "PriorityClass", &scheduling::PRIORITY_CLASS),
    ("networking.k8s.io/v1", "IngressClass", &networking::INGRESS_CLASS),
    ("networking.k8s.io/v1", "NetworkPolicy", &networking::NETWORK_POLICY),
    ("discovery.k8s.io/v1", "EndpointSlice", &endpoints::ENDPOINT_SLICE),
];

/// Kinds whose schema is the same in every version served, by kind.
static KINDS: &[(&str, &Msg)] = &[
    ("Namespace", &core_kinds::NAMESPACE),
    ("ConfigMap", &core_kinds::CONFIG_MAP),
    ("Secret", &core_kinds::SECRET),
    ("ServiceAccount", &core_kinds::SERVICE_ACCOUNT),
    ("Role", &rbac::ROLE),
    ("ClusterRole", &rbac::CLUSTER_ROLE),
    ("RoleBinding", &rbac::ROLE_BINDING),
    ("ClusterRoleBinding", &rbac::CLUSTER_ROLE_BINDING),
    ("Pod", &pod::POD),
    ("Binding", &pod::BINDING),
    ("PodTemplate", &pod::POD_TEMPLATE),
    ("Deployment", &apps::DEPLOYMENT),
    ("Job", &batch::JOB),
    ("Service", &service::SERVICE),
    ("SelfSubjectAccessReview", &auth::SELF_SUBJECT_ACCESS_REVIEW),
    ("SelfSubjectRulesReview", &auth::SELF_SUBJECT_RULES_REVIEW),
    ("SelfSubjectReview", &auth::SELF_SUBJECT_REVIEW),
    ("CertificateSigningRequest", &certificates::CERTIFICATE_SIGNING_REQUEST),
    ("TokenRequest", &auth::TOKEN_REQUEST),
    ("DeleteOptions", &meta::DELETE_OPTIONS),
    ("Eviction", &policy::EVICTION),
    ("PodDisruptionBudget", &policy::POD_DISRUPTION_BUDGET),
    ("ResourceQuota", &quota::RESOURCE_QUOTA),
    ("LimitRange", &quota::LIMIT_RANGE),
    ("Endpoints", &endpoints::ENDPOINTS),
    ("Node", &node::NODE),
    ("RuntimeClass", &node::RUNTIME_CLASS),
    ("PersistentVolume", &storage::PERSISTENT_VOLUME),
    ("PersistentVolumeClaim", &storage::PERSISTENT_VOLUME_CLAIM),
    ("StorageClass", &storage::STORAGE_CLASS),
    ("ReplicaSet", &apps::REPLICA_SET),
    ("DaemonSet", &apps::DAEMON_SET),
    ("StatefulSet", &apps::STATEFUL_SET),
    ("ControllerRevision", &apps::CONTROLLER_REVISION),
    ("Lease", &coordination::LEASE),
    ("SubjectAccessReview", &auth::SUBJECT_ACCESS_REVIEW),
    ("TokenReview", &auth::TOKEN_REVIEW),
];

/// The message a body of this apiVersion and kind holds, if it is one read here.
pub fn message_of(api_version: &str, kind: &str) -> Option<&'static Msg> {
    let versioned = VERSIONED.iter().find(|(v, k, _)| *v == api_version && *k == kind);
    versioned
        .map(|(_, _, m)| *m)
        .or_else(|| KINDS.iter().find(|(k, _)| *k == kind).map(|(_, m)| *m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message reachable from a top-level kind.
    fn closure() -> Vec<&'static Msg> {
        let mut todo: Vec<&'static Msg> = VERSIONED.iter().map(|(_, _, m)| *m).collect();
        todo.extend(KINDS.iter().map(|(_, m)| *m));
        let mut seen: Vec<&'static Msg> = Vec::new();
        while let Some(m) = todo.pop() {
            if seen.iter().any(|s| std::ptr::eq(*s, m)) {
                continue;
            }
            seen.push(m);
            for f in m.fields {
                let ty = if let Ty::Map(value) = f.ty { *value } else { f.ty };
                if let Ty::Msg(sub) | Ty::Inline(sub) | Ty::Either(sub) = ty {
                    todo.push(sub);
                }
            }
        }
        seen
    }

    #[test]
    fn kinds_are_found_by_version() {
        let name = |v, k| message_of(v, k).map(|m| m.name);
        assert_eq!(name("batch/v1", "CronJob"), Some("CronJob"));
        assert_eq!(name("batch/v1beta1", "CronJob"), None, "another schema");
        assert_eq!(name("policy/v1", "DeleteOptions"), Some("DeleteOptions"));
        assert_eq!(name("v1", "Widget"), None);
    }

    #[test]
    fn tables_are_consistent() {
        let all = closure();
        assert!(all.len() > 150, "{}", all.len());
        for m in all {
            for (i, f) in m.fields.iter().enumerate() {
                // One entry per number and per JSON name.
                assert!(
                    m.fields[i + 1..].iter().all(|g| g.num != f.num && g.json != f.json),
                    "{}.{} twice",
                    m.name,
                    f.json
                );
                assert!(f.num > 0 && !f.json.is_empty(), "{}", m.name);
                // Only varints and quantities have a zero the wire carries.
                if f.omitempty {
                    assert!(
                        matches!(f.ty, Ty::Int | Ty::Bool | Ty::Quantity) && !f.repeated,
                        "{}.{}",
                        m.name,
                        f.json
                    );
                }
            }
        }
    }
}
