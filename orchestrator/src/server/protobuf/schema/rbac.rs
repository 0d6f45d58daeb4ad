//! rbac.authorization.k8s.io/v1 roles and bindings (`kubectl create role|clusterrole|
//! rolebinding|clusterrolebinding`).

use super::Ty::*;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::{Field, Msg};

pub static ROLE: Msg = Msg {
    name: "Role",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "rules" [Msg(&POLICY_RULE)])],
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

pub static CLUSTER_ROLE: Msg = Msg {
    name: "ClusterRole",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "rules" [Msg(&POLICY_RULE)]),
        f!(3 "aggregationRule" Msg(&AGGREGATION_RULE)),
    ],
};

pub static AGGREGATION_RULE: Msg =
    Msg { name: "AggregationRule", fields: &[f!(1 "clusterRoleSelectors" [Msg(&LABEL_SELECTOR)])] };

pub static ROLE_BINDING: Msg = Msg {
    name: "RoleBinding",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "subjects" [Msg(&SUBJECT)]),
        f!(3 "roleRef" Msg(&ROLE_REF)),
    ],
};

pub static SUBJECT: Msg = Msg {
    name: "Subject",
    fields: &[f!(1 "kind" Str), f!(2 "apiGroup" Str), f!(3 "name" Str), f!(4 "namespace" Str)],
};

pub static ROLE_REF: Msg =
    Msg { name: "RoleRef", fields: &[f!(1 "apiGroup" Str), f!(2 "kind" Str), f!(3 "name" Str)] };

/// The same fields as a RoleBinding.
pub static CLUSTER_ROLE_BINDING: Msg =
    Msg { name: "ClusterRoleBinding", fields: ROLE_BINDING.fields };
