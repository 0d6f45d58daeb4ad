//! policy/v1: PodDisruptionBudget (`kubectl create poddisruptionbudget`) and the Eviction
//! `kubectl drain` posts to pods/eviction.

use super::Ty::*;
use super::meta::{CONDITION, DELETE_OPTIONS, LABEL_SELECTOR, OBJECT_META};
use super::{Field, Msg};

pub static EVICTION: Msg = Msg {
    name: "Eviction",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "deleteOptions" Msg(&DELETE_OPTIONS))],
};

pub static POD_DISRUPTION_BUDGET: Msg = Msg {
    name: "PodDisruptionBudget",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&POD_DISRUPTION_BUDGET_SPEC)),
        f!(3 "status" Msg(&POD_DISRUPTION_BUDGET_STATUS)),
    ],
};

pub static POD_DISRUPTION_BUDGET_SPEC: Msg = Msg {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        f!(1 "minAvailable" IntOrString),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "maxUnavailable" IntOrString),
        f!(4 "unhealthyPodEvictionPolicy" Str),
    ],
};

pub static POD_DISRUPTION_BUDGET_STATUS: Msg = Msg {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        f!(1 "observedGeneration" Int, omitempty),
        f!(2 "disruptedPods" Map(&Time)),
        f!(3 "disruptionsAllowed" Int),
        f!(4 "currentHealthy" Int),
        f!(5 "desiredHealthy" Int),
        f!(6 "expectedPods" Int),
        f!(7 "conditions" [Msg(&CONDITION)]),
    ],
};
