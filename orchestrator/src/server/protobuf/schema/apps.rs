//! apps/v1 Deployment, as `kubectl create deployment` sends it.

use super::Ty::*;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::pod::POD_TEMPLATE_SPEC;
use super::{Field, Msg};

pub static DEPLOYMENT: Msg = Msg {
    name: "Deployment",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&DEPLOYMENT_SPEC)),
        f!(3 "status" Msg(&DEPLOYMENT_STATUS)),
    ],
};

pub static DEPLOYMENT_SPEC: Msg = Msg {
    name: "DeploymentSpec",
    fields: &[
        f!(1 "replicas" Int),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(4 "strategy" Msg(&DEPLOYMENT_STRATEGY)),
        f!(5 "minReadySeconds" Int, omitempty),
        f!(6 "revisionHistoryLimit" Int),
        f!(7 "paused" Bool, omitempty),
        f!(9 "progressDeadlineSeconds" Int),
    ],
};

pub static DEPLOYMENT_STRATEGY: Msg = Msg {
    name: "DeploymentStrategy",
    fields: &[f!(1 "type" Str), f!(2 "rollingUpdate" Msg(&ROLLING_UPDATE_DEPLOYMENT))],
};

pub static ROLLING_UPDATE_DEPLOYMENT: Msg = Msg {
    name: "RollingUpdateDeployment",
    fields: &[f!(1 "maxUnavailable" IntOrString), f!(2 "maxSurge" IntOrString)],
};

pub static DEPLOYMENT_STATUS: Msg = Msg {
    name: "DeploymentStatus",
    fields: &[
        f!(1 "observedGeneration" Int, omitempty),
        f!(2 "replicas" Int, omitempty),
        f!(3 "updatedReplicas" Int, omitempty),
        f!(7 "readyReplicas" Int, omitempty),
        f!(4 "availableReplicas" Int, omitempty),
        f!(5 "unavailableReplicas" Int, omitempty),
        f!(6 "conditions" [Msg(&DEPLOYMENT_CONDITION)]),
        f!(8 "collisionCount" Int),
    ],
};

pub static DEPLOYMENT_CONDITION: Msg = Msg {
    name: "DeploymentCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(6 "lastUpdateTime" Time),
        f!(7 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};
