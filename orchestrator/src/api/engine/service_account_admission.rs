//! Pods and their service account, like Kubernetes' ServiceAccount admission plugin: a pod
//! runs as `spec.serviceAccountName` (`default` when unnamed), a named account that does not
//! exist is refused, and unless the pod or its account opt out
//! (`automountServiceAccountToken: false`) the pod gets a `kube-api-access-*` projected
//! volume (a token bound to the pod, the cluster CA, the namespace) mounted read-only at
//! [`MOUNT_PATH`] in every container, which is where in-cluster clients look.
//!
//! One difference, on purpose: a pod naming no account is admitted while the namespace's
//! `default` account is still being created (Kubernetes refuses it and controllers retry);
//! the node waits for the account before it can fetch the pod's token.

use serde_json::{Value, json};

use super::Api;
use crate::api::error::ApiError;
use crate::api::resources;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The lifetime kubelets ask for these tokens (the server extends it, see TokenRequest).
const TOKEN_EXPIRATION: i64 = 3607;
/// The characters of generated name suffixes (no vowels, no look-alikes), as Kubernetes'.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn suffix() -> String {
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The projected volume kubelets fill with the pod's token, the CA and the namespace.
fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

impl Api {
    pub(super) async fn admit_service_account(&self, pod: &mut Value) -> Result<(), ApiError> {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
        let pod_name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let spec = &mut pod["spec"];
        let name = [&spec["serviceAccountName"], &spec["serviceAccount"]]
            .into_iter()
            .find_map(|v| v.as_str().filter(|n| !n.is_empty()))
            .unwrap_or("default")
            .to_owned();
        spec["serviceAccountName"] = json!(name);
        spec["serviceAccount"] = json!(name);
        let kind = resources::find_kind("", "ServiceAccount")
            .ok_or_else(|| ApiError::internal("serviceaccounts are not served"))?;
        let account = match self.load(kind, Some(&ns), &name).await {
            Ok((a, _)) => Some(a),
            Err(e) if e.code == 404 && name == "default" => None,
            Err(e) if e.code == 404 => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{pod_name}\" is forbidden: error looking up service account \
                     {ns}/{name}: serviceaccount \"{name}\" not found"
                )));
            }
            Err(e) => return Err(e),
        };
        let automount = spec["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account.as_ref().and_then(|a| a["automountServiceAccountToken"].as_bool()))
            .unwrap_or(true);
        let volumes = &spec["volumes"];
        let has_one = volumes.as_array().into_iter().flatten().any(|v| {
            v["name"].as_str().is_some_and(|n| n.starts_with(VOLUME_PREFIX))
                || v["projected"]["sources"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s.get("serviceAccountToken").is_some()))
        });
        if !automount || has_one {
            return Ok(());
        }
        let volume = format!("{VOLUME_PREFIX}{}", suffix());
        let mut mounted = false;
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec[list].as_array_mut().into_iter().flatten() {
                let mounts = &c["volumeMounts"];
                // A container that mounts something of its own there keeps it.
                if mounts.as_array().into_iter().flatten().any(|m| m["mountPath"] == MOUNT_PATH) {
                    continue;
                }
                let entry = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
                match c["volumeMounts"].as_array_mut() {
                    Some(list) => list.push(entry),
                    None => c["volumeMounts"] = json!([entry]),
                }
                mounted = true;
            }
        }
        if mounted {
            match spec["volumes"].as_array_mut() {
                Some(list) => list.push(api_access_volume(&volume)),
                None => spec["volumes"] = json!([api_access_volume(&volume)]),
            }
        }
        Ok(())
    }
}
