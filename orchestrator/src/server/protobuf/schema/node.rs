//! Nodes (spec, taints, the status their agents report) and node.k8s.io/v1 RuntimeClasses.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::placement::TOLERATION;
use super::{Field, Msg};

pub static NODE: Msg = Msg {
    name: "Node",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&NODE_SPEC)),
        f!(3 "status" Msg(&NODE_STATUS)),
    ],
};

pub static NODE_SPEC: Msg = Msg {
    name: "NodeSpec",
    fields: &[
        f!(1 "podCIDR" Str),
        f!(7 "podCIDRs" [Str]),
        f!(3 "providerID" Str),
        f!(4 "unschedulable" Bool, omitempty),
        f!(5 "taints" [Msg(&TAINT)]),
        f!(6 "configSource" Msg(&NODE_CONFIG_SOURCE)),
        f!(2 "externalID" Str),
    ],
};

pub static TAINT: Msg = Msg {
    name: "Taint",
    fields: &[f!(1 "key" Str), f!(2 "value" Str), f!(3 "effect" Str), f!(4 "timeAdded" Time)],
};

pub static NODE_CONFIG_SOURCE: Msg = Msg {
    name: "NodeConfigSource",
    fields: &[f!(2 "configMap" Msg(&CONFIG_MAP_NODE_CONFIG_SOURCE))],
};

pub static CONFIG_MAP_NODE_CONFIG_SOURCE: Msg = Msg {
    name: "ConfigMapNodeConfigSource",
    fields: &[
        f!(1 "namespace" Str),
        f!(2 "name" Str),
        f!(3 "uid" Str),
        f!(4 "resourceVersion" Str),
        f!(5 "kubeletConfigKey" Str),
    ],
};

pub static NODE_STATUS: Msg = Msg {
    name: "NodeStatus",
    fields: &[
        f!(1 "capacity" Map(&Quantity)),
        f!(2 "allocatable" Map(&Quantity)),
        f!(3 "phase" Str),
        f!(4 "conditions" [Msg(&NODE_CONDITION)]),
        f!(5 "addresses" [Msg(&NODE_ADDRESS)]),
        f!(6 "daemonEndpoints" Msg(&NODE_DAEMON_ENDPOINTS)),
        f!(7 "nodeInfo" Msg(&NODE_SYSTEM_INFO)),
        f!(8 "images" [Msg(&CONTAINER_IMAGE)]),
        f!(9 "volumesInUse" [Str]),
        f!(10 "volumesAttached" [Msg(&ATTACHED_VOLUME)]),
        f!(11 "config" Msg(&NODE_CONFIG_STATUS)),
        f!(12 "runtimeHandlers" [Msg(&NODE_RUNTIME_HANDLER)]),
        f!(13 "features" Msg(&NODE_FEATURES)),
    ],
};

pub static NODE_CONDITION: Msg = Msg {
    name: "NodeCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastHeartbeatTime" Time),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};

pub static NODE_ADDRESS: Msg =
    Msg { name: "NodeAddress", fields: &[f!(1 "type" Str), f!(2 "address" Str)] };

pub static NODE_DAEMON_ENDPOINTS: Msg =
    Msg { name: "NodeDaemonEndpoints", fields: &[f!(1 "kubeletEndpoint" Msg(&DAEMON_ENDPOINT))] };

pub static DAEMON_ENDPOINT: Msg = Msg { name: "DaemonEndpoint", fields: &[f!(1 "Port" Int)] };

pub static NODE_SYSTEM_INFO: Msg = Msg {
    name: "NodeSystemInfo",
    fields: &[
        f!(1 "machineID" Str),
        f!(2 "systemUUID" Str),
        f!(3 "bootID" Str),
        f!(4 "kernelVersion" Str),
        f!(5 "osImage" Str),
        f!(6 "containerRuntimeVersion" Str),
        f!(7 "kubeletVersion" Str),
        f!(8 "kubeProxyVersion" Str),
        f!(9 "operatingSystem" Str),
        f!(10 "architecture" Str),
    ],
};

pub static CONTAINER_IMAGE: Msg = Msg {
    name: "ContainerImage",
    fields: &[f!(1 "names" [Str]), f!(2 "sizeBytes" Int, omitempty)],
};

pub static ATTACHED_VOLUME: Msg =
    Msg { name: "AttachedVolume", fields: &[f!(1 "name" Str), f!(2 "devicePath" Str)] };

pub static NODE_CONFIG_STATUS: Msg = Msg {
    name: "NodeConfigStatus",
    fields: &[
        f!(1 "assigned" Msg(&NODE_CONFIG_SOURCE)),
        f!(2 "active" Msg(&NODE_CONFIG_SOURCE)),
        f!(3 "lastKnownGood" Msg(&NODE_CONFIG_SOURCE)),
        f!(4 "error" Str),
    ],
};

pub static NODE_RUNTIME_HANDLER: Msg = Msg {
    name: "NodeRuntimeHandler",
    fields: &[f!(1 "name" Str), f!(2 "features" Msg(&NODE_RUNTIME_HANDLER_FEATURES))],
};

pub static NODE_RUNTIME_HANDLER_FEATURES: Msg = Msg {
    name: "NodeRuntimeHandlerFeatures",
    fields: &[f!(1 "recursiveReadOnlyMounts" Bool), f!(2 "userNamespaces" Bool)],
};

pub static NODE_FEATURES: Msg =
    Msg { name: "NodeFeatures", fields: &[f!(1 "supplementalGroupsPolicy" Bool)] };

pub static RUNTIME_CLASS: Msg = Msg {
    name: "RuntimeClass",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "handler" Str),
        f!(3 "overhead" Msg(&OVERHEAD)),
        f!(4 "scheduling" Msg(&SCHEDULING)),
    ],
};

pub static OVERHEAD: Msg = Msg { name: "Overhead", fields: &[f!(1 "podFixed" Map(&Quantity))] };

pub static SCHEDULING: Msg = Msg {
    name: "Scheduling",
    fields: &[f!(1 "nodeSelector" Map(&Str)), f!(2 "tolerations" [Msg(&TOLERATION)])],
};
