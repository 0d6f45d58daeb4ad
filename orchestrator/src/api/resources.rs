//! The table of every resource the API server serves: one row per kind, from which routing,
//! discovery, OpenAPI, validation and storage keys are all derived.

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling, batch::v1 as batch,
    certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    node::v1 as node, policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
    storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use schemars::r#gen::SchemaGenerator;
use schemars::schema::Schema;

/// A subresource route under an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// Writes only `.status`; the main resource ignores `.status`.
    Status,
    /// `autoscaling/v1` Scale view of `.spec.replicas`.
    Scale,
    /// Pod binding to a node (the scheduler's write).
    Binding,
    /// Container logs (served by the node agent, issue 8).
    Log,
    /// Exec into a container (served by the node agent, issue 8).
    Exec,
    /// A CertificateSigningRequest's Approved/Denied conditions.
    Approval,
    /// A service account's TokenRequest.
    Token,
    /// A pod's eviction (policy/v1 Eviction), honouring PodDisruptionBudgets.
    Eviction,
    /// A pod's ephemeral containers (`kubectl debug`).
    EphemeralContainers,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Scale => "scale",
            Self::Binding => "binding",
            Self::Log => "log",
            Self::Exec => "exec",
            Self::Approval => "approval",
            Self::Token => "token",
            Self::Eviction => "eviction",
            Self::EphemeralContainers => "ephemeralcontainers",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Status,
            Self::Scale,
            Self::Binding,
            Self::Log,
            Self::Exec,
            Self::Approval,
            Self::Token,
            Self::Eviction,
            Self::EphemeralContainers,
        ]
        .into_iter()
        .find(|r| r.name() == s)
    }

    /// (group, version, kind) of what the subresource speaks, and its verbs.
    pub fn discovery(
        self,
        owner: &ResourceKind,
    ) -> ((&'static str, &'static str, &'static str), &'static [&'static str]) {
        match self {
            Self::Status | Self::Approval => {
                ((owner.group, owner.version, owner.kind), &["get", "patch", "update"])
            }
            Self::Scale => (("autoscaling", "v1", "Scale"), &["get", "patch", "update"]),
            Self::Binding => (("", "v1", "Binding"), &["create"]),
            Self::Log => (("", "v1", "Pod"), &["get"]),
            Self::Exec => (("", "v1", "PodExecOptions"), &["create", "get"]),
            Self::Token => (("authentication.k8s.io", "v1", "TokenRequest"), &["create"]),
            Self::Eviction => (("policy", "v1", "Eviction"), &["create"]),
            Self::EphemeralContainers => (("", "v1", "Pod"), &["get", "patch", "update"]),
        }
    }
}

/// Whether objects live in the store or only exist for the length of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Stored,
    /// Answered by the server (e.g. access reviews): create only.
    Virtual,
    /// Stored as another version or group's kind and converted (`crate::api::conversion`).
    Converted,
}

pub struct ResourceKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    pub storage: Storage,
    /// The OpenAPI schema of the kind (registers its definitions in the generator).
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// Decodes into the typed struct: type errors in a body surface here.
    pub decode: fn(serde_json::Value) -> Result<(), serde_json::Error>,
    /// The OpenAPI definition name, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub schema_name: fn() -> String,
    /// What a CustomResourceDefinition says of a kind served from one (None for built-ins).
    pub custom: Option<&'static super::custom::CustomKind>,
}

impl ResourceKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn group_version(&self) -> (&'static str, &'static str) {
        (self.group, self.version)
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    pub fn verbs(&self) -> &'static [&'static str] {
        match self.storage {
            Storage::Stored | Storage::Converted => {
                &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
            }
            Storage::Virtual => &["create"],
        }
    }

    /// The group name used in storage keys and RBAC ("" is the core group).
    pub fn group_label(&self) -> &'static str {
        if self.group.is_empty() { "core" } else { self.group }
    }
}

macro_rules! kinds {
    ($( $ty:ty => $group:literal $version:literal $kind:literal $plural:literal $singular:literal
        $scope:ident [$($short:literal),*] [$($cat:literal),*] [$($sub:ident),*] $storage:ident; )*) => {
        pub static KINDS: &[ResourceKind] = &[$(
            ResourceKind {
                group: $group,
                version: $version,
                kind: $kind,
                plural: $plural,
                singular: $singular,
                namespaced: kinds!(@scope $scope),
                short_names: &[$($short),*],
                categories: &[$($cat),*],
                subresources: &[$(Subresource::$sub),*],
                storage: Storage::$storage,
                schema: |g| g.subschema_for::<$ty>(),
                decode: |v| serde_json::from_value::<$ty>(v).map(|_| ()),
                schema_name: <$ty as schemars::JsonSchema>::schema_name,
                custom: None,
            },
        )*];
    };
    (@scope Namespaced) => { true };
    (@scope Cluster) => { false };
}

kinds! {
    core::Namespace => "" "v1" "Namespace" "namespaces" "namespace" Cluster ["ns"] [] [Status] Stored;
    core::Pod => "" "v1" "Pod" "pods" "pod" Namespaced ["po"] ["all"] [Status, Binding, Log, Exec, Eviction, EphemeralContainers] Stored;
    core::Service => "" "v1" "Service" "services" "service" Namespaced ["svc"] ["all"] [Status] Stored;
    core::Endpoints => "" "v1" "Endpoints" "endpoints" "endpoints" Namespaced ["ep"] [] [] Stored;
    core::Node => "" "v1" "Node" "nodes" "node" Cluster ["no"] [] [Status] Stored;
    core::Event => "" "v1" "Event" "events" "event" Namespaced ["ev"] [] [] Stored;
    core::ConfigMap => "" "v1" "ConfigMap" "configmaps" "configmap" Namespaced ["cm"] [] [] Stored;
    core::Secret => "" "v1" "Secret" "secrets" "secret" Namespaced [] [] [] Stored;
    core::ServiceAccount => "" "v1" "ServiceAccount" "serviceaccounts" "serviceaccount" Namespaced ["sa"] [] [Token] Stored;
    core::PersistentVolume => "" "v1" "PersistentVolume" "persistentvolumes" "persistentvolume" Cluster ["pv"] [] [Status] Stored;
    core::PersistentVolumeClaim => "" "v1" "PersistentVolumeClaim" "persistentvolumeclaims" "persistentvolumeclaim" Namespaced ["pvc"] [] [Status] Stored;
    core::ReplicationController => "" "v1" "ReplicationController" "replicationcontrollers" "replicationcontroller" Namespaced ["rc"] ["all"] [Status, Scale] Stored;
    core::PodTemplate => "" "v1" "PodTemplate" "podtemplates" "podtemplate" Namespaced [] [] [] Stored;
    core::ResourceQuota => "" "v1" "ResourceQuota" "resourcequotas" "resourcequota" Namespaced ["quota"] [] [Status] Stored;
    core::LimitRange => "" "v1" "LimitRange" "limitranges" "limitrange" Namespaced ["limits"] [] [] Stored;
    apps::Deployment => "apps" "v1" "Deployment" "deployments" "deployment" Namespaced ["deploy"] ["all"] [Status, Scale] Stored;
    apps::ReplicaSet => "apps" "v1" "ReplicaSet" "replicasets" "replicaset" Namespaced ["rs"] ["all"] [Status, Scale] Stored;
    apps::DaemonSet => "apps" "v1" "DaemonSet" "daemonsets" "daemonset" Namespaced ["ds"] ["all"] [Status] Stored;
    apps::StatefulSet => "apps" "v1" "StatefulSet" "statefulsets" "statefulset" Namespaced ["sts"] ["all"] [Status, Scale] Stored;
    apps::ControllerRevision => "apps" "v1" "ControllerRevision" "controllerrevisions" "controllerrevision" Namespaced [] [] [] Stored;
    batch::Job => "batch" "v1" "Job" "jobs" "job" Namespaced [] ["all"] [Status] Stored;
    batch::CronJob => "batch" "v1" "CronJob" "cronjobs" "cronjob" Namespaced ["cj"] ["all"] [Status] Stored;
    autoscaling::HorizontalPodAutoscaler => "autoscaling" "v2" "HorizontalPodAutoscaler" "horizontalpodautoscalers" "horizontalpodautoscaler" Namespaced ["hpa"] ["all"] [Status] Stored;
    autoscaling_v1::HorizontalPodAutoscaler => "autoscaling" "v1" "HorizontalPodAutoscaler" "horizontalpodautoscalers" "horizontalpodautoscaler" Namespaced ["hpa"] ["all"] [Status] Converted;
    events::Event => "events.k8s.io" "v1" "Event" "events" "event" Namespaced ["ev"] [] [] Converted;
    coordination::Lease => "coordination.k8s.io" "v1" "Lease" "leases" "lease" Namespaced [] [] [] Stored;
    scheduling::PriorityClass => "scheduling.k8s.io" "v1" "PriorityClass" "priorityclasses" "priorityclass" Cluster ["pc"] [] [] Stored;
    super::metrics::PodMetrics => "metrics.k8s.io" "v1beta1" "PodMetrics" "pods" "podmetrics" Namespaced [] [] [] Stored;
    super::metrics::NodeMetrics => "metrics.k8s.io" "v1beta1" "NodeMetrics" "nodes" "nodemetrics" Cluster [] [] [] Stored;
    node::RuntimeClass => "node.k8s.io" "v1" "RuntimeClass" "runtimeclasses" "runtimeclass" Cluster [] [] [] Stored;
    rbac::Role => "rbac.authorization.k8s.io" "v1" "Role" "roles" "role" Namespaced [] [] [] Stored;
    rbac::ClusterRole => "rbac.authorization.k8s.io" "v1" "ClusterRole" "clusterroles" "clusterrole" Cluster [] [] [] Stored;
    rbac::RoleBinding => "rbac.authorization.k8s.io" "v1" "RoleBinding" "rolebindings" "rolebinding" Namespaced [] [] [] Stored;
    rbac::ClusterRoleBinding => "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" "clusterrolebindings" "clusterrolebinding" Cluster [] [] [] Stored;
    networking::Ingress => "networking.k8s.io" "v1" "Ingress" "ingresses" "ingress" Namespaced ["ing"] [] [Status] Stored;
    networking::IngressClass => "networking.k8s.io" "v1" "IngressClass" "ingressclasses" "ingressclass" Cluster [] [] [] Stored;
    networking::NetworkPolicy => "networking.k8s.io" "v1" "NetworkPolicy" "networkpolicies" "networkpolicy" Namespaced ["netpol"] [] [] Stored;
    certificates::CertificateSigningRequest => "certificates.k8s.io" "v1" "CertificateSigningRequest" "certificatesigningrequests" "certificatesigningrequest" Cluster ["csr"] [] [Status, Approval] Stored;
    policy::PodDisruptionBudget => "policy" "v1" "PodDisruptionBudget" "poddisruptionbudgets" "poddisruptionbudget" Namespaced ["pdb"] [] [Status] Stored;
    apiextensions::CustomResourceDefinition => "apiextensions.k8s.io" "v1" "CustomResourceDefinition" "customresourcedefinitions" "customresourcedefinition" Cluster ["crd", "crds"] ["api-extensions"] [Status] Stored;
    storage::StorageClass => "storage.k8s.io" "v1" "StorageClass" "storageclasses" "storageclass" Cluster ["sc"] [] [] Stored;
    discovery::EndpointSlice => "discovery.k8s.io" "v1" "EndpointSlice" "endpointslices" "endpointslice" Namespaced [] [] [] Stored;
    authz::SelfSubjectAccessReview => "authorization.k8s.io" "v1" "SelfSubjectAccessReview" "selfsubjectaccessreviews" "selfsubjectaccessreview" Cluster [] [] [] Virtual;
    authz::SelfSubjectRulesReview => "authorization.k8s.io" "v1" "SelfSubjectRulesReview" "selfsubjectrulesreviews" "selfsubjectrulesreview" Cluster [] [] [] Virtual;
    authz::SubjectAccessReview => "authorization.k8s.io" "v1" "SubjectAccessReview" "subjectaccessreviews" "subjectaccessreview" Cluster [] [] [] Virtual;
    authn::SelfSubjectReview => "authentication.k8s.io" "v1" "SelfSubjectReview" "selfsubjectreviews" "selfsubjectreview" Cluster [] [] [] Virtual;
    authn::TokenReview => "authentication.k8s.io" "v1" "TokenReview" "tokenreviews" "tokenreview" Cluster [] [] [] Virtual;
}

/// Every kind served now: the built-in table, then the kinds of established
/// CustomResourceDefinitions (each CRD's storage version first).
pub fn all() -> Vec<&'static ResourceKind> {
    let mut out: Vec<&'static ResourceKind> = KINDS.iter().collect();
    out.extend(super::custom::registry::kinds());
    out
}

/// Looks a resource up by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceKind> {
    let hit = |k: &&ResourceKind| k.group == group && k.version == version && k.plural == plural;
    KINDS.iter().find(hit).or_else(|| super::custom::registry::kinds().into_iter().find(hit))
}

/// Looks a resource up by group and kind.
pub fn find_kind(group: &str, kind: &str) -> Option<&'static ResourceKind> {
    let hit = |k: &&ResourceKind| k.group == group && k.kind == kind;
    KINDS.iter().find(hit).or_else(|| super::custom::registry::kinds().into_iter().find(hit))
}

/// The group/versions served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in all() {
        if !out.contains(&k.group_version()) {
            out.push(k.group_version());
        }
    }
    out
}

/// Splits an apiVersion ("apps/v1" or "v1") into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl std::fmt::Debug for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for k in KINDS {
            assert!(
                find(k.group, k.version, k.plural).is_some_and(|f| std::ptr::eq(f, k)),
                "{}",
                k.plural
            );
            assert!((k.schema_name)().ends_with(k.kind), "{}", k.kind);
        }
        assert_eq!(group_versions()[0], ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    }
}
