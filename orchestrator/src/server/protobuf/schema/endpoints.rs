//! Where a Service's backends are: core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlices.

use super::Ty::*;
use super::core_kinds::OBJECT_REFERENCE;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static ENDPOINTS: Msg = Msg {
    name: "Endpoints",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "subsets" [Msg(&ENDPOINT_SUBSET)])],
};

pub static ENDPOINT_SUBSET: Msg = Msg {
    name: "EndpointSubset",
    fields: &[
        f!(1 "addresses" [Msg(&ENDPOINT_ADDRESS)]),
        f!(2 "notReadyAddresses" [Msg(&ENDPOINT_ADDRESS)]),
        f!(3 "ports" [Msg(&ENDPOINT_PORT)]),
    ],
};

pub static ENDPOINT_ADDRESS: Msg = Msg {
    name: "EndpointAddress",
    fields: &[
        f!(1 "ip" Str),
        f!(3 "hostname" Str),
        f!(4 "nodeName" Str),
        f!(2 "targetRef" Msg(&OBJECT_REFERENCE)),
    ],
};

pub static ENDPOINT_PORT: Msg = Msg {
    name: "EndpointPort",
    fields: &[f!(1 "name" Str), f!(2 "port" Int), f!(3 "protocol" Str), f!(4 "appProtocol" Str)],
};

pub static ENDPOINT_SLICE: Msg = Msg {
    name: "EndpointSlice",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(4 "addressType" Str),
        f!(2 "endpoints" [Msg(&ENDPOINT)]),
        f!(3 "ports" [Msg(&DISCOVERY_ENDPOINT_PORT)]),
    ],
};

pub static ENDPOINT: Msg = Msg {
    name: "Endpoint",
    fields: &[
        f!(1 "addresses" [Str]),
        f!(2 "conditions" Msg(&ENDPOINT_CONDITIONS)),
        f!(3 "hostname" Str),
        f!(4 "targetRef" Msg(&OBJECT_REFERENCE)),
        f!(5 "deprecatedTopology" Map(&Str)),
        f!(6 "nodeName" Str),
        f!(7 "zone" Str),
        f!(8 "hints" Msg(&ENDPOINT_HINTS)),
    ],
};

pub static ENDPOINT_CONDITIONS: Msg = Msg {
    name: "EndpointConditions",
    fields: &[f!(1 "ready" Bool), f!(2 "serving" Bool), f!(3 "terminating" Bool)],
};

pub static ENDPOINT_HINTS: Msg =
    Msg { name: "EndpointHints", fields: &[f!(1 "forZones" [Msg(&FOR_ZONE)])] };

pub static FOR_ZONE: Msg = Msg { name: "ForZone", fields: &[f!(1 "name" Str)] };

pub static DISCOVERY_ENDPOINT_PORT: Msg = Msg {
    name: "EndpointPort",
    fields: &[f!(1 "name" Str), f!(2 "protocol" Str), f!(3 "port" Int), f!(4 "appProtocol" Str)],
};
