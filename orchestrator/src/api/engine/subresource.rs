//! Subresources: status, scale (as autoscaling/v1 Scale), binding, a certificate request's
//! approval; log and exec are routed here and answered once a node agent serves them.

use serde_json::{Value, json};

use super::authorize::Attributes;
use super::retry::until_applied;
use super::write::How;
use super::{Api, ApiResponse};
use crate::api::custom::json_path::JsonPath;
use crate::api::error::ApiError;
use crate::api::request::{Format, Operation, PatchType, Target, User, WriteOptions};
use crate::api::resources::{ResourceKind, Subresource};
use crate::api::{certificate_requests, meta, patch};
use crate::store::Revision;

/// A kind's scale paths: the CRD's for custom kinds, `.spec.replicas` otherwise.
fn custom_scale(kind: &ResourceKind) -> Option<&crate::api::custom::ScalePaths> {
    kind.custom.and_then(|c| c.scale.as_ref())
}

fn path_value<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    JsonPath::parse(path).ok()?.find(obj).into_iter().next()
}

fn scale_of(kind: &ResourceKind, obj: &Value) -> Value {
    let (spec_replicas, status_replicas, selector) = match custom_scale(kind) {
        Some(p) => (
            path_value(obj, &p.spec_replicas).and_then(Value::as_i64).unwrap_or(0),
            path_value(obj, &p.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            p.label_selector
                .as_deref()
                .and_then(|l| path_value(obj, l))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        None => (
            obj["spec"]["replicas"].as_i64().unwrap_or(0),
            obj["status"]["replicas"].as_i64().unwrap_or(0),
            crate::api::selector::LabelSelector::of_workload(kind, &obj["spec"]["selector"])
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
    };
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": { "replicas": spec_replicas },
        "status": { "replicas": status_replicas, "selector": selector },
    })
}

/// What an update or patch of a subresource's `view` of an object (stored at `rev`)
/// proposes: the update's body, whose resourceVersion, if it names one, must be `rev`, or the
/// patched view (`other` applies the patch types that are not JSON patches).
pub(super) fn proposed(
    kind: &ResourceKind,
    name: &str,
    view: &Value,
    rev: Revision,
    op: Operation,
    other: impl Fn(PatchType, &Value, &Value) -> Result<Value, String>,
) -> Result<(Value, WriteOptions), ApiError> {
    match op {
        Operation::Update { body, opts } => {
            if let Some(want) = meta::resource_version(&body)
                && want != rev.to_string()
            {
                return Err(ApiError::conflict(
                    kind,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            Ok((body, opts))
        }
        Operation::Patch { patch_type, patch: p, opts } => {
            let patched = match patch_type {
                PatchType::Json => patch::json_patch(view, &p),
                other_type => other(other_type, view, &p),
            }
            .map_err(|m| ApiError::new(422, "Invalid", m))?;
            Ok((patched, opts))
        }
        op => Err(ApiError::method_not_allowed(format!("{} is not supported here", op.verb()))),
    }
}

impl Api {
    /// Approving a certificate request (or issuing its certificate through `status`) also
    /// takes the `approve` (`sign`) verb on its signer, as in Kubernetes: `signers`
    /// resource named by the signer name or its `domain/*`.
    async fn authorize_signer(
        &self,
        user: &User,
        t: &Target,
        sub: Subresource,
    ) -> Result<(), ApiError> {
        let verb = match sub {
            Subresource::Approval => "approve",
            Subresource::Status => "sign",
            _ => return Ok(()),
        };
        let name = t.name.clone().unwrap_or_default();
        let (obj, _) = self.load(t.kind, None, &name).await?;
        let signer = obj["spec"]["signerName"].as_str().unwrap_or("").to_owned();
        let domain = signer.split_once('/').map(|(d, _)| format!("{d}/*")).unwrap_or_default();
        for signer_name in [signer.as_str(), domain.as_str()] {
            let a = Attributes {
                verb: verb.into(),
                group: "certificates.k8s.io".into(),
                resource: "signers".into(),
                name: signer_name.into(),
                ..Default::default()
            };
            if self.allowed(user, &a).await? {
                return Ok(());
            }
        }
        Err(ApiError::forbidden(format!(
            "user not permitted to {verb} requests with signerName \"{signer}\""
        )))
    }

    /// One attempt at an update or patch of the scale subresource.
    async fn write_scale(
        &self,
        t: &Target,
        name: &str,
        op: Operation,
    ) -> Result<ApiResponse, ApiError> {
        let ns = t.namespace.as_deref();
        let (obj, rev) = self.load(t.kind, ns, name).await?;
        let current = scale_of(t.kind, &obj);
        // A Scale has no strategic or apply semantics of its own: merge them.
        let (scale, opts) =
            proposed(t.kind, name, &current, rev, op, |_, doc, p| patch::merge_patch(doc, p))?;
        // An absent count is 0, as Scale's omitempty field reads in Kubernetes.
        let replicas = match &scale["spec"]["replicas"] {
            Value::Null => 0,
            v => v
                .as_i64()
                .ok_or_else(|| ApiError::bad_request("Scale spec.replicas must be an integer"))?,
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                t.kind,
                name,
                vec![crate::api::error::Cause::invalid(
                    "spec.replicas",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )],
            ));
        }
        let mut new = obj.clone();
        match custom_scale(t.kind) {
            Some(p) => {
                let path = JsonPath::parse(&p.spec_replicas)
                    .map_err(|e| ApiError::internal(format!("specReplicasPath: {e}")))?;
                path.set(&mut new, json!(replicas));
            }
            None => new["spec"]["replicas"] = json!(replicas),
        }
        let stored =
            self.store_update(t, &obj, rev, new, &opts, How { sub: None, record: true }).await?;
        Ok(ApiResponse::ok(scale_of(t.kind, &stored)))
    }

    /// One attempt at binding a pod to `node` (a conflict when it is bound already).
    async fn bind(
        &self,
        t: &Target,
        name: &str,
        node: &str,
        opts: &WriteOptions,
    ) -> Result<ApiResponse, ApiError> {
        let (obj, rev) = self.load(t.kind, t.namespace.as_deref(), name).await?;
        if let Some(n) = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                t.kind,
                name,
                &format!("pod {name} is already assigned to node \"{n}\""),
            ));
        }
        let mut new = obj.clone();
        new["spec"]["nodeName"] = json!(node);
        self.store_update(t, &obj, rev, new, opts, How { sub: None, record: true }).await?;
        Ok(ApiResponse::Object {
            code: 201,
            body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            warnings: Vec::new(),
        })
    }

    pub(super) async fn subresource(
        &self,
        user: &User,
        t: &Target,
        sub: Subresource,
        op: Operation,
        format: Format,
    ) -> Result<ApiResponse, ApiError> {
        if !t.kind.has(sub) || t.name.is_none() {
            return Err(ApiError::no_route(&format!("{}/{}", t.kind.plural, sub.name())));
        }
        let name = t.name.clone().unwrap_or_default();
        let ns = t.namespace.as_deref();
        if matches!(op, Operation::Update { .. } | Operation::Patch { .. })
            && certificate_requests::is_csr(t.kind.group, t.kind.kind)
        {
            self.authorize_signer(user, t, sub).await?;
        }
        match (sub, op) {
            (Subresource::Status | Subresource::Approval, Operation::Get) => {
                self.get(t, format).await
            }
            (Subresource::Status | Subresource::Approval, Operation::Update { body, opts }) => {
                self.update(user, t, body, &opts, Some(sub)).await
            }
            (
                Subresource::Status | Subresource::Approval,
                Operation::Patch { patch_type, patch, opts },
            ) => self.patch(user, t, patch_type, &patch, &opts, Some(sub)).await,
            (Subresource::Scale, Operation::Get) => {
                let (obj, _) = self.load(t.kind, ns, &name).await?;
                Ok(ApiResponse::ok(scale_of(t.kind, &obj)))
            }
            // Read-modify-writes of the object: a lost race is tried again on the fresh object.
            (Subresource::Scale, op @ (Operation::Update { .. } | Operation::Patch { .. })) => {
                until_applied(|| self.write_scale(t, &name, op.clone())).await
            }
            (Subresource::Binding, Operation::Create { body, opts }) => {
                let node = body["target"]["name"].as_str().unwrap_or("").to_owned();
                if node.is_empty() {
                    return Err(ApiError::bad_request("a binding needs target.name (the node)"));
                }
                until_applied(|| self.bind(t, &name, &node, &opts)).await
            }
            (Subresource::Token, Operation::Create { body, .. }) => {
                self.request_token(ns.unwrap_or("default"), &name, &body).await
            }
            (Subresource::EphemeralContainers, Operation::Get) => {
                let (obj, _) = self.load(t.kind, ns, &name).await?;
                Ok(ApiResponse::ok(obj))
            }
            (
                Subresource::EphemeralContainers,
                op @ (Operation::Update { .. } | Operation::Patch { .. }),
            ) => until_applied(|| self.write_ephemeral_containers(t, op.clone())).await,
            (Subresource::Eviction, Operation::Create { body, opts }) => {
                self.evict(t, body, &opts).await
            }
            (Subresource::Log | Subresource::Exec, Operation::Get | Operation::Create { .. }) => {
                let (obj, _) = self.load(t.kind, ns, &name).await?;
                match obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    None => Err(ApiError::bad_request(format!(
                        "pod {name} does not have a host assigned"
                    ))),
                    Some(node) => Err(ApiError::new(
                        503,
                        "ServiceUnavailable",
                        format!("no node agent is serving node {node:?}"),
                    )),
                }
            }
            (sub, op) => Err(ApiError::method_not_allowed(format!(
                "{} is not supported on {}/{}",
                op.verb(),
                t.kind.plural,
                sub.name()
            ))),
        }
    }
}
