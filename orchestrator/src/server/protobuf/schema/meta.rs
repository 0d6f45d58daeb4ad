//! meta/v1: object metadata, label selectors, conditions and delete options, shared by every
//! kind.

use super::Ty::*;
use super::{Field, Msg};

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
        f!(11 "labels" Map(&Str)),
        f!(12 "annotations" Map(&Str)),
        f!(13 "ownerReferences" [Msg(&OWNER_REFERENCE)]),
        f!(14 "finalizers" [Str]),
        f!(17 "managedFields" [ServerOwned]),
    ],
};

pub static OWNER_REFERENCE: Msg = Msg {
    name: "OwnerReference",
    fields: &[
        f!(5 "apiVersion" Str),
        f!(1 "kind" Str),
        f!(3 "name" Str),
        f!(4 "uid" Str),
        f!(6 "controller" Bool),
        f!(7 "blockOwnerDeletion" Bool),
    ],
};

pub static LABEL_SELECTOR: Msg = Msg {
    name: "LabelSelector",
    fields: &[
        f!(1 "matchLabels" Map(&Str)),
        f!(2 "matchExpressions" [Msg(&LABEL_SELECTOR_REQUIREMENT)]),
    ],
};

pub static LABEL_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "LabelSelectorRequirement",
    fields: &[f!(1 "key" Str), f!(2 "operator" Str), f!(3 "values" [Str])],
};

pub static DELETE_OPTIONS: Msg = Msg {
    name: "DeleteOptions",
    fields: &[
        f!(1 "gracePeriodSeconds" Int),
        f!(2 "preconditions" Msg(&PRECONDITIONS)),
        f!(3 "orphanDependents" Bool),
        f!(4 "propagationPolicy" Str),
        f!(5 "dryRun" [Str]),
        f!(6 "ignoreStoreReadErrorWithClusterBreakingPotential" Bool),
    ],
};

pub static PRECONDITIONS: Msg =
    Msg { name: "Preconditions", fields: &[f!(1 "uid" Str), f!(2 "resourceVersion" Str)] };

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

pub static FIELD_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "FieldSelectorRequirement",
    fields: &[f!(1 "key" Str), f!(2 "operator" Str), f!(3 "values" [Str])],
};
