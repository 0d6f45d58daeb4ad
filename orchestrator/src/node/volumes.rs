//! Pod volumes on the node. Every volume becomes a host directory that the runtime mounts into
//! the containers naming it: emptyDir under the pod's directory, configMap, secret, projected
//! and downwardAPI written there as files (once, when the pod's sandbox is made), hostPath as
//! given, and a claim through its bound PersistentVolume's hostPath.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, HostPathVolumeSource, KeyToPath, PersistentVolume, PersistentVolumeClaim,
    Pod, Secret,
};

use crate::kube::{Kube, Object};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VolumeError {
    /// Waiting on something in the API (a ConfigMap, a Secret, a claim's binding).
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}

/// A path inside a volume given by the user (items[].path, subPath): relative, no `..`.
pub(super) fn relative(p: &str, what: &str) -> Result<PathBuf, VolumeError> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(VolumeError::Invalid(format!(
            "{what} {p:?} must be a relative path without '..'"
        )));
    }
    Ok(path.to_path_buf())
}

fn io(what: &str, path: &Path, e: std::io::Error) -> VolumeError {
    VolumeError::Io(format!("{what} {}: {e}", path.display()))
}

/// Writes `files` (relative path, bytes) into `dir`, replacing what was there.
pub(super) fn write_files(
    dir: &Path,
    files: &[(PathBuf, Vec<u8>)],
    mode: u32,
) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io("clearing", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    for (rel, bytes) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io("writing", &path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| io("chmod", &path, e))?;
    }
    Ok(())
}

/// The files of a ConfigMap or Secret volume: every key, or only `items` (key -> path).
pub(super) fn projected_files(
    items: Option<&[KeyToPath]>,
    data: &HashMap<String, Vec<u8>>,
) -> Result<Vec<(PathBuf, Vec<u8>)>, VolumeError> {
    match items {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|it| {
                let key = it.key.as_str();
                let bytes = data
                    .get(key)
                    .ok_or_else(|| VolumeError::Invalid(format!("key {key:?} not found")))?;
                let path = relative(&it.path, "items path")?;
                Ok((path, bytes.clone()))
            })
            .collect(),
        _ => data.iter().map(|(k, v)| Ok((relative(k, "key")?, v.clone()))).collect(),
    }
}

/// An object the volumes need, None when it does not exist (yet).
async fn get<K: Object>(
    kube: &Kube,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<K>, VolumeError> {
    kube.get::<K>(ns, name)
        .await
        .map_err(|e| VolumeError::NotReady(format!("GET {} {name}: {e}", K::KIND.to_lowercase())))
}

/// A hostPath volume's directory (or file), checked or created per its `type`.
fn host_path(source: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    let p = source.path.as_str();
    if !p.starts_with('/') {
        return Err(VolumeError::Invalid(format!("hostPath {p:?} must be absolute")));
    }
    let path = PathBuf::from(p);
    match source.type_.as_deref().unwrap_or("") {
        "DirectoryOrCreate" => {
            std::fs::create_dir_all(&path).map_err(|e| io("creating", &path, e))?
        }
        "FileOrCreate" => {
            if !path.exists() {
                std::fs::write(&path, b"").map_err(|e| io("creating", &path, e))?;
            }
        }
        "Directory" if !path.is_dir() => {
            return Err(VolumeError::Invalid(format!(
                "hostPath type check failed: {p} is not a directory"
            )));
        }
        "File" if !path.is_file() => {
            return Err(VolumeError::Invalid(format!(
                "hostPath type check failed: {p} is not a file"
            )));
        }
        "" | "Directory" | "File" => {}
        other => {
            return Err(VolumeError::Invalid(format!("hostPath type {other:?} is not supported")));
        }
    }
    Ok(path)
}

/// The file mode of projected files: the volume's `defaultMode`, else 0644.
pub(super) fn mode(default_mode: Option<i32>) -> u32 {
    default_mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644)
}

/// The data of a ConfigMap (text and binary keys): None when it does not exist and is
/// `optional`, NotReady when it does not exist and is not.
pub(super) async fn config_map_data(
    kube: &Kube,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<HashMap<String, Vec<u8>>>, VolumeError> {
    match get::<ConfigMap>(kube, Some(ns), name).await? {
        Some(cm) => {
            let text = cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes()));
            let binary = cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0));
            Ok(Some(text.chain(binary).collect()))
        }
        None if optional.unwrap_or(false) => Ok(None),
        None => Err(VolumeError::NotReady(format!("configmap \"{name}\" not found"))),
    }
}

/// The data of a Secret, as [`config_map_data`].
pub(super) async fn secret_data(
    kube: &Kube,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<Option<HashMap<String, Vec<u8>>>, VolumeError> {
    match get::<Secret>(kube, Some(ns), name).await? {
        Some(s) => {
            Ok(Some(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()))
        }
        None if optional.unwrap_or(false) => Ok(None),
        None => Err(VolumeError::NotReady(format!("secret \"{name}\" not found"))),
    }
}

/// A ConfigMap volume written under `dir`.
async fn config_map_volume(
    kube: &Kube,
    ns: &str,
    source: &k8s_openapi::api::core::v1::ConfigMapVolumeSource,
    dir: &Path,
) -> Result<(), VolumeError> {
    let data = config_map_data(kube, ns, &source.name, source.optional).await?;
    let files = projected_files(source.items.as_deref(), &data.unwrap_or_default())?;
    write_files(dir, &files, mode(source.default_mode))
}

/// A Secret volume written under `dir`.
async fn secret_volume(
    kube: &Kube,
    ns: &str,
    source: &k8s_openapi::api::core::v1::SecretVolumeSource,
    dir: &Path,
) -> Result<(), VolumeError> {
    let name = source.secret_name.as_deref().unwrap_or_default();
    let data = secret_data(kube, ns, name, source.optional).await?;
    let files = projected_files(source.items.as_deref(), &data.unwrap_or_default())?;
    write_files(dir, &files, mode(source.default_mode))
}

/// The host path of a claim's bound PersistentVolume (hostPath volumes only).
async fn claim_volume(kube: &Kube, ns: &str, claim: &str) -> Result<PathBuf, VolumeError> {
    let pvc = get::<PersistentVolumeClaim>(kube, Some(ns), claim).await?.ok_or_else(|| {
        VolumeError::NotReady(format!("persistentvolumeclaim \"{claim}\" not found"))
    })?;
    // A claim names its volume once bound (by a binder, or pre-bound by its author).
    let pv_name = pvc.spec.and_then(|s| s.volume_name).unwrap_or_default();
    if pv_name.is_empty() {
        return Err(VolumeError::NotReady(format!(
            "persistentvolumeclaim \"{claim}\" is not bound"
        )));
    }
    let pv = get::<PersistentVolume>(kube, None, &pv_name).await?.ok_or_else(|| {
        VolumeError::NotReady(format!("persistentvolume \"{pv_name}\" not found"))
    })?;
    let spec = pv.spec.unwrap_or_default();
    if let Some(r) = &spec.claim_ref
        && (r.name.as_deref() != Some(claim) || r.namespace.as_deref() != Some(ns))
    {
        return Err(VolumeError::Invalid(format!(
            "persistentvolume \"{pv_name}\" is bound to another claim"
        )));
    }
    let Some(source) = &spec.host_path else {
        return Err(VolumeError::Invalid(format!(
            "persistentvolume \"{pv_name}\": only hostPath volumes are supported"
        )));
    };
    host_path(source)
}

/// Makes every volume of `pod` exist on the host under `pod_dir`; returns name -> host path.
pub async fn prepare(
    kube: &Kube,
    pod: &Pod,
    pod_dir: &Path,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let name = v.name.clone();
        relative(&name, "volume name")?;
        let path = if v.empty_dir.is_some() {
            let dir = pod_dir.join("empty-dir").join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
            // Open to every user, as the kubelet makes it: a container running as any user
            // writes its scratch space.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| io("opening up", &dir, e))?;
            dir
        } else if let Some(source) = &v.host_path {
            host_path(source)?
        } else if let Some(source) = &v.config_map {
            let dir = pod_dir.join("configmap").join(&name);
            config_map_volume(kube, ns, source, &dir).await?;
            dir
        } else if let Some(source) = &v.secret {
            let dir = pod_dir.join("secret").join(&name);
            secret_volume(kube, ns, source, &dir).await?;
            dir
        } else if let Some(source) = &v.persistent_volume_claim {
            claim_volume(kube, ns, &source.claim_name).await?
        } else if let Some(source) = &v.projected {
            let dir = pod_dir.join("projected").join(&name);
            super::projected_volume::write(kube, pod, source, &dir).await?;
            dir
        } else if let Some(source) = &v.downward_api {
            let dir = pod_dir.join("downward-api").join(&name);
            super::projected_volume::write_downward_api(pod, source, &dir)?;
            dir
        } else {
            return Err(VolumeError::Invalid(format!(
                "volume {name:?}: only emptyDir, hostPath, configMap, secret, projected, downwardAPI and persistentVolumeClaim volumes are supported"
            )));
        };
        out.insert(name, path);
    }
    Ok(out)
}

/// The runtime mounts of container `c`, from its volumeMounts and the prepared volumes.
pub fn mounts(
    pod: &Pod,
    c: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<cri::Mount>, VolumeError> {
    let projected = |name: &str| {
        pod.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .find(|v| v.name == name)
            .is_some_and(|v| {
                v.config_map.is_some()
                    || v.secret.is_some()
                    || v.projected.is_some()
                    || v.downward_api.is_some()
            })
    };
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let name = m.name.as_str();
        let mut host = volumes
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::Invalid(format!("volume {name:?} is not defined")))?;
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = host.join(relative(sub, "subPath")?);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| io("creating", &host, e))?;
            }
        }
        let target = m.mount_path.as_str();
        if !target.starts_with('/') {
            return Err(VolumeError::Invalid(format!("mountPath {target:?} must be absolute")));
        }
        out.push(cri::Mount {
            container_path: target.to_owned(),
            host_path: host.to_string_lossy().into_owned(),
            // ConfigMaps and Secrets are the API's to change, never the container's.
            readonly: m.read_only.unwrap_or(false) || projected(name),
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
                _ => cri::MountPropagation::PropagationPrivate,
            } as i32,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(yaml: &str) -> Vec<KeyToPath> {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn paths_stay_inside_volumes() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./.."] {
            assert!(relative(bad, "p").is_err(), "{bad:?}");
        }
        assert_eq!(relative("a/b.txt", "p").unwrap(), PathBuf::from("a/b.txt"));
        let data: HashMap<String, Vec<u8>> = [("k".to_string(), b"v".to_vec())].into();
        let escape = items("[{key: k, path: ../../etc/cron.d/x}]");
        assert!(projected_files(Some(&escape), &data).is_err());
        let missing = items("[{key: nope, path: x}]");
        assert!(projected_files(Some(&missing), &data).is_err());
    }

    #[test]
    fn files_and_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let data: HashMap<String, Vec<u8>> =
            [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into();
        let files = projected_files(Some(&items("[{key: b, path: sub/b.txt}]")), &data).unwrap();
        write_files(&dir.path().join("cm"), &files, 0o600).unwrap();
        assert_eq!(std::fs::read(dir.path().join("cm/sub/b.txt")).unwrap(), b"2");
        assert!(!dir.path().join("cm/a").exists());

        let pod: Pod = serde_yaml::from_str(
            "{spec: {containers: [], \
              volumes: [{name: cfg, configMap: {name: x}}, {name: scratch, emptyDir: {}}]}}",
        )
        .unwrap();
        let vols: HashMap<String, PathBuf> = [
            ("cfg".to_string(), dir.path().join("cm")),
            ("scratch".to_string(), dir.path().join("e")),
        ]
        .into();
        let container = |yaml: &str| -> Container { serde_yaml::from_str(yaml).unwrap() };
        let c = container(
            "{name: c, volumeMounts: [{name: cfg, mountPath: /etc/cfg}, \
              {name: scratch, mountPath: /data, subPath: s}]}",
        );
        let m = mounts(&pod, &c, &vols).unwrap();
        assert!(m[0].readonly && !m[1].readonly);
        assert!(dir.path().join("e/s").is_dir());
        let bad = container(
            "{name: c, volumeMounts: [{name: scratch, mountPath: /d, subPath: ../../x}]}",
        );
        assert!(mounts(&pod, &bad, &vols).is_err());
        let undefined = container("{name: c, volumeMounts: [{name: nope, mountPath: /d}]}");
        assert!(mounts(&pod, &undefined, &vols).is_err());
    }
}
