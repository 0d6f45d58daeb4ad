//! Field numbers and JSON names of the Kubernetes messages kubectl's typed clients send
//! (`kubectl create namespace|configmap|secret|serviceaccount|role|rolebinding|deployment|job|
//! service|token|poddisruptionbudget|quota`, `kubectl run`, `kubectl auth can-i`, `kubectl
//! certificate approve|deny`, `kubectl drain`, `kubectl autoscale`). Numbers follow the API's
//! generated.proto.

/// How a field's value is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    /// Bytes, base64 in JSON.
    Bytes,
    Int,
    Bool,
    Msg(&'static Msg),
    /// map<string, string>
    MapStr,
    /// map<string, bytes> (base64 values)
    MapBytes,
    /// map<string, Quantity>
    MapQuantity,
    /// metav1.Time: seconds and nanos, RFC 3339 in JSON.
    Time,
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
    /// A Go value field (not a pointer) tagged omitempty: its zero is sent on the wire but
    /// means "unset", and JSON leaves it out.
    pub omitempty: bool,
}

#[derive(Debug)]
pub struct Msg {
    pub name: &'static str,
    pub fields: &'static [Field],
}

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

use Ty::*;

pub static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        f!(1 "kind" Str),
        f!(3 "name" Str),
        f!(4 "uid" Str),
        f!(5 "apiVersion" Str),
        f!(6 "controller" Bool),
        f!(7 "blockOwnerDeletion" Bool),
    ],
};

pub static OBJECT_META: Msg = Msg {
    name: "ObjectMeta",
    fields: &[
        f!(1 "name" Str),
        f!(2 "generateName" Str),
        f!(3 "namespace" Str),
        f!(4 "selfLink" Str),
        f!(5 "uid" Str),
        f!(6 "resourceVersion" Str),
        f!(7 "generation" Int, omitempty),
        f!(8 "creationTimestamp" Time),
        f!(9 "deletionTimestamp" Time),
        f!(10 "deletionGracePeriodSeconds" Int),
        f!(11 "labels" MapStr),
        f!(12 "annotations" MapStr),
        f!(13 "ownerReferences" [Msg(&OWNER_REFERENCE)]),
        f!(14 "finalizers" [Str]),
        f!(17 "managedFields" [ServerOwned]),
    ],
};

pub static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[f!(1 "key" Str), f!(2 "operator" Str), f!(3 "values" [Str])],
};

pub static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[
        f!(1 "matchLabels" MapStr),
        f!(2 "matchExpressions" [Msg(&LABEL_SELECTOR_REQUIREMENT)]),
    ],
};

pub static NAMESPACE_SPEC: Msg = Msg { name: "NamespaceSpec", fields: &[f!(1 "finalizers" [Str])] };

pub static NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&NAMESPACE_SPEC))],
};

pub static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "data" MapStr),
        f!(3 "binaryData" MapBytes),
        f!(4 "immutable" Bool),
    ],
};

pub static SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "data" MapBytes),
        f!(3 "type" Str),
        f!(4 "stringData" MapStr),
        f!(5 "immutable" Bool),
    ],
};

pub static OBJECT_REFERENCE: Msg = Msg {
    name: "ObjectReference",
    fields: &[
        f!(1 "kind" Str),
        f!(2 "namespace" Str),
        f!(3 "name" Str),
        f!(4 "uid" Str),
        f!(5 "apiVersion" Str),
        f!(6 "resourceVersion" Str),
        f!(7 "fieldPath" Str),
    ],
};

pub static LOCAL_OBJECT_REFERENCE: Msg =
    Msg { name: "LocalObjectReference", fields: &[f!(1 "name" Str)] };

pub static SERVICE_ACCOUNT: Msg = Msg {
    name: "ServiceAccount",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "secrets" [Msg(&OBJECT_REFERENCE)]),
        f!(3 "imagePullSecrets" [Msg(&LOCAL_OBJECT_REFERENCE)]),
        f!(4 "automountServiceAccountToken" Bool),
    ],
};

pub static POLICY_RULE: Msg = Msg {
    name: "PolicyRule",
    fields: &[
        f!(1 "verbs" [Str]),
        f!(2 "apiGroups" [Str]),
        f!(3 "resources" [Str]),
        f!(4 "resourceNames" [Str]),
        f!(5 "nonResourceURLs" [Str]),
    ],
};

pub static AGGREGATION_RULE: Msg =
    Msg { name: "AggregationRule", fields: &[f!(1 "clusterRoleSelectors" [Msg(&LABEL_SELECTOR)])] };

pub static ROLE: Msg = Msg {
    name: "Role",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "rules" [Msg(&POLICY_RULE)])],
};

pub static CLUSTER_ROLE: Msg = Msg {
    name: "ClusterRole",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "rules" [Msg(&POLICY_RULE)]),
        f!(3 "aggregationRule" Msg(&AGGREGATION_RULE)),
    ],
};

pub static SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[f!(1 "kind" Str), f!(2 "apiGroup" Str), f!(3 "name" Str), f!(4 "namespace" Str)],
};

pub static ROLE_REF: Msg =
    Msg { name: "RoleRef", fields: &[f!(1 "apiGroup" Str), f!(2 "kind" Str), f!(3 "name" Str)] };

pub static ROLE_BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "subjects" [Msg(&SUBJECT)]),
        f!(3 "roleRef" Msg(&ROLE_REF)),
    ],
};

pub static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        f!(1 "name" Str),
        f!(2 "hostPort" Int, omitempty),
        f!(3 "containerPort" Int),
        f!(4 "protocol" Str),
        f!(5 "hostIP" Str),
    ],
};

pub static ENV_VAR: Msg = Msg { name: "EnvVar", fields: &[f!(1 "name" Str), f!(2 "value" Str)] };

pub static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[f!(1 "limits" MapQuantity), f!(2 "requests" MapQuantity)],
};

pub static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        f!(1 "name" Str),
        f!(2 "image" Str),
        f!(3 "command" [Str]),
        f!(4 "args" [Str]),
        f!(5 "workingDir" Str),
        f!(6 "ports" [Msg(&CONTAINER_PORT)]),
        f!(7 "env" [Msg(&ENV_VAR)]),
        f!(8 "resources" Msg(&RESOURCE_REQUIREMENTS)),
        f!(13 "terminationMessagePath" Str),
        f!(14 "imagePullPolicy" Str),
        f!(16 "stdin" Bool, omitempty),
        f!(17 "stdinOnce" Bool, omitempty),
        f!(18 "tty" Bool, omitempty),
        f!(20 "terminationMessagePolicy" Str),
    ],
};

pub static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        f!(2 "containers" [Msg(&CONTAINER)]),
        f!(3 "restartPolicy" Str),
        f!(4 "terminationGracePeriodSeconds" Int),
        f!(5 "activeDeadlineSeconds" Int),
        f!(6 "dnsPolicy" Str),
        f!(7 "nodeSelector" MapStr),
        f!(8 "serviceAccountName" Str),
        f!(9 "serviceAccount" Str),
        f!(10 "nodeName" Str),
        f!(11 "hostNetwork" Bool, omitempty),
        f!(15 "imagePullSecrets" [Msg(&LOCAL_OBJECT_REFERENCE)]),
        f!(16 "hostname" Str),
        f!(17 "subdomain" Str),
        f!(19 "schedulerName" Str),
        f!(20 "initContainers" [Msg(&CONTAINER)]),
        f!(24 "priorityClassName" Str),
        f!(25 "priority" Int),
        f!(29 "runtimeClassName" Str),
        f!(30 "enableServiceLinks" Bool),
    ],
};

pub static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&POD_SPEC))],
};

pub static POD: Msg =
    Msg { name: "Pod", fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&POD_SPEC))] };

pub static DEPLOYMENT_STRATEGY: Msg =
    Msg { name: "DeploymentStrategy", fields: &[f!(1 "type" Str)] };

pub static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        f!(1 "replicas" Int),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(4 "strategy" Msg(&DEPLOYMENT_STRATEGY)),
        f!(5 "minReadySeconds" Int),
        f!(6 "revisionHistoryLimit" Int),
        f!(7 "paused" Bool, omitempty),
        f!(9 "progressDeadlineSeconds" Int),
    ],
};

pub static DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&DEPLOYMENT_SPEC))],
};

pub static JOB_SPEC: Msg = Msg {
    name: "JobSpec",
    fields: &[
        f!(1 "parallelism" Int),
        f!(2 "completions" Int),
        f!(3 "activeDeadlineSeconds" Int),
        f!(4 "selector" Msg(&LABEL_SELECTOR)),
        f!(5 "manualSelector" Bool),
        f!(6 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(7 "backoffLimit" Int),
        f!(8 "ttlSecondsAfterFinished" Int),
        f!(9 "completionMode" Str),
        f!(10 "suspend" Bool),
    ],
};

pub static JOB: Msg =
    Msg { name: "Job", fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&JOB_SPEC))] };

pub static SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    fields: &[
        f!(1 "name" Str),
        f!(2 "protocol" Str),
        f!(3 "port" Int),
        f!(4 "targetPort" IntOrString),
        f!(5 "nodePort" Int, omitempty),
        f!(6 "appProtocol" Str),
    ],
};

pub static SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    fields: &[
        f!(1 "ports" [Msg(&SERVICE_PORT)]),
        f!(2 "selector" MapStr),
        f!(3 "clusterIP" Str),
        f!(4 "type" Str),
        f!(5 "externalIPs" [Str]),
        f!(7 "sessionAffinity" Str),
        f!(8 "loadBalancerIP" Str),
        f!(10 "externalName" Str),
        f!(18 "clusterIPs" [Str]),
    ],
};

pub static SERVICE: Msg = Msg {
    name: "Service",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&SERVICE_SPEC))],
};

pub static RESOURCE_ATTRIBUTES: Msg = Msg {
    name: "ResourceAttributes",
    fields: &[
        f!(1 "namespace" Str),
        f!(2 "verb" Str),
        f!(3 "group" Str),
        f!(4 "version" Str),
        f!(5 "resource" Str),
        f!(6 "subresource" Str),
        f!(7 "name" Str),
    ],
};

pub static NON_RESOURCE_ATTRIBUTES: Msg =
    Msg { name: "NonResourceAttributes", fields: &[f!(1 "path" Str), f!(2 "verb" Str)] };

pub static SSAR_SPEC: Msg = Msg {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        f!(1 "resourceAttributes" Msg(&RESOURCE_ATTRIBUTES)),
        f!(2 "nonResourceAttributes" Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
};

pub static SSAR: Msg = Msg {
    name: "SelfSubjectAccessReview",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&SSAR_SPEC))],
};

pub static SSRR_SPEC: Msg =
    Msg { name: "SelfSubjectRulesReviewSpec", fields: &[f!(1 "namespace" Str)] };

pub static SSRR: Msg = Msg {
    name: "SelfSubjectRulesReview",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&SSRR_SPEC))],
};

/// `kubectl auth whoami` sends it empty: its status is the server's to fill.
pub static SSR: Msg =
    Msg { name: "SelfSubjectReview", fields: &[f!(1 "metadata" Msg(&OBJECT_META))] };

pub static CSR_SPEC: Msg = Msg {
    name: "CertificateSigningRequestSpec",
    fields: &[
        f!(1 "request" Bytes),
        f!(2 "username" Str),
        f!(3 "uid" Str),
        f!(4 "groups" [Str]),
        f!(5 "usages" [Str]),
        f!(7 "signerName" Str),
        f!(8 "expirationSeconds" Int),
    ],
};

pub static CSR_CONDITION: Msg = Msg {
    name: "CertificateSigningRequestCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "reason" Str),
        f!(3 "message" Str),
        f!(4 "lastUpdateTime" Time),
        f!(5 "lastTransitionTime" Time),
        f!(6 "status" Str),
    ],
};

pub static CSR_STATUS: Msg = Msg {
    name: "CertificateSigningRequestStatus",
    fields: &[f!(1 "conditions" [Msg(&CSR_CONDITION)]), f!(2 "certificate" Bytes)],
};

/// `kubectl certificate approve|deny` sends the request back with its new condition.
pub static CSR: Msg = Msg {
    name: "CertificateSigningRequest",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&CSR_SPEC)),
        f!(3 "status" Msg(&CSR_STATUS)),
    ],
};

pub static BOUND_OBJECT_REFERENCE: Msg = Msg {
    name: "BoundObjectReference",
    fields: &[f!(1 "kind" Str), f!(2 "apiVersion" Str), f!(3 "name" Str), f!(4 "uid" Str)],
};

pub static TOKEN_REQUEST_SPEC: Msg = Msg {
    name: "TokenRequestSpec",
    fields: &[
        f!(1 "audiences" [Str]),
        f!(4 "expirationSeconds" Int),
        f!(3 "boundObjectRef" Msg(&BOUND_OBJECT_REFERENCE)),
    ],
};

pub static TOKEN_REQUEST_STATUS: Msg = Msg {
    name: "TokenRequestStatus",
    fields: &[f!(1 "token" Str), f!(2 "expirationTimestamp" Time)],
};

/// `kubectl create token`.
pub static TOKEN_REQUEST: Msg = Msg {
    name: "TokenRequest",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&TOKEN_REQUEST_SPEC)),
        f!(3 "status" Msg(&TOKEN_REQUEST_STATUS)),
    ],
};

pub static PRECONDITIONS: Msg =
    Msg { name: "Preconditions", fields: &[f!(1 "uid" Str), f!(2 "resourceVersion" Str)] };

/// A delete's body (`kubectl delete` sends it with `--cascade` or `--grace-period`), and what
/// `kubectl drain` sends inside its Evictions.
pub static DELETE_OPTIONS: Msg = Msg {
    name: "DeleteOptions",
    fields: &[
        f!(1 "gracePeriodSeconds" Int),
        f!(2 "preconditions" Msg(&PRECONDITIONS)),
        f!(3 "orphanDependents" Bool),
        f!(4 "propagationPolicy" Str),
        f!(5 "dryRun" [Str]),
    ],
};

/// policy/v1 Eviction, posted to pods/eviction by `kubectl drain`.
pub static EVICTION: Msg = Msg {
    name: "Eviction",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "deleteOptions" Msg(&DELETE_OPTIONS))],
};

pub static CROSS_VERSION_REF: Msg = Msg {
    name: "CrossVersionObjectReference",
    fields: &[f!(1 "kind" Str), f!(2 "name" Str), f!(3 "apiVersion" Str)],
};

pub static HPA_V1_SPEC: Msg = Msg {
    name: "HorizontalPodAutoscalerSpec",
    fields: &[
        f!(1 "scaleTargetRef" Msg(&CROSS_VERSION_REF)),
        f!(2 "minReplicas" Int),
        f!(3 "maxReplicas" Int),
        f!(4 "targetCPUUtilizationPercentage" Int),
    ],
};

pub static HPA_V1_STATUS: Msg = Msg {
    name: "HorizontalPodAutoscalerStatus",
    fields: &[
        f!(1 "observedGeneration" Int),
        f!(2 "lastScaleTime" Time),
        f!(3 "currentReplicas" Int),
        f!(4 "desiredReplicas" Int),
        f!(5 "currentCPUUtilizationPercentage" Int),
    ],
};

/// autoscaling/v1, as `kubectl autoscale` sends it.
pub static HPA_V1: Msg = Msg {
    name: "HorizontalPodAutoscaler",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&HPA_V1_SPEC)),
        f!(3 "status" Msg(&HPA_V1_STATUS)),
    ],
};

/// metav1.Condition.
pub static CONDITION: Msg = Msg {
    name: "Condition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "observedGeneration" Int, omitempty),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};

pub static PDB_SPEC: Msg = Msg {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        f!(1 "minAvailable" IntOrString),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "maxUnavailable" IntOrString),
        f!(4 "unhealthyPodEvictionPolicy" Str),
    ],
};

/// What a client may send of a budget's status (the server keeps its own); disruptedPods,
/// a map of times, is not read.
pub static PDB_STATUS: Msg = Msg {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        f!(1 "observedGeneration" Int, omitempty),
        f!(3 "disruptionsAllowed" Int),
        f!(4 "currentHealthy" Int),
        f!(5 "desiredHealthy" Int),
        f!(6 "expectedPods" Int),
        f!(7 "conditions" [Msg(&CONDITION)]),
    ],
};

/// policy/v1, as `kubectl create poddisruptionbudget` sends it.
pub static PDB: Msg = Msg {
    name: "PodDisruptionBudget",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&PDB_SPEC)),
        f!(3 "status" Msg(&PDB_STATUS)),
    ],
};

pub static QUOTA_SPEC: Msg =
    Msg { name: "ResourceQuotaSpec", fields: &[f!(1 "hard" MapQuantity), f!(2 "scopes" [Str])] };

pub static QUOTA_STATUS: Msg = Msg {
    name: "ResourceQuotaStatus",
    fields: &[f!(1 "hard" MapQuantity), f!(2 "used" MapQuantity)],
};

/// core/v1, as `kubectl create quota` sends it.
pub static QUOTA: Msg = Msg {
    name: "ResourceQuota",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&QUOTA_SPEC)),
        f!(3 "status" Msg(&QUOTA_STATUS)),
    ],
};

pub static LIMIT_RANGE_ITEM: Msg = Msg {
    name: "LimitRangeItem",
    fields: &[
        f!(1 "type" Str),
        f!(2 "max" MapQuantity),
        f!(3 "min" MapQuantity),
        f!(4 "default" MapQuantity),
        f!(5 "defaultRequest" MapQuantity),
        f!(6 "maxLimitRequestRatio" MapQuantity),
    ],
};

pub static LIMIT_RANGE_SPEC: Msg =
    Msg { name: "LimitRangeSpec", fields: &[f!(1 "limits" [Msg(&LIMIT_RANGE_ITEM)])] };

pub static LIMIT_RANGE: Msg = Msg {
    name: "LimitRange",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&LIMIT_RANGE_SPEC))],
};

/// Kinds whose message differs between versions, by apiVersion and kind.
pub fn versioned(api_version: &str, kind: &str) -> Option<&'static Msg> {
    match (api_version, kind) {
        ("autoscaling/v1", "HorizontalPodAutoscaler") => Some(&HPA_V1),
        _ => None,
    }
}

/// The message of a top-level kind (by apiVersion group and kind).
pub fn top_level(kind: &str) -> Option<&'static Msg> {
    Some(match kind {
        "Namespace" => &NAMESPACE,
        "ConfigMap" => &CONFIG_MAP,
        "Secret" => &SECRET,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        "Role" => &ROLE,
        "ClusterRole" => &CLUSTER_ROLE,
        "RoleBinding" | "ClusterRoleBinding" => &ROLE_BINDING,
        "Pod" => &POD,
        "Deployment" => &DEPLOYMENT,
        "Job" => &JOB,
        "Service" => &SERVICE,
        "SelfSubjectAccessReview" => &SSAR,
        "SelfSubjectRulesReview" => &SSRR,
        "SelfSubjectReview" => &SSR,
        "CertificateSigningRequest" => &CSR,
        "TokenRequest" => &TOKEN_REQUEST,
        "DeleteOptions" => &DELETE_OPTIONS,
        "Eviction" => &EVICTION,
        "PodDisruptionBudget" => &PDB,
        "ResourceQuota" => &QUOTA,
        "LimitRange" => &LIMIT_RANGE,
        _ => return None,
    })
}
