//! delete and deletecollection: preconditions, finalizers, propagation policy (the orphan and
//! foregroundDeletion finalizers are then honoured by the garbage collector), namespaces.

use serde_json::{Value, json};

use super::retry::until_applied;
use super::{Api, ApiResponse, decode, encode, key};
use crate::api::error::ApiError;
use crate::api::request::{DeleteOptions, ListOptions, Propagation, Target};
use crate::api::resources::ResourceKind;
use crate::api::{custom, meta};

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

impl Api {
    pub(super) async fn delete(
        &self,
        t: &Target,
        opts: &DeleteOptions,
    ) -> Result<ApiResponse, ApiError> {
        let name = t.name.clone().unwrap_or_default();
        let obj = self.delete_object(t.kind, t.namespace.as_deref(), &name, opts).await?;
        Ok(ApiResponse::ok(obj))
    }

    /// Deletes one object (in-process callers use this too). Returns the deleted object, or
    /// the object now marked for deletion when finalizers hold it. A write that races the
    /// delete (a controller's status update, say) makes it start over on the fresh object.
    pub async fn delete_object(
        &self,
        kind: &'static ResourceKind,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        until_applied(|| self.try_delete(kind, ns, name, opts)).await
    }

    /// One attempt: preconditions against the object as now stored, then compare-and-swap.
    async fn try_delete(
        &self,
        kind: &'static ResourceKind,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let k = key(kind, ns, name);
        let (mut obj, rev) = self.load(kind, ns, name).await?;
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid(&obj)
        {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&obj)
                ),
            ));
        }
        if let Some(want) = &opts.precondition_rv
            && *want != rev.to_string()
        {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
        let is_namespace = kind.group.is_empty() && kind.kind == "Namespace";
        let mut finalizers = meta::finalizers(&obj);
        let adds = match opts.propagation {
            Some(Propagation::Orphan) => Some(ORPHAN),
            Some(Propagation::Foreground) => Some(FOREGROUND),
            _ => None,
        };
        if let Some(f) = adds
            && !finalizers.iter().any(|x| x == f)
            && !meta::is_deleting(&obj)
        {
            finalizers.push(f.to_owned());
        }
        // A definition's objects go before it does (the CRD controller removes this).
        if kind.group == "apiextensions.k8s.io"
            && kind.kind == "CustomResourceDefinition"
            && !meta::is_deleting(&obj)
            && !finalizers.iter().any(|x| x == custom::CLEANUP_FINALIZER)
        {
            finalizers.push(custom::CLEANUP_FINALIZER.to_owned());
        }
        let grace = graceful_pod(kind, &obj, opts);
        let held = !finalizers.is_empty()
            || (is_namespace && !self.finalized(kind, &obj))
            || grace.is_some();
        if opts.dry_run {
            return Ok(obj);
        }
        if held {
            let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
            let shorter = matches!((grace, current), (Some(g), Some(c)) if g < c);
            if meta::is_deleting(&obj) && !shorter {
                return Ok(obj);
            }
            let g = grace.unwrap_or(0);
            let at = chrono::Utc::now() + chrono::Duration::seconds(g);
            let m = meta::metadata_mut(&mut obj);
            m.insert(
                "deletionTimestamp".into(),
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(g));
            m.insert("finalizers".into(), json!(finalizers));
            if is_namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            let kv = self
                .store
                .update(&k, encode(&obj), rev)
                .await
                .map_err(|e| ApiError::from_store(e, kind, name))?;
            return decode(&kv);
        }
        let kv = self
            .store
            .delete(&k, Some(rev))
            .await
            .map_err(|e| ApiError::from_store(e, kind, name))?;
        self.release_on_delete(kind, &obj).await;
        decode(&kv)
    }

    pub(super) async fn delete_collection(
        &self,
        t: &Target,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<ApiResponse, ApiError> {
        let unpaged = ListOptions { limit: 0, continue_token: None, ..list.clone() };
        let (items, list_meta) = self.list_objects(t, &unpaged).await?;
        let mut deleted = Vec::new();
        for obj in items {
            match self.delete_object(t.kind, meta::namespace(&obj), meta::name(&obj), opts).await {
                Ok(o) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ApiResponse::ok(json!({
            "kind": format!("{}List", t.kind.kind),
            "apiVersion": t.kind.api_version(),
            "metadata": list_meta,
            "items": deleted,
        })))
    }
}

/// The grace period of a pod's deletion, when it is graceful: a pod running on a node is
/// marked (deletionTimestamp = now + grace) and its node agent deletes it once its containers
/// stopped. Unscheduled or finished pods, and a grace period of 0, delete at once.
fn graceful_pod(kind: &ResourceKind, obj: &Value, opts: &DeleteOptions) -> Option<i64> {
    if !(kind.group.is_empty() && kind.kind == "Pod") {
        return None;
    }
    let on_node = obj["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty());
    let finished = matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    if !on_node || finished {
        return None;
    }
    let grace = opts
        .grace_period
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    (grace > 0).then_some(grace)
}
