//! autoscaling/v1 HorizontalPodAutoscaler, as `kubectl autoscale` sends it.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static HORIZONTAL_POD_AUTOSCALER: Msg = Msg {
    name: "HorizontalPodAutoscaler",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&HORIZONTAL_POD_AUTOSCALER_SPEC)),
        f!(3 "status" Msg(&HORIZONTAL_POD_AUTOSCALER_STATUS)),
    ],
};

pub static HORIZONTAL_POD_AUTOSCALER_SPEC: Msg = Msg {
    name: "HorizontalPodAutoscalerSpec",
    fields: &[
        f!(1 "scaleTargetRef" Msg(&CROSS_VERSION_OBJECT_REFERENCE)),
        f!(2 "minReplicas" Int),
        f!(3 "maxReplicas" Int),
        f!(4 "targetCPUUtilizationPercentage" Int),
    ],
};

pub static CROSS_VERSION_OBJECT_REFERENCE: Msg = Msg {
    name: "CrossVersionObjectReference",
    fields: &[f!(1 "kind" Str), f!(2 "name" Str), f!(3 "apiVersion" Str)],
};

pub static HORIZONTAL_POD_AUTOSCALER_STATUS: Msg = Msg {
    name: "HorizontalPodAutoscalerStatus",
    fields: &[
        f!(1 "observedGeneration" Int),
        f!(2 "lastScaleTime" Time),
        f!(3 "currentReplicas" Int),
        f!(4 "desiredReplicas" Int),
        f!(5 "currentCPUUtilizationPercentage" Int),
    ],
};
