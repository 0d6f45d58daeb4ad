//! coordination.k8s.io/v1 Lease, the lock leader elections and node heartbeats hold.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static LEASE: Msg = Msg {
    name: "Lease",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&LEASE_SPEC))],
};

pub static LEASE_SPEC: Msg = Msg {
    name: "LeaseSpec",
    fields: &[
        f!(1 "holderIdentity" Str),
        f!(2 "leaseDurationSeconds" Int),
        f!(3 "acquireTime" MicroTime),
        f!(4 "renewTime" MicroTime),
        f!(5 "leaseTransitions" Int),
        f!(6 "strategy" Str),
        f!(7 "preferredHolder" Str),
    ],
};
