//! A pod's volumes: every volume source of core/v1, projections, and the claim templates of
//! ephemeral volumes.

use super::Ty::*;
use super::container::{OBJECT_FIELD_SELECTOR, RESOURCE_FIELD_SELECTOR};
use super::core_kinds::{
    LOCAL_OBJECT_REFERENCE, TYPED_LOCAL_OBJECT_REFERENCE, TYPED_OBJECT_REFERENCE,
};
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::{Field, Msg};

pub static VOLUME: Msg = Msg {
    name: "Volume",
    fields: &[f!(1 "name" Str), f!(2 "volumeSource" Inline(&VOLUME_SOURCE))],
};

pub static VOLUME_SOURCE: Msg = Msg {
    name: "VolumeSource",
    fields: &[
        f!(1 "hostPath" Msg(&HOST_PATH_VOLUME_SOURCE)),
        f!(2 "emptyDir" Msg(&EMPTY_DIR_VOLUME_SOURCE)),
        f!(3 "gcePersistentDisk" Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        f!(4 "awsElasticBlockStore" Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        f!(5 "gitRepo" Msg(&GIT_REPO_VOLUME_SOURCE)),
        f!(6 "secret" Msg(&SECRET_VOLUME_SOURCE)),
        f!(7 "nfs" Msg(&NFS_VOLUME_SOURCE)),
        f!(8 "iscsi" Msg(&ISCSI_VOLUME_SOURCE)),
        f!(9 "glusterfs" Msg(&GLUSTERFS_VOLUME_SOURCE)),
        f!(10 "persistentVolumeClaim" Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        f!(11 "rbd" Msg(&RBD_VOLUME_SOURCE)),
        f!(12 "flexVolume" Msg(&FLEX_VOLUME_SOURCE)),
        f!(13 "cinder" Msg(&CINDER_VOLUME_SOURCE)),
        f!(14 "cephfs" Msg(&CEPH_FS_VOLUME_SOURCE)),
        f!(15 "flocker" Msg(&FLOCKER_VOLUME_SOURCE)),
        f!(16 "downwardAPI" Msg(&DOWNWARD_API_VOLUME_SOURCE)),
        f!(17 "fc" Msg(&FC_VOLUME_SOURCE)),
        f!(18 "azureFile" Msg(&AZURE_FILE_VOLUME_SOURCE)),
        f!(19 "configMap" Msg(&CONFIG_MAP_VOLUME_SOURCE)),
        f!(20 "vsphereVolume" Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        f!(21 "quobyte" Msg(&QUOBYTE_VOLUME_SOURCE)),
        f!(22 "azureDisk" Msg(&AZURE_DISK_VOLUME_SOURCE)),
        f!(23 "photonPersistentDisk" Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        f!(26 "projected" Msg(&PROJECTED_VOLUME_SOURCE)),
        f!(24 "portworxVolume" Msg(&PORTWORX_VOLUME_SOURCE)),
        f!(25 "scaleIO" Msg(&SCALE_IO_VOLUME_SOURCE)),
        f!(27 "storageos" Msg(&STORAGE_OS_VOLUME_SOURCE)),
        f!(28 "csi" Msg(&CSI_VOLUME_SOURCE)),
        f!(29 "ephemeral" Msg(&EPHEMERAL_VOLUME_SOURCE)),
        f!(30 "image" Msg(&IMAGE_VOLUME_SOURCE)),
    ],
};

pub static HOST_PATH_VOLUME_SOURCE: Msg =
    Msg { name: "HostPathVolumeSource", fields: &[f!(1 "path" Str), f!(2 "type" Str)] };

pub static EMPTY_DIR_VOLUME_SOURCE: Msg =
    Msg { name: "EmptyDirVolumeSource", fields: &[f!(1 "medium" Str), f!(2 "sizeLimit" Quantity)] };

pub static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Msg = Msg {
    name: "GCEPersistentDiskVolumeSource",
    fields: &[
        f!(1 "pdName" Str),
        f!(2 "fsType" Str),
        f!(3 "partition" Int, omitempty),
        f!(4 "readOnly" Bool, omitempty),
    ],
};

pub static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Msg = Msg {
    name: "AWSElasticBlockStoreVolumeSource",
    fields: &[
        f!(1 "volumeID" Str),
        f!(2 "fsType" Str),
        f!(3 "partition" Int, omitempty),
        f!(4 "readOnly" Bool, omitempty),
    ],
};

pub static GIT_REPO_VOLUME_SOURCE: Msg = Msg {
    name: "GitRepoVolumeSource",
    fields: &[f!(1 "repository" Str), f!(2 "revision" Str), f!(3 "directory" Str)],
};

pub static SECRET_VOLUME_SOURCE: Msg = Msg {
    name: "SecretVolumeSource",
    fields: &[
        f!(1 "secretName" Str),
        f!(2 "items" [Msg(&KEY_TO_PATH)]),
        f!(3 "defaultMode" Int),
        f!(4 "optional" Bool),
    ],
};

pub static KEY_TO_PATH: Msg =
    Msg { name: "KeyToPath", fields: &[f!(1 "key" Str), f!(2 "path" Str), f!(3 "mode" Int)] };

pub static NFS_VOLUME_SOURCE: Msg = Msg {
    name: "NFSVolumeSource",
    fields: &[f!(1 "server" Str), f!(2 "path" Str), f!(3 "readOnly" Bool, omitempty)],
};

pub static ISCSI_VOLUME_SOURCE: Msg = Msg {
    name: "ISCSIVolumeSource",
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
        f!(10 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
        f!(12 "initiatorName" Str),
    ],
};

pub static GLUSTERFS_VOLUME_SOURCE: Msg = Msg {
    name: "GlusterfsVolumeSource",
    fields: &[f!(1 "endpoints" Str), f!(2 "path" Str), f!(3 "readOnly" Bool, omitempty)],
};

pub static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Msg = Msg {
    name: "PersistentVolumeClaimVolumeSource",
    fields: &[f!(1 "claimName" Str), f!(2 "readOnly" Bool, omitempty)],
};

pub static RBD_VOLUME_SOURCE: Msg = Msg {
    name: "RBDVolumeSource",
    fields: &[
        f!(1 "monitors" [Str]),
        f!(2 "image" Str),
        f!(3 "fsType" Str),
        f!(4 "pool" Str),
        f!(5 "user" Str),
        f!(6 "keyring" Str),
        f!(7 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
        f!(8 "readOnly" Bool, omitempty),
    ],
};

pub static FLEX_VOLUME_SOURCE: Msg = Msg {
    name: "FlexVolumeSource",
    fields: &[
        f!(1 "driver" Str),
        f!(2 "fsType" Str),
        f!(3 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
        f!(4 "readOnly" Bool, omitempty),
        f!(5 "options" Map(&Str)),
    ],
};

pub static CINDER_VOLUME_SOURCE: Msg = Msg {
    name: "CinderVolumeSource",
    fields: &[
        f!(1 "volumeID" Str),
        f!(2 "fsType" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub static CEPH_FS_VOLUME_SOURCE: Msg = Msg {
    name: "CephFSVolumeSource",
    fields: &[
        f!(1 "monitors" [Str]),
        f!(2 "path" Str),
        f!(3 "user" Str),
        f!(4 "secretFile" Str),
        f!(5 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
        f!(6 "readOnly" Bool, omitempty),
    ],
};

pub static FLOCKER_VOLUME_SOURCE: Msg = Msg {
    name: "FlockerVolumeSource",
    fields: &[f!(1 "datasetName" Str), f!(2 "datasetUUID" Str)],
};

pub static DOWNWARD_API_VOLUME_SOURCE: Msg = Msg {
    name: "DownwardAPIVolumeSource",
    fields: &[f!(1 "items" [Msg(&DOWNWARD_API_VOLUME_FILE)]), f!(2 "defaultMode" Int)],
};

pub static DOWNWARD_API_VOLUME_FILE: Msg = Msg {
    name: "DownwardAPIVolumeFile",
    fields: &[
        f!(1 "path" Str),
        f!(2 "fieldRef" Msg(&OBJECT_FIELD_SELECTOR)),
        f!(3 "resourceFieldRef" Msg(&RESOURCE_FIELD_SELECTOR)),
        f!(4 "mode" Int),
    ],
};

pub static FC_VOLUME_SOURCE: Msg = Msg {
    name: "FCVolumeSource",
    fields: &[
        f!(1 "targetWWNs" [Str]),
        f!(2 "lun" Int),
        f!(3 "fsType" Str),
        f!(4 "readOnly" Bool, omitempty),
        f!(5 "wwids" [Str]),
    ],
};

pub static AZURE_FILE_VOLUME_SOURCE: Msg = Msg {
    name: "AzureFileVolumeSource",
    fields: &[f!(1 "secretName" Str), f!(2 "shareName" Str), f!(3 "readOnly" Bool, omitempty)],
};

pub static CONFIG_MAP_VOLUME_SOURCE: Msg = Msg {
    name: "ConfigMapVolumeSource",
    fields: &[
        f!(1 "localObjectReference" Inline(&LOCAL_OBJECT_REFERENCE)),
        f!(2 "items" [Msg(&KEY_TO_PATH)]),
        f!(3 "defaultMode" Int),
        f!(4 "optional" Bool),
    ],
};

pub static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Msg = Msg {
    name: "VsphereVirtualDiskVolumeSource",
    fields: &[
        f!(1 "volumePath" Str),
        f!(2 "fsType" Str),
        f!(3 "storagePolicyName" Str),
        f!(4 "storagePolicyID" Str),
    ],
};

pub static QUOBYTE_VOLUME_SOURCE: Msg = Msg {
    name: "QuobyteVolumeSource",
    fields: &[
        f!(1 "registry" Str),
        f!(2 "volume" Str),
        f!(3 "readOnly" Bool, omitempty),
        f!(4 "user" Str),
        f!(5 "group" Str),
        f!(6 "tenant" Str),
    ],
};

pub static AZURE_DISK_VOLUME_SOURCE: Msg = Msg {
    name: "AzureDiskVolumeSource",
    fields: &[
        f!(1 "diskName" Str),
        f!(2 "diskURI" Str),
        f!(3 "cachingMode" Str),
        f!(4 "fsType" Str),
        f!(5 "readOnly" Bool),
        f!(6 "kind" Str),
    ],
};

pub static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Msg = Msg {
    name: "PhotonPersistentDiskVolumeSource",
    fields: &[f!(1 "pdID" Str), f!(2 "fsType" Str)],
};

pub static PROJECTED_VOLUME_SOURCE: Msg = Msg {
    name: "ProjectedVolumeSource",
    fields: &[f!(1 "sources" [Msg(&VOLUME_PROJECTION)]), f!(2 "defaultMode" Int)],
};

pub static VOLUME_PROJECTION: Msg = Msg {
    name: "VolumeProjection",
    fields: &[
        f!(1 "secret" Msg(&SECRET_PROJECTION)),
        f!(2 "downwardAPI" Msg(&DOWNWARD_API_PROJECTION)),
        f!(3 "configMap" Msg(&CONFIG_MAP_PROJECTION)),
        f!(4 "serviceAccountToken" Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        f!(5 "clusterTrustBundle" Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
    ],
};

/// The same fields as a ConfigMapProjection.
pub static SECRET_PROJECTION: Msg =
    Msg { name: "SecretProjection", fields: CONFIG_MAP_PROJECTION.fields };

pub static DOWNWARD_API_PROJECTION: Msg = Msg {
    name: "DownwardAPIProjection",
    fields: &[f!(1 "items" [Msg(&DOWNWARD_API_VOLUME_FILE)])],
};

pub static CONFIG_MAP_PROJECTION: Msg = Msg {
    name: "ConfigMapProjection",
    fields: &[
        f!(1 "localObjectReference" Inline(&LOCAL_OBJECT_REFERENCE)),
        f!(2 "items" [Msg(&KEY_TO_PATH)]),
        f!(4 "optional" Bool),
    ],
};

pub static SERVICE_ACCOUNT_TOKEN_PROJECTION: Msg = Msg {
    name: "ServiceAccountTokenProjection",
    fields: &[f!(1 "audience" Str), f!(2 "expirationSeconds" Int), f!(3 "path" Str)],
};

pub static CLUSTER_TRUST_BUNDLE_PROJECTION: Msg = Msg {
    name: "ClusterTrustBundleProjection",
    fields: &[
        f!(1 "name" Str),
        f!(2 "signerName" Str),
        f!(3 "labelSelector" Msg(&LABEL_SELECTOR)),
        f!(5 "optional" Bool),
        f!(4 "path" Str),
    ],
};

pub static PORTWORX_VOLUME_SOURCE: Msg = Msg {
    name: "PortworxVolumeSource",
    fields: &[f!(1 "volumeID" Str), f!(2 "fsType" Str), f!(3 "readOnly" Bool, omitempty)],
};

pub static SCALE_IO_VOLUME_SOURCE: Msg = Msg {
    name: "ScaleIOVolumeSource",
    fields: &[
        f!(1 "gateway" Str),
        f!(2 "system" Str),
        f!(3 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
        f!(4 "sslEnabled" Bool, omitempty),
        f!(5 "protectionDomain" Str),
        f!(6 "storagePool" Str),
        f!(7 "storageMode" Str),
        f!(8 "volumeName" Str),
        f!(9 "fsType" Str),
        f!(10 "readOnly" Bool, omitempty),
    ],
};

pub static STORAGE_OS_VOLUME_SOURCE: Msg = Msg {
    name: "StorageOSVolumeSource",
    fields: &[
        f!(1 "volumeName" Str),
        f!(2 "volumeNamespace" Str),
        f!(3 "fsType" Str),
        f!(4 "readOnly" Bool, omitempty),
        f!(5 "secretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub static CSI_VOLUME_SOURCE: Msg = Msg {
    name: "CSIVolumeSource",
    fields: &[
        f!(1 "driver" Str),
        f!(2 "readOnly" Bool),
        f!(3 "fsType" Str),
        f!(4 "volumeAttributes" Map(&Str)),
        f!(5 "nodePublishSecretRef" Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
};

pub static EPHEMERAL_VOLUME_SOURCE: Msg = Msg {
    name: "EphemeralVolumeSource",
    fields: &[f!(1 "volumeClaimTemplate" Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))],
};

pub static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Msg = Msg {
    name: "PersistentVolumeClaimTemplate",
    fields: &[f!(1 "metadata" Msg(&OBJECT_META)), f!(2 "spec" Msg(&PERSISTENT_VOLUME_CLAIM_SPEC))],
};

pub static PERSISTENT_VOLUME_CLAIM_SPEC: Msg = Msg {
    name: "PersistentVolumeClaimSpec",
    fields: &[
        f!(1 "accessModes" [Str]),
        f!(4 "selector" Msg(&LABEL_SELECTOR)),
        f!(2 "resources" Msg(&VOLUME_RESOURCE_REQUIREMENTS)),
        f!(3 "volumeName" Str),
        f!(5 "storageClassName" Str),
        f!(6 "volumeMode" Str),
        f!(7 "dataSource" Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
        f!(8 "dataSourceRef" Msg(&TYPED_OBJECT_REFERENCE)),
        f!(9 "volumeAttributesClassName" Str),
    ],
};

pub static VOLUME_RESOURCE_REQUIREMENTS: Msg = Msg {
    name: "VolumeResourceRequirements",
    fields: &[f!(1 "limits" Map(&Quantity)), f!(2 "requests" Map(&Quantity))],
};

pub static IMAGE_VOLUME_SOURCE: Msg =
    Msg { name: "ImageVolumeSource", fields: &[f!(1 "reference" Str), f!(2 "pullPolicy" Str)] };
