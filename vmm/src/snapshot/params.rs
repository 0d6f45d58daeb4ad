//! The bodies of PUT /snapshot/create and PUT /snapshot/load, in Firecracker's shape, with
//! overrides for what clones of one snapshot must not share (their taps, vsock sockets and
//! shared directories' daemons).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotType {
    #[default]
    Full,
    Diff,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    #[serde(default)]
    pub snapshot_type: SnapshotType,
    pub snapshot_path: PathBuf,
    pub mem_file_path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendType {
    #[default]
    File,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemBackend {
    pub backend_type: BackendType,
    pub backend_path: PathBuf,
}

/// The tap a restored network interface uses instead of the snapshot's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOverride {
    pub iface_id: String,
    pub host_dev_name: String,
}

/// The host socket a restored vsock device uses instead of the snapshot's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockOverride {
    pub uds_path: PathBuf,
}

/// The vhost-user daemon a restored shared directory uses instead of the snapshot's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsOverride {
    pub fs_id: String,
    pub socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadParams {
    pub snapshot_path: PathBuf,
    /// Where guest memory comes from (or `mem_file_path`, Firecracker's older field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_backend: Option<MemBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_file_path: Option<PathBuf>,
    #[serde(default)]
    pub enable_diff_snapshots: bool,
    #[serde(default)]
    pub resume_vm: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_overrides: Vec<NetworkOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_override: Option<VsockOverride>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fs_overrides: Vec<FsOverride>,
}

impl LoadParams {
    /// The memory file, from whichever field gave it.
    pub fn memory_file(&self) -> Result<PathBuf, String> {
        match (&self.mem_backend, &self.mem_file_path) {
            (Some(b), None) => Ok(b.backend_path.clone()),
            (None, Some(p)) => Ok(p.clone()),
            (Some(_), Some(_)) => Err("give mem_backend or mem_file_path, not both".into()),
            (None, None) => Err("missing mem_backend: where guest memory comes from".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_firecracker_sends_them_and_unknown_fields_are_refused() {
        let c: CreateParams = serde_json::from_str(
            r#"{"snapshot_type":"Full","snapshot_path":"/s","mem_file_path":"/m"}"#,
        )
        .unwrap();
        assert_eq!(c.snapshot_type, SnapshotType::Full);
        assert!(serde_json::from_str::<CreateParams>(r#"{"snapshot_path":"/s"}"#).is_err());
        assert!(
            serde_json::from_str::<CreateParams>(
                r#"{"snapshot_type":"Half","snapshot_path":"/s","mem_file_path":"/m"}"#
            )
            .is_err()
        );
        let l: LoadParams = serde_json::from_str(
            r#"{"snapshot_path":"/s","mem_backend":{"backend_type":"File","backend_path":"/m"},
                "enable_diff_snapshots":false,"resume_vm":true,
                "network_overrides":[{"iface_id":"eth0","host_dev_name":"tap9"}]}"#,
        )
        .unwrap();
        assert_eq!(l.memory_file().unwrap(), PathBuf::from("/m"));
        assert!(l.resume_vm);
        let old: LoadParams =
            serde_json::from_str(r#"{"snapshot_path":"/s","mem_file_path":"/m"}"#).unwrap();
        assert_eq!(old.memory_file().unwrap(), PathBuf::from("/m"));
        let none: LoadParams = serde_json::from_str(r#"{"snapshot_path":"/s"}"#).unwrap();
        assert!(none.memory_file().is_err());
        assert!(serde_json::from_str::<LoadParams>(r#"{"snapshot_path":"/s","x":1}"#).is_err());
        assert!(
            serde_json::from_str::<LoadParams>(
                r#"{"snapshot_path":"/s","mem_backend":{"backend_type":"Uffd","backend_path":"/u"}}"#
            )
            .is_err()
        );
    }
}
