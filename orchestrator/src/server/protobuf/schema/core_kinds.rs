//! core/v1 kinds with small schemas (Namespace, ConfigMap, Secret, ServiceAccount) and the
//! object references the other tables share.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static LOCAL_OBJECT_REFERENCE: Msg =
    Msg { name: "LocalObjectReference", fields: &[f!(1 "name" Str)] };

pub static TYPED_LOCAL_OBJECT_REFERENCE: Msg = Msg {
    name: "TypedLocalObjectReference",
    fields: &[f!(1 "apiGroup" Str), f!(2 "kind" Str), f!(3 "name" Str)],
};

pub static TYPED_OBJECT_REFERENCE: Msg = Msg {
    name: "TypedObjectReference",
    fields: &[f!(1 "apiGroup" Str), f!(2 "kind" Str), f!(3 "name" Str), f!(4 "namespace" Str)],
};

pub static NAMESPACE: Msg = Msg {
    name: "Namespace",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&NAMESPACE_SPEC)),
        f!(3 "status" Msg(&NAMESPACE_STATUS)),
    ],
};

pub static NAMESPACE_SPEC: Msg = Msg { name: "NamespaceSpec", fields: &[f!(1 "finalizers" [Str])] };

pub static CONFIG_MAP: Msg = Msg {
    name: "ConfigMap",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(4 "immutable" Bool),
        f!(2 "data" Map(&Str)),
        f!(3 "binaryData" Map(&Bytes)),
    ],
};

pub static SECRET: Msg = Msg {
    name: "Secret",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(5 "immutable" Bool),
        f!(2 "data" Map(&Bytes)),
        f!(4 "stringData" Map(&Str)),
        f!(3 "type" Str),
    ],
};

pub static SERVICE_ACCOUNT: Msg = Msg {
    name: "ServiceAccount",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "secrets" [Msg(&OBJECT_REFERENCE)]),
        f!(3 "imagePullSecrets" [Msg(&LOCAL_OBJECT_REFERENCE)]),
        f!(4 "automountServiceAccountToken" Bool),
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

pub static NAMESPACE_STATUS: Msg = Msg {
    name: "NamespaceStatus",
    fields: &[f!(1 "phase" Str), f!(2 "conditions" [Msg(&NAMESPACE_CONDITION)])],
};

pub static NAMESPACE_CONDITION: Msg = Msg {
    name: "NamespaceCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};
