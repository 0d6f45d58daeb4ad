//! authentication.k8s.io and authorization.k8s.io: `kubectl create token`, `kubectl auth
//! can-i`, `kubectl auth whoami`.

use super::Ty::*;
use super::meta::{FIELD_SELECTOR_REQUIREMENT, LABEL_SELECTOR_REQUIREMENT, OBJECT_META};
use super::{Field, Msg};

pub static TOKEN_REQUEST: Msg = Msg {
    name: "TokenRequest",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&TOKEN_REQUEST_SPEC)),
        f!(3 "status" Msg(&TOKEN_REQUEST_STATUS)),
    ],
};

pub static TOKEN_REQUEST_SPEC: Msg = Msg {
    name: "TokenRequestSpec",
    fields: &[
        f!(1 "audiences" [Str]),
        f!(4 "expirationSeconds" Int),
        f!(3 "boundObjectRef" Msg(&BOUND_OBJECT_REFERENCE)),
    ],
};

pub static BOUND_OBJECT_REFERENCE: Msg = Msg {
    name: "BoundObjectReference",
    fields: &[f!(1 "kind" Str), f!(2 "apiVersion" Str), f!(3 "name" Str), f!(4 "uid" Str)],
};

pub static TOKEN_REQUEST_STATUS: Msg = Msg {
    name: "TokenRequestStatus",
    fields: &[f!(1 "token" Str), f!(2 "expirationTimestamp" Time)],
};

pub static SELF_SUBJECT_ACCESS_REVIEW: Msg = Msg {
    name: "SelfSubjectAccessReview",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
    ],
};

pub static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Msg = Msg {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        f!(1 "resourceAttributes" Msg(&RESOURCE_ATTRIBUTES)),
        f!(2 "nonResourceAttributes" Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
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
        f!(8 "fieldSelector" Msg(&FIELD_SELECTOR_ATTRIBUTES)),
        f!(9 "labelSelector" Msg(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
};

pub static FIELD_SELECTOR_ATTRIBUTES: Msg = Msg {
    name: "FieldSelectorAttributes",
    fields: &[f!(1 "rawSelector" Str), f!(2 "requirements" [Msg(&FIELD_SELECTOR_REQUIREMENT)])],
};

pub static LABEL_SELECTOR_ATTRIBUTES: Msg = Msg {
    name: "LabelSelectorAttributes",
    fields: &[f!(1 "rawSelector" Str), f!(2 "requirements" [Msg(&LABEL_SELECTOR_REQUIREMENT)])],
};

pub static NON_RESOURCE_ATTRIBUTES: Msg =
    Msg { name: "NonResourceAttributes", fields: &[f!(1 "path" Str), f!(2 "verb" Str)] };

pub static SELF_SUBJECT_RULES_REVIEW: Msg = Msg {
    name: "SelfSubjectRulesReview",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
    ],
};

pub static SELF_SUBJECT_RULES_REVIEW_SPEC: Msg =
    Msg { name: "SelfSubjectRulesReviewSpec", fields: &[f!(1 "namespace" Str)] };

pub static SELF_SUBJECT_REVIEW: Msg =
    Msg { name: "SelfSubjectReview", fields: &[f!(1 "metadata" Msg(&OBJECT_META))] };

pub static SUBJECT_ACCESS_REVIEW: Msg = Msg {
    name: "SubjectAccessReview",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&SUBJECT_ACCESS_REVIEW_SPEC))],
};

pub static SUBJECT_ACCESS_REVIEW_SPEC: Msg = Msg {
    name: "SubjectAccessReviewSpec",
    fields: &[
        f!(1 "resourceAttributes" Msg(&RESOURCE_ATTRIBUTES)),
        f!(2 "nonResourceAttributes" Msg(&NON_RESOURCE_ATTRIBUTES)),
        f!(3 "user" Str),
        f!(4 "groups" [Str]),
        f!(5 "extra" Map(&StrList)),
        f!(6 "uid" Str),
    ],
};

pub static TOKEN_REVIEW: Msg = Msg {
    name: "TokenReview",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&TOKEN_REVIEW_SPEC))],
};

pub static TOKEN_REVIEW_SPEC: Msg =
    Msg { name: "TokenReviewSpec", fields: &[f!(1 "token" Str), f!(2 "audiences" [Str])] };
