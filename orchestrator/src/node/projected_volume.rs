//! Projected volumes (ConfigMap and Secret keys, downward API fields and a service account
//! token in one directory) and downwardAPI volumes, written as the kubelet writes them. The
//! token comes from the API server (TokenRequest) bound to the pod, so it is valid only while
//! the pod exists; this is what a pod's `kube-api-access-*` volume carries.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, DownwardAPIVolumeSource, Pod, ProjectedVolumeSource,
    ServiceAccountTokenProjection,
};
use serde_json::json;

use super::volumes::{
    VolumeError, config_map_data, mode, projected_files, relative, secret_data, write_files,
};
use crate::api::request::{Operation, WriteOptions};
use crate::api::resources::{self, Subresource};
use crate::kube::Kube;

/// What a token projection asks for when it names no lifetime, as in Kubernetes.
const DEFAULT_TOKEN_EXPIRATION: i64 = 3600;

type Files = Vec<(PathBuf, Vec<u8>)>;

/// Writes every source of `source` into `dir`.
pub async fn write(
    kube: &Kube,
    pod: &Pod,
    source: &ProjectedVolumeSource,
    dir: &Path,
) -> Result<(), VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut files = Files::new();
    for s in source.sources.iter().flatten() {
        if let Some(cm) = &s.config_map {
            if let Some(data) = config_map_data(kube, ns, &cm.name, cm.optional).await? {
                files.extend(projected_files(cm.items.as_deref(), &data)?);
            }
        } else if let Some(secret) = &s.secret {
            if let Some(data) = secret_data(kube, ns, &secret.name, secret.optional).await? {
                files.extend(projected_files(secret.items.as_deref(), &data)?);
            }
        } else if let Some(d) = &s.downward_api {
            files.extend(downward_files(pod, d.items.as_deref().unwrap_or_default())?);
        } else if let Some(t) = &s.service_account_token {
            files.push((relative(&t.path, "token path")?, token(kube, pod, t).await?));
        } else {
            return Err(VolumeError::Invalid(
                "projected volume: only configMap, secret, downwardAPI and serviceAccountToken \
                 sources are supported"
                    .into(),
            ));
        }
    }
    write_files(dir, &files, mode(source.default_mode))
}

/// A downwardAPI volume written under `dir`.
pub fn write_downward_api(
    pod: &Pod,
    source: &DownwardAPIVolumeSource,
    dir: &Path,
) -> Result<(), VolumeError> {
    let files = downward_files(pod, source.items.as_deref().unwrap_or_default())?;
    write_files(dir, &files, mode(source.default_mode))
}

/// The pod's own fields that volumes may show (Kubernetes allows these in volumes).
fn downward_files(pod: &Pod, items: &[DownwardAPIVolumeFile]) -> Result<Files, VolumeError> {
    let meta = &pod.metadata;
    // Labels and annotations as `key="value"` lines, sorted, as the kubelet writes them.
    let lines = |map: &Option<std::collections::BTreeMap<String, String>>| -> String {
        map.iter().flatten().map(|(k, v)| format!("{k}={v:?}\n")).collect()
    };
    items
        .iter()
        .map(|item| {
            let path = relative(&item.path, "downwardAPI path")?;
            let Some(field) = &item.field_ref else {
                return Err(VolumeError::Invalid(format!(
                    "downwardAPI {:?}: only fieldRef items are supported",
                    item.path
                )));
            };
            let f = field.field_path.as_str();
            let value = match f {
                "metadata.labels" => lines(&meta.labels),
                "metadata.annotations" => lines(&meta.annotations),
                _ => super::env::metadata_field(meta, f).ok_or_else(|| {
                    VolumeError::Invalid(format!("unsupported downwardAPI fieldRef {f:?}"))
                })?,
            };
            Ok((path, value.into_bytes()))
        })
        .collect()
}

/// A token for the pod's service account, bound to the pod.
async fn token(
    kube: &Kube,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<Vec<u8>, VolumeError> {
    let meta = &pod.metadata;
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let body = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": projection.audience.iter().collect::<Vec<_>>(),
            "expirationSeconds": projection.expiration_seconds.unwrap_or(DEFAULT_TOKEN_EXPIRATION),
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.name, "uid": meta.uid},
        },
    });
    let kind = resources::find_kind("", "ServiceAccount")
        .ok_or_else(|| VolumeError::Invalid("serviceaccounts are not served".into()))?;
    let op = Operation::Create { body, opts: WriteOptions::default() };
    let answer =
        kube.raw(kind, Some(ns), Some(account), Some(Subresource::Token), op).await.map_err(
            |e| VolumeError::NotReady(format!("a token for service account {ns}/{account}: {e}")),
        )?;
    answer["status"]["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(|t| t.as_bytes().to_vec())
        .ok_or_else(|| VolumeError::NotReady("the API server answered no token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downward_fields() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                "labels": {"b": "2", "a": "x\"y"}, "annotations": {"k": "v"}},
        }))
        .unwrap();
        let item = |path: &str, field: &str| -> DownwardAPIVolumeFile {
            serde_json::from_value(json!({"path": path, "fieldRef": {"fieldPath": field}})).unwrap()
        };
        let files = downward_files(
            &pod,
            &[
                item("ns", "metadata.namespace"),
                item("labels", "metadata.labels"),
                item("a", "metadata.labels['a']"),
                item("k", "metadata.annotations['k']"),
                item("none", "metadata.labels['zzz']"),
            ],
        )
        .unwrap();
        let text: Vec<(String, String)> = files
            .into_iter()
            .map(|(p, b)| (p.display().to_string(), String::from_utf8(b).unwrap()))
            .collect();
        assert_eq!(
            text,
            [
                ("ns".into(), "ns".into()),
                ("labels".into(), "a=\"x\\\"y\"\nb=\"2\"\n".into()),
                ("a".into(), "x\"y".into()),
                ("k".into(), "v".into()),
                ("none".into(), String::new()),
            ]
        );
        assert!(downward_files(&pod, &[item("x", "spec.nodeName")]).is_err());
        assert!(downward_files(&pod, &[item("../x", "metadata.name")]).is_err());
    }
}
