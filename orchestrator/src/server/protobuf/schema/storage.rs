//! Persistent storage: PersistentVolumes with their sources, PersistentVolumeClaims and
//! storage.k8s.io/v1 StorageClasses.

use super::Ty::*;
use super::core_kinds::OBJECT_REFERENCE;
use super::meta::OBJECT_META;
use super::placement::NODE_SELECTOR;
use super::volume::{
    AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE, AZURE_DISK_VOLUME_SOURCE, FC_VOLUME_SOURCE,
    FLOCKER_VOLUME_SOURCE, GCE_PERSISTENT_DISK_VOLUME_SOURCE, HOST_PATH_VOLUME_SOURCE,
    NFS_VOLUME_SOURCE, PERSISTENT_VOLUME_CLAIM_SPEC, PHOTON_PERSISTENT_DISK_VOLUME_SOURCE,
    PORTWORX_VOLUME_SOURCE, QUOBYTE_VOLUME_SOURCE, VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE,
};
use super::{Field, Msg};

pub static PERSISTENT_VOLUME: Msg = Msg {
    name: "PersistentVolume",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&PERSISTENT_VOLUME_SPEC)),
        f!(3 "status" Msg(&PERSISTENT_VOLUME_STATUS)),
    ],
};

pub static PERSISTENT_VOLUME_SPEC: Msg = Msg {
    name: "PersistentVolumeSpec",
    fields: &[
        f!(1 "capacity" Map(&Quantity)),
        f!(2 "persistentVolumeSource" Inline(&PERSISTENT_VOLUME_SOURCE)),
        f!(3 "accessModes" [Str]),
        f!(4 "claimRef" Msg(&OBJECT_REFERENCE)),
        f!(5 "persistentVolumeReclaimPolicy" Str),
        f!(6 "storageClassName" Str),
        f!(7 "mountOptions" [Str]),
        f!(8 "volumeMode" Str),
        f!(9 "nodeAffinity" Msg(&VOLUME_NODE_AFFINITY)),
        f!(10 "volumeAttributesClassName" Str),
    ],
};

pub static PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "PersistentVolumeSource",
    fields: &[
        f!(1 "gcePersistentDisk" Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        f!(2 "awsElasticBlockStore" Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        f!(3 "hostPath" Msg(&HOST_PATH_VOLUME_SOURCE)),
        f!(4 "glusterfs" Msg(&GLUSTERFS_PERSISTENT_VOLUME_SOURCE)),
        f!(5 "nfs" Msg(&NFS_VOLUME_SOURCE)),
        f!(6 "rbd" Msg(&RBD_PERSISTENT_VOLUME_SOURCE)),
        f!(7 "iscsi" Msg(&ISCSI_PERSISTENT_VOLUME_SOURCE)),
        f!(8 "cinder" Msg(&CINDER_PERSISTENT_VOLUME_SOURCE)),
        f!(9 "cephfs" Msg(&CEPH_FS_PERSISTENT_VOLUME_SOURCE)),
        f!(10 "fc" Msg(&FC_VOLUME_SOURCE)),
        f!(11 "flocker" Msg(&FLOCKER_VOLUME_SOURCE)),
        f!(12 "flexVolume" Msg(&FLEX_PERSISTENT_VOLUME_SOURCE)),
        f!(13 "azureFile" Msg(&AZURE_FILE_PERSISTENT_VOLUME_SOURCE)),
        f!(14 "vsphereVolume" Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        f!(15 "quobyte" Msg(&QUOBYTE_VOLUME_SOURCE)),
        f!(16 "azureDisk" Msg(&AZURE_DISK_VOLUME_SOURCE)),
        f!(17 "photonPersistentDisk" Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        f!(18 "portworxVolume" Msg(&PORTWORX_VOLUME_SOURCE)),
        f!(19 "scaleIO" Msg(&SCALE_IO_PERSISTENT_VOLUME_SOURCE)),
        f!(20 "local" Msg(&LOCAL_VOLUME_SOURCE)),
        f!(21 "storageos" Msg(&STORAGE_OS_PERSISTENT_VOLUME_SOURCE)),
        f!(22 "csi" Msg(&CSI_PERSISTENT_VOLUME_SOURCE)),
    ],
};

pub static GLUSTERFS_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "GlusterfsPersistentVolumeSource",
    fields: &[
        f!(1 "endpoints" Str),
        f!(2 "path" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "endpointsNamespace" Str),
    ],
};

pub static RBD_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "RBDPersistentVolumeSource",
    fields: &[
        f!(1 "monitors" [Str]),
        f!(2 "image" Str),
        f!(3 "fsType" Str),
        f!(4 "pool" Str),
        f!(5 "user" Str),
        f!(6 "keyring" Str),
        f!(7 "secretRef" Msg(&SECRET_REFERENCE)),
        f!(8 "readOnly" Bool, omitempty),
    ],
};

pub static SECRET_REFERENCE: Msg =
    Msg { name: "SecretReference", fields: &[f!(1 "name" Str), f!(2 "namespace" Str)] };

pub static ISCSI_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "ISCSIPersistentVolumeSource",
    fields: &[
        f!(1 "targetPortal" Str),
        f!(2 "iqn" Str),
        f!(3 "lun" Int),
        f!(4 "iscsiInterface" Str),
        f!(5 "fsType" Str),
        f!(6 "readOnly" Bool, omitempty),
        f!(7 "portals" [Str]),
        f!(8 "chapAuthDiscovery" Bool, omitempty),
        f!(11 "chapAuthSession" Bool, omitempty),
        f!(10 "secretRef" Msg(&SECRET_REFERENCE)),
        f!(12 "initiatorName" Str),
    ],
};

pub static CINDER_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "CinderPersistentVolumeSource",
    fields: &[
        f!(1 "volumeID" Str),
        f!(2 "fsType" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "secretRef" Msg(&SECRET_REFERENCE)),
    ],
};

pub static CEPH_FS_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "CephFSPersistentVolumeSource",
    fields: &[
        f!(1 "monitors" [Str]),
        f!(2 "path" Str),
        f!(3 "user" Str),
        f!(4 "secretFile" Str),
        f!(5 "secretRef" Msg(&SECRET_REFERENCE)),
        f!(6 "readOnly" Bool, omitempty),
    ],
};

pub static FLEX_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "FlexPersistentVolumeSource",
    fields: &[
        f!(1 "driver" Str),
        f!(2 "fsType" Str),
        f!(3 "secretRef" Msg(&SECRET_REFERENCE)),
        f!(4 "readOnly" Bool, omitempty),
        f!(5 "options" Map(&Str)),
    ],
};

pub static AZURE_FILE_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "AzureFilePersistentVolumeSource",
    fields: &[
        f!(1 "secretName" Str),
        f!(2 "shareName" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "secretNamespace" Str),
    ],
};

pub static SCALE_IO_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "ScaleIOPersistentVolumeSource",
    fields: &[
        f!(1 "gateway" Str),
        f!(2 "system" Str),
        f!(3 "secretRef" Msg(&SECRET_REFERENCE)),
        f!(4 "sslEnabled" Bool, omitempty),
        f!(5 "protectionDomain" Str),
        f!(6 "storagePool" Str),
        f!(7 "storageMode" Str),
        f!(8 "volumeName" Str),
        f!(9 "fsType" Str),
        f!(10 "readOnly" Bool, omitempty),
    ],
};

pub static LOCAL_VOLUME_SOURCE: Msg =
    Msg { name: "LocalVolumeSource", fields: &[f!(1 "path" Str), f!(2 "fsType" Str)] };

pub static STORAGE_OS_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "StorageOSPersistentVolumeSource",
    fields: &[
        f!(1 "volumeName" Str),
        f!(2 "volumeNamespace" Str),
        f!(3 "fsType" Str),
        f!(4 "readOnly" Bool, omitempty),
        f!(5 "secretRef" Msg(&OBJECT_REFERENCE)),
    ],
};

pub static CSI_PERSISTENT_VOLUME_SOURCE: Msg = Msg {
    name: "CSIPersistentVolumeSource",
    fields: &[
        f!(1 "driver" Str),
        f!(2 "volumeHandle" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "fsType" Str),
        f!(5 "volumeAttributes" Map(&Str)),
        f!(6 "controllerPublishSecretRef" Msg(&SECRET_REFERENCE)),
        f!(7 "nodeStageSecretRef" Msg(&SECRET_REFERENCE)),
        f!(8 "nodePublishSecretRef" Msg(&SECRET_REFERENCE)),
        f!(9 "controllerExpandSecretRef" Msg(&SECRET_REFERENCE)),
        f!(10 "nodeExpandSecretRef" Msg(&SECRET_REFERENCE)),
    ],
};

pub static VOLUME_NODE_AFFINITY: Msg =
    Msg { name: "VolumeNodeAffinity", fields: &[f!(1 "required" Msg(&NODE_SELECTOR))] };

pub static PERSISTENT_VOLUME_STATUS: Msg = Msg {
    name: "PersistentVolumeStatus",
    fields: &[
        f!(1 "phase" Str),
        f!(2 "message" Str),
        f!(3 "reason" Str),
        f!(4 "lastPhaseTransitionTime" Time),
    ],
};

pub static PERSISTENT_VOLUME_CLAIM: Msg = Msg {
    name: "PersistentVolumeClaim",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&PERSISTENT_VOLUME_CLAIM_SPEC)),
        f!(3 "status" Msg(&PERSISTENT_VOLUME_CLAIM_STATUS)),
    ],
};

pub static PERSISTENT_VOLUME_CLAIM_STATUS: Msg = Msg {
    name: "PersistentVolumeClaimStatus",
    fields: &[
        f!(1 "phase" Str),
        f!(2 "accessModes" [Str]),
        f!(3 "capacity" Map(&Quantity)),
        f!(4 "conditions" [Msg(&PERSISTENT_VOLUME_CLAIM_CONDITION)]),
        f!(5 "allocatedResources" Map(&Quantity)),
        f!(7 "allocatedResourceStatuses" Map(&Str)),
        f!(8 "currentVolumeAttributesClassName" Str),
        f!(9 "modifyVolumeStatus" Msg(&MODIFY_VOLUME_STATUS)),
    ],
};

pub static PERSISTENT_VOLUME_CLAIM_CONDITION: Msg = Msg {
    name: "PersistentVolumeClaimCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastProbeTime" Time),
        f!(4 "lastTransitionTime" Time),
        f!(5 "reason" Str),
        f!(6 "message" Str),
    ],
};

pub static MODIFY_VOLUME_STATUS: Msg = Msg {
    name: "ModifyVolumeStatus",
    fields: &[f!(1 "targetVolumeAttributesClassName" Str), f!(2 "status" Str)],
};

pub static STORAGE_CLASS: Msg = Msg {
    name: "StorageClass",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "provisioner" Str),
        f!(3 "parameters" Map(&Str)),
        f!(4 "reclaimPolicy" Str),
        f!(5 "mountOptions" [Str]),
        f!(6 "allowVolumeExpansion" Bool),
        f!(7 "volumeBindingMode" Str),
        f!(8 "allowedTopologies" [Msg(&TOPOLOGY_SELECTOR_TERM)]),
    ],
};

pub static TOPOLOGY_SELECTOR_TERM: Msg = Msg {
    name: "TopologySelectorTerm",
    fields: &[f!(1 "matchLabelExpressions" [Msg(&TOPOLOGY_SELECTOR_LABEL_REQUIREMENT)])],
};

pub static TOPOLOGY_SELECTOR_LABEL_REQUIREMENT: Msg = Msg {
    name: "TopologySelectorLabelRequirement",
    fields: &[f!(1 "key" Str), f!(2 "values" [Str])],
};
