//! apps/v1 Deployment, as `kubectl create deployment` sends it.

use super::Ty::*;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::pod::POD_TEMPLATE_SPEC;
use super::storage::PERSISTENT_VOLUME_CLAIM;
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

pub static REPLICA_SET: Msg = Msg {
    name: "ReplicaSet",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&REPLICA_SET_SPEC)),
        f!(3 "status" Msg(&REPLICA_SET_STATUS)),
    ],
};

pub static REPLICA_SET_SPEC: Msg = Msg {
    name: "ReplicaSetSpec",
    fields: &[
        f!(1 "replicas" Int),
        f!(4 "minReadySeconds" Int, omitempty),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "template" Msg(&POD_TEMPLATE_SPEC)),
    ],
};

pub static REPLICA_SET_STATUS: Msg = Msg {
    name: "ReplicaSetStatus",
    fields: &[
        f!(1 "replicas" Int),
        f!(2 "fullyLabeledReplicas" Int, omitempty),
        f!(4 "readyReplicas" Int, omitempty),
        f!(5 "availableReplicas" Int, omitempty),
        f!(3 "observedGeneration" Int, omitempty),
        f!(6 "conditions" [Msg(&REPLICA_SET_CONDITION)]),
    ],
};

pub static REPLICA_SET_CONDITION: Msg = Msg {
    name: "ReplicaSetCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};

pub static DAEMON_SET: Msg = Msg {
    name: "DaemonSet",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&DAEMON_SET_SPEC)),
        f!(3 "status" Msg(&DAEMON_SET_STATUS)),
    ],
};

pub static DAEMON_SET_SPEC: Msg = Msg {
    name: "DaemonSetSpec",
    fields: &[
        f!(1 "selector" Msg(&LABEL_SELECTOR)),
        f!(2 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(3 "updateStrategy" Msg(&DAEMON_SET_UPDATE_STRATEGY)),
        f!(4 "minReadySeconds" Int, omitempty),
        f!(6 "revisionHistoryLimit" Int),
    ],
};

pub static DAEMON_SET_UPDATE_STRATEGY: Msg = Msg {
    name: "DaemonSetUpdateStrategy",
    fields: &[f!(1 "type" Str), f!(2 "rollingUpdate" Msg(&ROLLING_UPDATE_DAEMON_SET))],
};

pub static ROLLING_UPDATE_DAEMON_SET: Msg = Msg {
    name: "RollingUpdateDaemonSet",
    fields: &[f!(1 "maxUnavailable" IntOrString), f!(2 "maxSurge" IntOrString)],
};

pub static DAEMON_SET_STATUS: Msg = Msg {
    name: "DaemonSetStatus",
    fields: &[
        f!(1 "currentNumberScheduled" Int),
        f!(2 "numberMisscheduled" Int),
        f!(3 "desiredNumberScheduled" Int),
        f!(4 "numberReady" Int),
        f!(5 "observedGeneration" Int, omitempty),
        f!(6 "updatedNumberScheduled" Int, omitempty),
        f!(7 "numberAvailable" Int, omitempty),
        f!(8 "numberUnavailable" Int, omitempty),
        f!(9 "collisionCount" Int),
        f!(10 "conditions" [Msg(&DAEMON_SET_CONDITION)]),
    ],
};

pub static DAEMON_SET_CONDITION: Msg = Msg {
    name: "DaemonSetCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};

pub static STATEFUL_SET: Msg = Msg {
    name: "StatefulSet",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&STATEFUL_SET_SPEC)),
        f!(3 "status" Msg(&STATEFUL_SET_STATUS)),
    ],
};

pub static STATEFUL_SET_SPEC: Msg = Msg {
    name: "StatefulSetSpec",
    fields: &[
        f!(1 "replicas" Int),
        f!(2 "selector" Msg(&LABEL_SELECTOR)),
        f!(3 "template" Msg(&POD_TEMPLATE_SPEC)),
        f!(4 "volumeClaimTemplates" [Msg(&PERSISTENT_VOLUME_CLAIM)]),
        f!(5 "serviceName" Str),
        f!(6 "podManagementPolicy" Str),
        f!(7 "updateStrategy" Msg(&STATEFUL_SET_UPDATE_STRATEGY)),
        f!(8 "revisionHistoryLimit" Int),
        f!(9 "minReadySeconds" Int, omitempty),
        f!(10 "persistentVolumeClaimRetentionPolicy" Msg(&STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY)),
        f!(11 "ordinals" Msg(&STATEFUL_SET_ORDINALS)),
    ],
};

pub static STATEFUL_SET_UPDATE_STRATEGY: Msg = Msg {
    name: "StatefulSetUpdateStrategy",
    fields: &[f!(1 "type" Str), f!(2 "rollingUpdate" Msg(&ROLLING_UPDATE_STATEFUL_SET_STRATEGY))],
};

pub static ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Msg = Msg {
    name: "RollingUpdateStatefulSetStrategy",
    fields: &[f!(1 "partition" Int), f!(2 "maxUnavailable" IntOrString)],
};

pub static STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Msg = Msg {
    name: "StatefulSetPersistentVolumeClaimRetentionPolicy",
    fields: &[f!(1 "whenDeleted" Str), f!(2 "whenScaled" Str)],
};

pub static STATEFUL_SET_ORDINALS: Msg =
    Msg { name: "StatefulSetOrdinals", fields: &[f!(1 "start" Int)] };

pub static STATEFUL_SET_STATUS: Msg = Msg {
    name: "StatefulSetStatus",
    fields: &[
        f!(1 "observedGeneration" Int, omitempty),
        f!(2 "replicas" Int),
        f!(3 "readyReplicas" Int, omitempty),
        f!(4 "currentReplicas" Int, omitempty),
        f!(5 "updatedReplicas" Int, omitempty),
        f!(6 "currentRevision" Str),
        f!(7 "updateRevision" Str),
        f!(9 "collisionCount" Int),
        f!(10 "conditions" [Msg(&STATEFUL_SET_CONDITION)]),
        f!(11 "availableReplicas" Int),
    ],
};

pub static STATEFUL_SET_CONDITION: Msg = Msg {
    name: "StatefulSetCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};

pub static CONTROLLER_REVISION: Msg = Msg {
    name: "ControllerRevision",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "data" Raw), f!(3 "revision" Int)],
};
