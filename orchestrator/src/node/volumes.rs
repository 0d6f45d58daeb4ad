//! Pod volumes on the node. Every volume becomes a host directory that the runtime mounts into
//! the containers naming it: emptyDir under the pod's directory, configMap and secret written
//! there as files (once, when the pod's sandbox is made), hostPath as given, and a claim
//! through its bound PersistentVolume's hostPath.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use k8s_cri::v1 as cri;
use serde_json::Value;

use super::api::ApiClient;

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
fn relative(p: &str, what: &str) -> Result<PathBuf, VolumeError> {
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
fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>)], mode: u32) -> Result<(), VolumeError> {
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
fn projected_files(
    source: &Value,
    data: &HashMap<String, Vec<u8>>,
) -> Result<Vec<(PathBuf, Vec<u8>)>, VolumeError> {
    match source["items"].as_array() {
        Some(items) if !items.is_empty() => items
            .iter()
            .map(|it| {
                let key = it["key"].as_str().unwrap_or_default();
                let bytes = data
                    .get(key)
                    .ok_or_else(|| VolumeError::Invalid(format!("key {key:?} not found")))?;
                let path = relative(it["path"].as_str().unwrap_or_default(), "items path")?;
                Ok((path, bytes.clone()))
            })
            .collect(),
        _ => data.iter().map(|(k, v)| Ok((relative(k, "key")?, v.clone()))).collect(),
    }
}

async fn get(api: &ApiClient, path: &str) -> Result<Option<Value>, VolumeError> {
    let r = api.get(path).await.map_err(|e| VolumeError::NotReady(e.to_string()))?;
    match r.status {
        200 => Ok(Some(r.json())),
        404 => Ok(None),
        s => Err(VolumeError::NotReady(format!("GET {path}: {s}"))),
    }
}

/// A hostPath volume's directory (or file), checked or created per its `type`.
fn host_path(source: &Value) -> Result<PathBuf, VolumeError> {
    let p = source["path"].as_str().unwrap_or_default();
    if !p.starts_with('/') {
        return Err(VolumeError::Invalid(format!("hostPath {p:?} must be absolute")));
    }
    let path = PathBuf::from(p);
    match source["type"].as_str().unwrap_or("") {
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

/// Makes every volume of `pod` exist on the host under `pod_dir`; returns name -> host path.
pub async fn prepare(
    api: &ApiClient,
    pod: &Value,
    pod_dir: &Path,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut out = HashMap::new();
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default().to_owned();
        relative(&name, "volume name")?;
        let path = if !v["emptyDir"].is_null() {
            let dir = pod_dir.join("empty-dir").join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
            dir
        } else if !v["hostPath"].is_null() {
            host_path(&v["hostPath"])?
        } else if !v["configMap"].is_null() {
            let source = &v["configMap"];
            let cm_name = source["name"].as_str().unwrap_or_default();
            let cm = get(api, &format!("/api/v1/namespaces/{ns}/configmaps/{cm_name}")).await?;
            let optional = source["optional"].as_bool().unwrap_or(false);
            let mut data = HashMap::new();
            match cm {
                Some(cm) => {
                    for (k, val) in cm["data"].as_object().into_iter().flatten() {
                        data.insert(
                            k.clone(),
                            val.as_str().unwrap_or_default().as_bytes().to_vec(),
                        );
                    }
                    for (k, val) in cm["binaryData"].as_object().into_iter().flatten() {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(val.as_str().unwrap_or_default())
                            .map_err(|e| VolumeError::Invalid(format!("binaryData {k}: {e}")))?;
                        data.insert(k.clone(), bytes);
                    }
                }
                None if optional => {}
                None => {
                    return Err(VolumeError::NotReady(format!(
                        "configmap \"{cm_name}\" not found"
                    )));
                }
            }
            let dir = pod_dir.join("configmap").join(&name);
            let mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
            write_files(&dir, &projected_files(source, &data)?, mode)?;
            dir
        } else if !v["secret"].is_null() {
            let source = &v["secret"];
            let s_name = source["secretName"].as_str().unwrap_or_default();
            let secret = get(api, &format!("/api/v1/namespaces/{ns}/secrets/{s_name}")).await?;
            let optional = source["optional"].as_bool().unwrap_or(false);
            let mut data = HashMap::new();
            match secret {
                Some(s) => {
                    for (k, val) in s["data"].as_object().into_iter().flatten() {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(val.as_str().unwrap_or_default())
                            .map_err(|e| VolumeError::Invalid(format!("secret key {k}: {e}")))?;
                        data.insert(k.clone(), bytes);
                    }
                }
                None if optional => {}
                None => {
                    return Err(VolumeError::NotReady(format!("secret \"{s_name}\" not found")));
                }
            }
            let dir = pod_dir.join("secret").join(&name);
            let mode = source["defaultMode"].as_u64().unwrap_or(0o644) as u32;
            write_files(&dir, &projected_files(source, &data)?, mode)?;
            dir
        } else if !v["persistentVolumeClaim"].is_null() {
            let claim = v["persistentVolumeClaim"]["claimName"].as_str().unwrap_or_default();
            let pvc = get(api, &format!("/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}"))
                .await?
                .ok_or_else(|| {
                    VolumeError::NotReady(format!("persistentvolumeclaim \"{claim}\" not found"))
                })?;
            // A claim names its volume once bound (by a binder, or pre-bound by its author).
            let pv_name = pvc["spec"]["volumeName"].as_str().unwrap_or_default();
            if pv_name.is_empty() {
                return Err(VolumeError::NotReady(format!(
                    "persistentvolumeclaim \"{claim}\" is not bound"
                )));
            }
            let pv = get(api, &format!("/api/v1/persistentvolumes/{pv_name}")).await?.ok_or_else(
                || VolumeError::NotReady(format!("persistentvolume \"{pv_name}\" not found")),
            )?;
            let claim_ref = &pv["spec"]["claimRef"];
            if !claim_ref.is_null()
                && (claim_ref["name"] != claim || claim_ref["namespace"].as_str() != Some(ns))
            {
                return Err(VolumeError::Invalid(format!(
                    "persistentvolume \"{pv_name}\" is bound to another claim"
                )));
            }
            if pv["spec"]["hostPath"].is_null() {
                return Err(VolumeError::Invalid(format!(
                    "persistentvolume \"{pv_name}\": only hostPath volumes are supported"
                )));
            }
            host_path(&pv["spec"]["hostPath"])?
        } else {
            return Err(VolumeError::Invalid(format!(
                "volume {name:?}: only emptyDir, hostPath, configMap, secret and persistentVolumeClaim volumes are supported"
            )));
        };
        out.insert(name, path);
    }
    Ok(out)
}

/// The runtime mounts of container `c`, from its volumeMounts and the prepared volumes.
pub fn mounts(
    pod: &Value,
    c: &Value,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<cri::Mount>, VolumeError> {
    let kind_of = |name: &str| {
        pod["spec"]["volumes"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == name))
            .map(|v| !v["configMap"].is_null() || !v["secret"].is_null())
            .unwrap_or(false)
    };
    let mut out = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let mut host = volumes
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::Invalid(format!("volume {name:?} is not defined")))?;
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            host = host.join(relative(sub, "subPath")?);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| io("creating", &host, e))?;
            }
        }
        let target = m["mountPath"].as_str().unwrap_or_default();
        if !target.starts_with('/') {
            return Err(VolumeError::Invalid(format!("mountPath {target:?} must be absolute")));
        }
        out.push(cri::Mount {
            container_path: target.to_owned(),
            host_path: host.to_string_lossy().into_owned(),
            // ConfigMaps and Secrets are the API's to change, never the container's.
            readonly: m["readOnly"].as_bool().unwrap_or(false) || kind_of(name),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_stay_inside_volumes() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./.."] {
            assert!(relative(bad, "p").is_err(), "{bad:?}");
        }
        assert_eq!(relative("a/b.txt", "p").unwrap(), PathBuf::from("a/b.txt"));
        let data: HashMap<String, Vec<u8>> = [("k".to_string(), b"v".to_vec())].into();
        let escape = json!({"items": [{"key": "k", "path": "../../etc/cron.d/x"}]});
        assert!(projected_files(&escape, &data).is_err());
        let missing = json!({"items": [{"key": "nope", "path": "x"}]});
        assert!(projected_files(&missing, &data).is_err());
    }

    #[test]
    fn files_and_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let data: HashMap<String, Vec<u8>> =
            [("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())].into();
        let files =
            projected_files(&json!({"items": [{"key": "b", "path": "sub/b.txt"}]}), &data).unwrap();
        write_files(&dir.path().join("cm"), &files, 0o600).unwrap();
        assert_eq!(std::fs::read(dir.path().join("cm/sub/b.txt")).unwrap(), b"2");
        assert!(!dir.path().join("cm/a").exists());

        let pod = json!({"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "x"}},
                                               {"name": "scratch", "emptyDir": {}}]}});
        let vols: HashMap<String, PathBuf> = [
            ("cfg".to_string(), dir.path().join("cm")),
            ("scratch".to_string(), dir.path().join("e")),
        ]
        .into();
        let c = json!({"volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                        {"name": "scratch", "mountPath": "/data", "subPath": "s"}]});
        let m = mounts(&pod, &c, &vols).unwrap();
        assert!(m[0].readonly && !m[1].readonly);
        assert!(dir.path().join("e/s").is_dir());
        let bad =
            json!({"volumeMounts": [{"name": "scratch", "mountPath": "/d", "subPath": "../../x"}]});
        assert!(mounts(&pod, &bad, &vols).is_err());
        let undefined = json!({"volumeMounts": [{"name": "nope", "mountPath": "/d"}]});
        assert!(mounts(&pod, &undefined, &vols).is_err());
    }
}
