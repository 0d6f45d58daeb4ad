//! networking.k8s.io/v1 Ingress, as `kubectl create ingress` sends it.

use super::Ty::*;
use super::core_kinds::TYPED_LOCAL_OBJECT_REFERENCE;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::{Field, Msg};

pub static INGRESS: Msg = Msg {
    name: "Ingress",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&INGRESS_SPEC)),
        f!(3 "status" Msg(&INGRESS_STATUS)),
    ],
};

pub static INGRESS_SPEC: Msg = Msg {
    name: "IngressSpec",
    fields: &[
        f!(4 "ingressClassName" Str),
        f!(1 "defaultBackend" Msg(&INGRESS_BACKEND)),
        f!(2 "tls" [Msg(&INGRESS_TLS)]),
        f!(3 "rules" [Msg(&INGRESS_RULE)]),
    ],
};

pub static INGRESS_BACKEND: Msg = Msg {
    name: "IngressBackend",
    fields: &[
        f!(4 "service" Msg(&INGRESS_SERVICE_BACKEND)),
        f!(3 "resource" Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
    ],
};

pub static INGRESS_SERVICE_BACKEND: Msg = Msg {
    name: "IngressServiceBackend",
    fields: &[f!(1 "name" Str), f!(2 "port" Msg(&SERVICE_BACKEND_PORT))],
};

pub static SERVICE_BACKEND_PORT: Msg =
    Msg { name: "ServiceBackendPort", fields: &[f!(1 "name" Str), f!(2 "number" Int, omitempty)] };

pub static INGRESS_TLS: Msg =
    Msg { name: "IngressTLS", fields: &[f!(1 "hosts" [Str]), f!(2 "secretName" Str)] };

pub static INGRESS_RULE: Msg = Msg {
    name: "IngressRule",
    fields: &[f!(1 "host" Str), f!(2 "ingressRuleValue" Inline(&INGRESS_RULE_VALUE))],
};

pub static INGRESS_RULE_VALUE: Msg =
    Msg { name: "IngressRuleValue", fields: &[f!(1 "http" Msg(&HTTP_INGRESS_RULE_VALUE))] };

pub static HTTP_INGRESS_RULE_VALUE: Msg =
    Msg { name: "HTTPIngressRuleValue", fields: &[f!(1 "paths" [Msg(&HTTP_INGRESS_PATH)])] };

pub static HTTP_INGRESS_PATH: Msg = Msg {
    name: "HTTPIngressPath",
    fields: &[f!(1 "path" Str), f!(3 "pathType" Str), f!(2 "backend" Msg(&INGRESS_BACKEND))],
};

pub static INGRESS_STATUS: Msg = Msg {
    name: "IngressStatus",
    fields: &[f!(1 "loadBalancer" Msg(&INGRESS_LOAD_BALANCER_STATUS))],
};

pub static INGRESS_LOAD_BALANCER_STATUS: Msg = Msg {
    name: "IngressLoadBalancerStatus",
    fields: &[f!(1 "ingress" [Msg(&INGRESS_LOAD_BALANCER_INGRESS)])],
};

pub static INGRESS_LOAD_BALANCER_INGRESS: Msg = Msg {
    name: "IngressLoadBalancerIngress",
    fields: &[f!(1 "ip" Str), f!(2 "hostname" Str), f!(4 "ports" [Msg(&INGRESS_PORT_STATUS)])],
};

pub static INGRESS_PORT_STATUS: Msg = Msg {
    name: "IngressPortStatus",
    fields: &[f!(1 "port" Int), f!(2 "protocol" Str), f!(3 "error" Str)],
};

pub static INGRESS_CLASS: Msg = Msg {
    name: "IngressClass",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&INGRESS_CLASS_SPEC))],
};

pub static INGRESS_CLASS_SPEC: Msg = Msg {
    name: "IngressClassSpec",
    fields: &[f!(1 "controller" Str), f!(2 "parameters" Msg(&INGRESS_CLASS_PARAMETERS_REFERENCE))],
};

pub static INGRESS_CLASS_PARAMETERS_REFERENCE: Msg = Msg {
    name: "IngressClassParametersReference",
    fields: &[
        f!(1 "apiGroup" Str),
        f!(2 "kind" Str),
        f!(3 "name" Str),
        f!(4 "scope" Str),
        f!(5 "namespace" Str),
    ],
};

pub static NETWORK_POLICY: Msg = Msg {
    name: "NetworkPolicy",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&NETWORK_POLICY_SPEC))],
};

pub static NETWORK_POLICY_SPEC: Msg = Msg {
    name: "NetworkPolicySpec",
    fields: &[
        f!(1 "podSelector" Msg(&LABEL_SELECTOR)),
        f!(2 "ingress" [Msg(&NETWORK_POLICY_INGRESS_RULE)]),
        f!(3 "egress" [Msg(&NETWORK_POLICY_EGRESS_RULE)]),
        f!(4 "policyTypes" [Str]),
    ],
};

pub static NETWORK_POLICY_INGRESS_RULE: Msg = Msg {
    name: "NetworkPolicyIngressRule",
    fields: &[f!(1 "ports" [Msg(&NETWORK_POLICY_PORT)]), f!(2 "from" [Msg(&NETWORK_POLICY_PEER)])],
};

pub static NETWORK_POLICY_PORT: Msg = Msg {
    name: "NetworkPolicyPort",
    fields: &[f!(1 "protocol" Str), f!(2 "port" IntOrString), f!(3 "endPort" Int)],
};

pub static NETWORK_POLICY_PEER: Msg = Msg {
    name: "NetworkPolicyPeer",
    fields: &[
        f!(1 "podSelector" Msg(&LABEL_SELECTOR)),
        f!(2 "namespaceSelector" Msg(&LABEL_SELECTOR)),
        f!(3 "ipBlock" Msg(&IP_BLOCK)),
    ],
};

pub static IP_BLOCK: Msg =
    Msg { name: "IPBlock", fields: &[f!(1 "cidr" Str), f!(2 "except" [Str])] };

pub static NETWORK_POLICY_EGRESS_RULE: Msg = Msg {
    name: "NetworkPolicyEgressRule",
    fields: &[f!(1 "ports" [Msg(&NETWORK_POLICY_PORT)]), f!(2 "to" [Msg(&NETWORK_POLICY_PEER)])],
};
