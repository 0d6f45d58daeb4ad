//! What a pod's node reports of it: phase, conditions, addresses and each container's
//! state, as a client that updates pods/status sends it.

use super::Ty::*;
use super::container::RESOURCE_REQUIREMENTS;
use super::{Field, Msg};

pub static POD_STATUS: Msg = Msg {
    name: "PodStatus",
    fields: &[
        f!(1 "phase" Str),
        f!(2 "conditions" [Msg(&POD_CONDITION)]),
        f!(3 "message" Str),
        f!(4 "reason" Str),
        f!(11 "nominatedNodeName" Str),
        f!(5 "hostIP" Str),
        f!(16 "hostIPs" [Msg(&HOST_IP)]),
        f!(6 "podIP" Str),
        f!(12 "podIPs" [Msg(&POD_IP)]),
        f!(7 "startTime" Time),
        f!(10 "initContainerStatuses" [Msg(&CONTAINER_STATUS)]),
        f!(8 "containerStatuses" [Msg(&CONTAINER_STATUS)]),
        f!(9 "qosClass" Str),
        f!(13 "ephemeralContainerStatuses" [Msg(&CONTAINER_STATUS)]),
        f!(14 "resize" Str),
        f!(15 "resourceClaimStatuses" [Msg(&POD_RESOURCE_CLAIM_STATUS)]),
    ],
};

pub static POD_CONDITION: Msg = Msg {
    name: "PodCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastProbeTime" Time),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};

pub static HOST_IP: Msg = Msg { name: "HostIP", fields: &[f!(1 "ip" Str)] };

pub static POD_IP: Msg = Msg { name: "PodIP", fields: &[f!(1 "ip" Str)] };

pub static CONTAINER_STATUS: Msg = Msg {
    name: "ContainerStatus",
    fields: &[
        f!(1 "name" Str),
        f!(2 "state" Msg(&CONTAINER_STATE)),
        f!(3 "lastState" Msg(&CONTAINER_STATE)),
        f!(4 "ready" Bool),
        f!(5 "restartCount" Int),
        f!(6 "image" Str),
        f!(7 "imageID" Str),
        f!(8 "containerID" Str),
        f!(9 "started" Bool),
        f!(10 "allocatedResources" Map(&Quantity)),
        f!(11 "resources" Msg(&RESOURCE_REQUIREMENTS)),
        f!(12 "volumeMounts" [Msg(&VOLUME_MOUNT_STATUS)]),
        f!(13 "user" Msg(&CONTAINER_USER)),
        f!(14 "allocatedResourcesStatus" [Msg(&RESOURCE_STATUS)]),
    ],
};

pub static CONTAINER_STATE: Msg = Msg {
    name: "ContainerState",
    fields: &[
        f!(1 "waiting" Msg(&CONTAINER_STATE_WAITING)),
        f!(2 "running" Msg(&CONTAINER_STATE_RUNNING)),
        f!(3 "terminated" Msg(&CONTAINER_STATE_TERMINATED)),
    ],
};

pub static CONTAINER_STATE_WAITING: Msg =
    Msg { name: "ContainerStateWaiting", fields: &[f!(1 "reason" Str), f!(2 "message" Str)] };

pub static CONTAINER_STATE_RUNNING: Msg =
    Msg { name: "ContainerStateRunning", fields: &[f!(1 "startedAt" Time)] };

pub static CONTAINER_STATE_TERMINATED: Msg = Msg {
    name: "ContainerStateTerminated",
    fields: &[
        f!(1 "exitCode" Int),
        f!(2 "signal" Int, omitempty),
        f!(3 "reason" Str),
        f!(4 "message" Str),
        f!(5 "startedAt" Time),
        f!(6 "finishedAt" Time),
        f!(7 "containerID" Str),
    ],
};

pub static VOLUME_MOUNT_STATUS: Msg = Msg {
    name: "VolumeMountStatus",
    fields: &[
        f!(1 "name" Str),
        f!(2 "mountPath" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "recursiveReadOnly" Str),
    ],
};

pub static CONTAINER_USER: Msg =
    Msg { name: "ContainerUser", fields: &[f!(1 "linux" Msg(&LINUX_CONTAINER_USER))] };

pub static LINUX_CONTAINER_USER: Msg = Msg {
    name: "LinuxContainerUser",
    fields: &[f!(1 "uid" Int), f!(2 "gid" Int), f!(3 "supplementalGroups" [Int])],
};

pub static RESOURCE_STATUS: Msg = Msg {
    name: "ResourceStatus",
    fields: &[f!(1 "name" Str), f!(2 "resources" [Msg(&RESOURCE_HEALTH)])],
};

pub static RESOURCE_HEALTH: Msg =
    Msg { name: "ResourceHealth", fields: &[f!(1 "resourceID" Str), f!(2 "health" Str)] };

pub static POD_RESOURCE_CLAIM_STATUS: Msg = Msg {
    name: "PodResourceClaimStatus",
    fields: &[f!(1 "name" Str), f!(2 "resourceClaimName" Str)],
};
