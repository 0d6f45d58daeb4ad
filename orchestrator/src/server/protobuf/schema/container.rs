//! A pod's containers: image, command, ports, environment, resources and mounts. Probes,
//! hooks and security contexts have files of their own.

use super::Ty::*;
use super::core_kinds::LOCAL_OBJECT_REFERENCE;
use super::probe::{LIFECYCLE, PROBE};
use super::security::SECURITY_CONTEXT;
use super::{Field, Msg};

pub static OBJECT_FIELD_SELECTOR: Msg =
    Msg { name: "ObjectFieldSelector", fields: &[f!(1 "apiVersion" Str), f!(2 "fieldPath" Str)] };

pub static RESOURCE_FIELD_SELECTOR: Msg = Msg {
    name: "ResourceFieldSelector",
    fields: &[f!(1 "containerName" Str), f!(2 "resource" Str), f!(3 "divisor" Quantity, omitempty)],
};

pub static CONTAINER: Msg = Msg {
    name: "Container",
    fields: &[
        f!(1 "name" Str),
        f!(2 "image" Str),
        f!(3 "command" [Str]),
        f!(4 "args" [Str]),
        f!(5 "workingDir" Str),
        f!(6 "ports" [Msg(&CONTAINER_PORT)]),
        f!(19 "envFrom" [Msg(&ENV_FROM_SOURCE)]),
        f!(7 "env" [Msg(&ENV_VAR)]),
        f!(8 "resources" Msg(&RESOURCE_REQUIREMENTS)),
        f!(23 "resizePolicy" [Msg(&CONTAINER_RESIZE_POLICY)]),
        f!(24 "restartPolicy" Str),
        f!(9 "volumeMounts" [Msg(&VOLUME_MOUNT)]),
        f!(21 "volumeDevices" [Msg(&VOLUME_DEVICE)]),
        f!(10 "livenessProbe" Msg(&PROBE)),
        f!(11 "readinessProbe" Msg(&PROBE)),
        f!(22 "startupProbe" Msg(&PROBE)),
        f!(12 "lifecycle" Msg(&LIFECYCLE)),
        f!(13 "terminationMessagePath" Str),
        f!(20 "terminationMessagePolicy" Str),
        f!(14 "imagePullPolicy" Str),
        f!(15 "securityContext" Msg(&SECURITY_CONTEXT)),
        f!(16 "stdin" Bool, omitempty),
        f!(17 "stdinOnce" Bool, omitempty),
        f!(18 "tty" Bool, omitempty),
    ],
};

pub static CONTAINER_PORT: Msg = Msg {
    name: "ContainerPort",
    fields: &[
        f!(1 "name" Str),
        f!(2 "hostPort" Int, omitempty),
        f!(3 "containerPort" Int),
        f!(4 "protocol" Str),
        f!(5 "hostIP" Str),
    ],
};

pub static ENV_FROM_SOURCE: Msg = Msg {
    name: "EnvFromSource",
    fields: &[
        f!(1 "prefix" Str),
        f!(2 "configMapRef" Msg(&CONFIG_MAP_ENV_SOURCE)),
        f!(3 "secretRef" Msg(&SECRET_ENV_SOURCE)),
    ],
};

pub static CONFIG_MAP_ENV_SOURCE: Msg = Msg {
    name: "ConfigMapEnvSource",
    fields: &[f!(1 "localObjectReference" Inline(&LOCAL_OBJECT_REFERENCE)), f!(2 "optional" Bool)],
};

/// The same fields as a ConfigMapEnvSource.
pub static SECRET_ENV_SOURCE: Msg =
    Msg { name: "SecretEnvSource", fields: CONFIG_MAP_ENV_SOURCE.fields };

pub static ENV_VAR: Msg = Msg {
    name: "EnvVar",
    fields: &[f!(1 "name" Str), f!(2 "value" Str), f!(3 "valueFrom" Msg(&ENV_VAR_SOURCE))],
};

pub static ENV_VAR_SOURCE: Msg = Msg {
    name: "EnvVarSource",
    fields: &[
        f!(1 "fieldRef" Msg(&OBJECT_FIELD_SELECTOR)),
        f!(2 "resourceFieldRef" Msg(&RESOURCE_FIELD_SELECTOR)),
        f!(3 "configMapKeyRef" Msg(&CONFIG_MAP_KEY_SELECTOR)),
        f!(4 "secretKeyRef" Msg(&SECRET_KEY_SELECTOR)),
    ],
};

pub static CONFIG_MAP_KEY_SELECTOR: Msg = Msg {
    name: "ConfigMapKeySelector",
    fields: &[
        f!(1 "localObjectReference" Inline(&LOCAL_OBJECT_REFERENCE)),
        f!(2 "key" Str),
        f!(3 "optional" Bool),
    ],
};

/// The same fields as a ConfigMapKeySelector.
pub static SECRET_KEY_SELECTOR: Msg =
    Msg { name: "SecretKeySelector", fields: CONFIG_MAP_KEY_SELECTOR.fields };

pub static RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "ResourceRequirements",
    fields: &[
        f!(1 "limits" Map(&Quantity)),
        f!(2 "requests" Map(&Quantity)),
        f!(3 "claims" [Msg(&RESOURCE_CLAIM)]),
    ],
};

pub static RESOURCE_CLAIM: Msg =
    Msg { name: "ResourceClaim", fields: &[f!(1 "name" Str), f!(2 "request" Str)] };

pub static CONTAINER_RESIZE_POLICY: Msg = Msg {
    name: "ContainerResizePolicy",
    fields: &[f!(1 "resourceName" Str), f!(2 "restartPolicy" Str)],
};

pub static VOLUME_MOUNT: Msg = Msg {
    name: "VolumeMount",
    fields: &[
        f!(1 "name" Str),
        f!(2 "readOnly" Bool, omitempty),
        f!(7 "recursiveReadOnly" Str),
        f!(3 "mountPath" Str),
        f!(4 "subPath" Str),
        f!(5 "mountPropagation" Str),
        f!(6 "subPathExpr" Str),
    ],
};

pub static VOLUME_DEVICE: Msg =
    Msg { name: "VolumeDevice", fields: &[f!(1 "name" Str), f!(2 "devicePath" Str)] };

pub static EPHEMERAL_CONTAINER: Msg = Msg {
    name: "EphemeralContainer",
    fields: &[
        f!(1 "ephemeralContainerCommon" Inline(&EPHEMERAL_CONTAINER_COMMON)),
        f!(2 "targetContainerName" Str),
    ],
};

/// The same fields, under the same numbers, as a Container.
pub static EPHEMERAL_CONTAINER_COMMON: Msg =
    Msg { name: "EphemeralContainerCommon", fields: CONTAINER.fields };
