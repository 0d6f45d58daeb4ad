//! core/v1 Service, as `kubectl create service` and `kubectl expose` send it.

use super::Ty::*;
use super::meta::CONDITION;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static SERVICE: Msg = Msg {
    name: "Service",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&SERVICE_SPEC)),
        f!(3 "status" Msg(&SERVICE_STATUS)),
    ],
};

pub static SERVICE_SPEC: Msg = Msg {
    name: "ServiceSpec",
    fields: &[
        f!(1 "ports" [Msg(&SERVICE_PORT)]),
        f!(2 "selector" Map(&Str)),
        f!(3 "clusterIP" Str),
        f!(18 "clusterIPs" [Str]),
        f!(4 "type" Str),
        f!(5 "externalIPs" [Str]),
        f!(7 "sessionAffinity" Str),
        f!(8 "loadBalancerIP" Str),
        f!(9 "loadBalancerSourceRanges" [Str]),
        f!(10 "externalName" Str),
        f!(11 "externalTrafficPolicy" Str),
        f!(12 "healthCheckNodePort" Int, omitempty),
        f!(13 "publishNotReadyAddresses" Bool, omitempty),
        f!(14 "sessionAffinityConfig" Msg(&SESSION_AFFINITY_CONFIG)),
        f!(19 "ipFamilies" [Str]),
        f!(17 "ipFamilyPolicy" Str),
        f!(20 "allocateLoadBalancerNodePorts" Bool),
        f!(21 "loadBalancerClass" Str),
        f!(22 "internalTrafficPolicy" Str),
        f!(23 "trafficDistribution" Str),
    ],
};

pub static SERVICE_PORT: Msg = Msg {
    name: "ServicePort",
    fields: &[
        f!(1 "name" Str),
        f!(2 "protocol" Str),
        f!(6 "appProtocol" Str),
        f!(3 "port" Int),
        f!(4 "targetPort" IntOrString),
        f!(5 "nodePort" Int, omitempty),
    ],
};

pub static SESSION_AFFINITY_CONFIG: Msg =
    Msg { name: "SessionAffinityConfig", fields: &[f!(1 "clientIP" Msg(&CLIENT_IP_CONFIG))] };

pub static CLIENT_IP_CONFIG: Msg =
    Msg { name: "ClientIPConfig", fields: &[f!(1 "timeoutSeconds" Int)] };

pub static SERVICE_STATUS: Msg = Msg {
    name: "ServiceStatus",
    fields: &[
        f!(1 "loadBalancer" Msg(&LOAD_BALANCER_STATUS)),
        f!(2 "conditions" [Msg(&CONDITION)]),
    ],
};

pub static LOAD_BALANCER_STATUS: Msg =
    Msg { name: "LoadBalancerStatus", fields: &[f!(1 "ingress" [Msg(&LOAD_BALANCER_INGRESS)])] };

pub static LOAD_BALANCER_INGRESS: Msg = Msg {
    name: "LoadBalancerIngress",
    fields: &[
        f!(1 "ip" Str),
        f!(2 "hostname" Str),
        f!(3 "ipMode" Str),
        f!(4 "ports" [Msg(&PORT_STATUS)]),
    ],
};

pub static PORT_STATUS: Msg = Msg {
    name: "PortStatus",
    fields: &[f!(1 "port" Int), f!(2 "protocol" Str), f!(3 "error" Str)],
};
