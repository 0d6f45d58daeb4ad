//! Per-namespace resource limits: ResourceQuota (`kubectl create quota`) and LimitRange.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static RESOURCE_QUOTA: Msg = Msg {
    name: "ResourceQuota",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&RESOURCE_QUOTA_SPEC)),
        f!(3 "status" Msg(&RESOURCE_QUOTA_STATUS)),
    ],
};

pub static RESOURCE_QUOTA_SPEC: Msg = Msg {
    name: "ResourceQuotaSpec",
    fields: &[
        f!(1 "hard" Map(&Quantity)),
        f!(2 "scopes" [Str]),
        f!(3 "scopeSelector" Msg(&SCOPE_SELECTOR)),
    ],
};

pub static SCOPE_SELECTOR: Msg = Msg {
    name: "ScopeSelector",
    fields: &[f!(1 "matchExpressions" [Msg(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT)])],
};

pub static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Msg = Msg {
    name: "ScopedResourceSelectorRequirement",
    fields: &[f!(1 "scopeName" Str), f!(2 "operator" Str), f!(3 "values" [Str])],
};

pub static RESOURCE_QUOTA_STATUS: Msg = Msg {
    name: "ResourceQuotaStatus",
    fields: &[f!(1 "hard" Map(&Quantity)), f!(2 "used" Map(&Quantity))],
};

pub static LIMIT_RANGE: Msg = Msg {
    name: "LimitRange",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&LIMIT_RANGE_SPEC))],
};

pub static LIMIT_RANGE_SPEC: Msg =
    Msg { name: "LimitRangeSpec", fields: &[f!(1 "limits" [Msg(&LIMIT_RANGE_ITEM)])] };

pub static LIMIT_RANGE_ITEM: Msg = Msg {
    name: "LimitRangeItem",
    fields: &[
        f!(1 "type" Str),
        f!(2 "max" Map(&Quantity)),
        f!(3 "min" Map(&Quantity)),
        f!(4 "default" Map(&Quantity)),
        f!(5 "defaultRequest" Map(&Quantity)),
        f!(6 "maxLimitRequestRatio" Map(&Quantity)),
    ],
};
