//! Pod, PodTemplate and the PodSpec every workload embeds (`kubectl run`, `kubectl debug`
//! node pods and `--copy-to` copies, the templates of deployments and jobs).

use super::Ty::*;
use super::container::{CONTAINER, EPHEMERAL_CONTAINER, RESOURCE_REQUIREMENTS};
use super::core_kinds::{LOCAL_OBJECT_REFERENCE, OBJECT_REFERENCE};
use super::meta::OBJECT_META;
use super::placement::{AFFINITY, TOLERATION, TOPOLOGY_SPREAD_CONSTRAINT};
use super::pod_status::POD_STATUS;
use super::security::POD_SECURITY_CONTEXT;
use super::volume::VOLUME;
use super::{Field, Msg};

pub static POD: Msg = Msg {
    name: "Pod",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&POD_SPEC)),
        f!(3 "status" Msg(&POD_STATUS)),
    ],
};

pub static POD_SPEC: Msg = Msg {
    name: "PodSpec",
    fields: &[
        f!(1 "volumes" [Msg(&VOLUME)]),
        f!(20 "initContainers" [Msg(&CONTAINER)]),
        f!(2 "containers" [Msg(&CONTAINER)]),
        f!(34 "ephemeralContainers" [Msg(&EPHEMERAL_CONTAINER)]),
        f!(3 "restartPolicy" Str),
        f!(4 "terminationGracePeriodSeconds" Int),
        f!(5 "activeDeadlineSeconds" Int),
        f!(6 "dnsPolicy" Str),
        f!(7 "nodeSelector" Map(&Str)),
        f!(8 "serviceAccountName" Str),
        f!(9 "serviceAccount" Str),
        f!(21 "automountServiceAccountToken" Bool),
        f!(10 "nodeName" Str),
        f!(11 "hostNetwork" Bool, omitempty),
        f!(12 "hostPID" Bool, omitempty),
        f!(13 "hostIPC" Bool, omitempty),
        f!(27 "shareProcessNamespace" Bool),
        f!(14 "securityContext" Msg(&POD_SECURITY_CONTEXT)),
        f!(15 "imagePullSecrets" [Msg(&LOCAL_OBJECT_REFERENCE)]),
        f!(16 "hostname" Str),
        f!(17 "subdomain" Str),
        f!(18 "affinity" Msg(&AFFINITY)),
        f!(19 "schedulerName" Str),
        f!(22 "tolerations" [Msg(&TOLERATION)]),
        f!(23 "hostAliases" [Msg(&HOST_ALIAS)]),
        f!(24 "priorityClassName" Str),
        f!(25 "priority" Int),
        f!(26 "dnsConfig" Msg(&POD_DNS_CONFIG)),
        f!(28 "readinessGates" [Msg(&POD_READINESS_GATE)]),
        f!(29 "runtimeClassName" Str),
        f!(30 "enableServiceLinks" Bool),
        f!(31 "preemptionPolicy" Str),
        f!(32 "overhead" Map(&Quantity)),
        f!(33 "topologySpreadConstraints" [Msg(&TOPOLOGY_SPREAD_CONSTRAINT)]),
        f!(35 "setHostnameAsFQDN" Bool),
        f!(36 "os" Msg(&POD_OS)),
        f!(37 "hostUsers" Bool),
        f!(38 "schedulingGates" [Msg(&POD_SCHEDULING_GATE)]),
        f!(39 "resourceClaims" [Msg(&POD_RESOURCE_CLAIM)]),
        f!(40 "resources" Msg(&RESOURCE_REQUIREMENTS)),
    ],
};

pub static HOST_ALIAS: Msg =
    Msg { name: "HostAlias", fields: &[f!(1 "ip" Str), f!(2 "hostnames" [Str])] };

pub static POD_DNS_CONFIG: Msg = Msg {
    name: "PodDNSConfig",
    fields: &[
        f!(1 "nameservers" [Str]),
        f!(2 "searches" [Str]),
        f!(3 "options" [Msg(&POD_DNS_CONFIG_OPTION)]),
    ],
};

pub static POD_DNS_CONFIG_OPTION: Msg =
    Msg { name: "PodDNSConfigOption", fields: &[f!(1 "name" Str), f!(2 "value" Str)] };

pub static POD_READINESS_GATE: Msg =
    Msg { name: "PodReadinessGate", fields: &[f!(1 "conditionType" Str)] };

pub static POD_OS: Msg = Msg { name: "PodOS", fields: &[f!(1 "name" Str)] };

pub static POD_SCHEDULING_GATE: Msg =
    Msg { name: "PodSchedulingGate", fields: &[f!(1 "name" Str)] };

pub static POD_RESOURCE_CLAIM: Msg = Msg {
    name: "PodResourceClaim",
    fields: &[
        f!(1 "name" Str),
        f!(3 "resourceClaimName" Str),
        f!(4 "resourceClaimTemplateName" Str),
    ],
};

pub static POD_TEMPLATE_SPEC: Msg = Msg {
    name: "PodTemplateSpec",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&POD_SPEC))],
};

pub static POD_TEMPLATE: Msg = Msg {
    name: "PodTemplate",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "template" Msg(&POD_TEMPLATE_SPEC))],
};

/// A pod's node as its scheduler chose it (pods/binding).
pub static BINDING: Msg = Msg {
    name: "Binding",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "target" Msg(&OBJECT_REFERENCE))],
};
