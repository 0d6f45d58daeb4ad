//! autoscaling/v1 HorizontalPodAutoscaler, as `kubectl autoscale` sends it.

use super::Ty::*;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
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

pub static HORIZONTAL_POD_AUTOSCALER_V2: Msg = Msg {
    name: "HorizontalPodAutoscaler",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&HORIZONTAL_POD_AUTOSCALER_SPEC_V2)),
        f!(3 "status" Msg(&HORIZONTAL_POD_AUTOSCALER_STATUS_V2)),
    ],
};

pub static HORIZONTAL_POD_AUTOSCALER_SPEC_V2: Msg = Msg {
    name: "HorizontalPodAutoscalerSpec",
    fields: &[
        f!(1 "scaleTargetRef" Msg(&CROSS_VERSION_OBJECT_REFERENCE_V2)),
        f!(2 "minReplicas" Int),
        f!(3 "maxReplicas" Int),
        f!(4 "metrics" [Msg(&METRIC_SPEC_V2)]),
        f!(5 "behavior" Msg(&HORIZONTAL_POD_AUTOSCALER_BEHAVIOR)),
    ],
};

pub static CROSS_VERSION_OBJECT_REFERENCE_V2: Msg = Msg {
    name: "CrossVersionObjectReference",
    fields: &[f!(1 "kind" Str), f!(2 "name" Str), f!(3 "apiVersion" Str)],
};

pub static METRIC_SPEC_V2: Msg = Msg {
    name: "MetricSpec",
    fields: &[
        f!(1 "type" Str),
        f!(2 "object" Msg(&OBJECT_METRIC_SOURCE_V2)),
        f!(3 "pods" Msg(&PODS_METRIC_SOURCE_V2)),
        f!(4 "resource" Msg(&RESOURCE_METRIC_SOURCE_V2)),
        f!(7 "containerResource" Msg(&CONTAINER_RESOURCE_METRIC_SOURCE_V2)),
        f!(5 "external" Msg(&EXTERNAL_METRIC_SOURCE_V2)),
    ],
};

pub static OBJECT_METRIC_SOURCE_V2: Msg = Msg {
    name: "ObjectMetricSource",
    fields: &[
        f!(1 "describedObject" Msg(&CROSS_VERSION_OBJECT_REFERENCE_V2)),
        f!(2 "target" Msg(&METRIC_TARGET)),
        f!(3 "metric" Msg(&METRIC_IDENTIFIER)),
    ],
};

pub static METRIC_TARGET: Msg = Msg {
    name: "MetricTarget",
    fields: &[
        f!(1 "type" Str),
        f!(2 "value" Quantity),
        f!(3 "averageValue" Quantity),
        f!(4 "averageUtilization" Int),
    ],
};

pub static METRIC_IDENTIFIER: Msg = Msg {
    name: "MetricIdentifier",
    fields: &[f!(1 "name" Str), f!(2 "selector" Msg(&LABEL_SELECTOR))],
};

pub static PODS_METRIC_SOURCE_V2: Msg = Msg {
    name: "PodsMetricSource",
    fields: &[f!(1 "metric" Msg(&METRIC_IDENTIFIER)), f!(2 "target" Msg(&METRIC_TARGET))],
};

pub static RESOURCE_METRIC_SOURCE_V2: Msg = Msg {
    name: "ResourceMetricSource",
    fields: &[f!(1 "name" Str), f!(2 "target" Msg(&METRIC_TARGET))],
};

pub static CONTAINER_RESOURCE_METRIC_SOURCE_V2: Msg = Msg {
    name: "ContainerResourceMetricSource",
    fields: &[f!(1 "name" Str), f!(2 "target" Msg(&METRIC_TARGET)), f!(3 "container" Str)],
};

pub static EXTERNAL_METRIC_SOURCE_V2: Msg = Msg {
    name: "ExternalMetricSource",
    fields: &[f!(1 "metric" Msg(&METRIC_IDENTIFIER)), f!(2 "target" Msg(&METRIC_TARGET))],
};

pub static HORIZONTAL_POD_AUTOSCALER_BEHAVIOR: Msg = Msg {
    name: "HorizontalPodAutoscalerBehavior",
    fields: &[f!(1 "scaleUp" Msg(&HPA_SCALING_RULES)), f!(2 "scaleDown" Msg(&HPA_SCALING_RULES))],
};

pub static HPA_SCALING_RULES: Msg = Msg {
    name: "HPAScalingRules",
    fields: &[
        f!(3 "stabilizationWindowSeconds" Int),
        f!(1 "selectPolicy" Str),
        f!(2 "policies" [Msg(&HPA_SCALING_POLICY)]),
    ],
};

pub static HPA_SCALING_POLICY: Msg = Msg {
    name: "HPAScalingPolicy",
    fields: &[f!(1 "type" Str), f!(2 "value" Int), f!(3 "periodSeconds" Int)],
};

pub static HORIZONTAL_POD_AUTOSCALER_STATUS_V2: Msg = Msg {
    name: "HorizontalPodAutoscalerStatus",
    fields: &[
        f!(1 "observedGeneration" Int),
        f!(2 "lastScaleTime" Time),
        f!(3 "currentReplicas" Int, omitempty),
        f!(4 "desiredReplicas" Int),
        f!(5 "currentMetrics" [Msg(&METRIC_STATUS_V2)]),
        f!(6 "conditions" [Msg(&HORIZONTAL_POD_AUTOSCALER_CONDITION_V2)]),
    ],
};

pub static METRIC_STATUS_V2: Msg = Msg {
    name: "MetricStatus",
    fields: &[
        f!(1 "type" Str),
        f!(2 "object" Msg(&OBJECT_METRIC_STATUS_V2)),
        f!(3 "pods" Msg(&PODS_METRIC_STATUS_V2)),
        f!(4 "resource" Msg(&RESOURCE_METRIC_STATUS_V2)),
        f!(7 "containerResource" Msg(&CONTAINER_RESOURCE_METRIC_STATUS_V2)),
        f!(5 "external" Msg(&EXTERNAL_METRIC_STATUS_V2)),
    ],
};

pub static OBJECT_METRIC_STATUS_V2: Msg = Msg {
    name: "ObjectMetricStatus",
    fields: &[
        f!(1 "metric" Msg(&METRIC_IDENTIFIER)),
        f!(2 "current" Msg(&METRIC_VALUE_STATUS)),
        f!(3 "describedObject" Msg(&CROSS_VERSION_OBJECT_REFERENCE_V2)),
    ],
};

pub static METRIC_VALUE_STATUS: Msg = Msg {
    name: "MetricValueStatus",
    fields: &[
        f!(1 "value" Quantity),
        f!(2 "averageValue" Quantity),
        f!(3 "averageUtilization" Int),
    ],
};

pub static PODS_METRIC_STATUS_V2: Msg = Msg {
    name: "PodsMetricStatus",
    fields: &[f!(1 "metric" Msg(&METRIC_IDENTIFIER)), f!(2 "current" Msg(&METRIC_VALUE_STATUS))],
};

pub static RESOURCE_METRIC_STATUS_V2: Msg = Msg {
    name: "ResourceMetricStatus",
    fields: &[f!(1 "name" Str), f!(2 "current" Msg(&METRIC_VALUE_STATUS))],
};

pub static CONTAINER_RESOURCE_METRIC_STATUS_V2: Msg = Msg {
    name: "ContainerResourceMetricStatus",
    fields: &[f!(1 "name" Str), f!(2 "current" Msg(&METRIC_VALUE_STATUS)), f!(3 "container" Str)],
};

pub static EXTERNAL_METRIC_STATUS_V2: Msg = Msg {
    name: "ExternalMetricStatus",
    fields: &[f!(1 "metric" Msg(&METRIC_IDENTIFIER)), f!(2 "current" Msg(&METRIC_VALUE_STATUS))],
};

pub static HORIZONTAL_POD_AUTOSCALER_CONDITION_V2: Msg = Msg {
    name: "HorizontalPodAutoscalerCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};

/// autoscaling/v1 Scale, the scale subresource's body (client-go's UpdateScale).
pub static SCALE: Msg = Msg {
    name: "Scale",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&SCALE_SPEC)),
        f!(3 "status" Msg(&SCALE_STATUS)),
    ],
};

/// Its replicas are a Go value tagged omitempty; a zero on the wire is kept as 0 (a scale to
/// zero), which is also what an absent count means to the server.
pub static SCALE_SPEC: Msg = Msg { name: "ScaleSpec", fields: &[f!(1 "replicas" Int)] };

pub static SCALE_STATUS: Msg =
    Msg { name: "ScaleStatus", fields: &[f!(1 "replicas" Int), f!(2 "selector" Str)] };
