//! `serviceaccounts/token` (authentication.k8s.io/v1 TokenRequest, `kubectl create token`):
//! a signed token for a service account, for the audiences asked (this server's by default),
//! for a bounded time, optionally bound to a Pod, Secret or Node so that it dies with that
//! object; and the authentication of such tokens, which also checks that the account and the
//! bound object are still the ones the token names (deleting either revokes it).

use std::sync::Arc;

use serde_json::{Value, json};

use super::token_review::API_AUDIENCE;
use super::{Api, ApiResponse};
use crate::api::error::Cause;
use crate::api::resources::{self, ResourceKind};
use crate::api::service_account_token::{Claims, ISSUER, PrivateClaims, Ref, TokenSigner};
use crate::api::{ApiError, User};

/// Shorter lifetimes are refused, as by Kubernetes.
const MIN_EXPIRATION: i64 = 600;
const DEFAULT_EXPIRATION: i64 = 3600;
/// What kubelets ask for the token of a pod's `kube-api-access-*` volume. Such a token is
/// issued for a year with a `warnafter` claim at the lifetime asked, as Kubernetes does by
/// default (`--service-account-extend-token-expiration`), so clients that never re-read the
/// file keep working.
const KUBELET_EXPIRATION: i64 = 3607;
const EXTENDED_EXPIRATION: i64 = 365 * 24 * 3600;

pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";

fn core_kind(kind: &str) -> Result<&'static ResourceKind, ApiError> {
    resources::find_kind("", kind).ok_or_else(|| ApiError::internal(format!("no {kind} kind")))
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Api {
    /// Lets this server issue and accept service account tokens (once; later calls change
    /// nothing).
    pub fn set_token_signer(&self, signer: Arc<TokenSigner>) {
        let _ = self.signer.set(signer);
    }

    pub(super) async fn request_token(
        &self,
        ns: &str,
        name: &str,
        body: &Value,
    ) -> Result<ApiResponse, ApiError> {
        let signer = self.signer.get().ok_or_else(|| {
            ApiError::new(503, "ServiceUnavailable", "this server has no token signing key")
        })?;
        let kind = core_kind("ServiceAccount")?;
        let (account, _) = self.load(kind, Some(ns), name).await?;
        let spec = &body["spec"];
        let invalid = |field: &str, msg: String| {
            ApiError::invalid(kind, name, vec![Cause::invalid(field, msg)])
        };
        let expiration = match &spec["expirationSeconds"] {
            Value::Null => DEFAULT_EXPIRATION,
            v => v.as_i64().ok_or_else(|| {
                invalid("spec.expirationSeconds", format!("Invalid value: {v}: must be an integer"))
            })?,
        };
        if expiration < MIN_EXPIRATION {
            return Err(invalid(
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {expiration}: may not specify a duration less than 10 minutes"
                ),
            ));
        }
        if expiration > (1 << 32) {
            return Err(invalid(
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"
                ),
            ));
        }
        let mut audiences: Vec<String> = match &spec["audiences"] {
            Value::Null => Vec::new(),
            Value::Array(a) => a
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid("spec.audiences", format!("Invalid value: {v}: must be strings"))
                    })
                })
                .collect::<Result<_, _>>()?,
            v => {
                return Err(invalid(
                    "spec.audiences",
                    format!("Invalid value: {v}: must be a list"),
                ));
            }
        };
        if audiences.is_empty() {
            audiences.push(API_AUDIENCE.into());
        }
        let account_ref = Ref {
            name: name.into(),
            uid: account["metadata"]["uid"].as_str().unwrap_or("").into(),
        };
        let mut claims_of = PrivateClaims {
            namespace: ns.into(),
            serviceaccount: account_ref,
            pod: None,
            secret: None,
            node: None,
            warnafter: None,
        };
        let bound = &spec["boundObjectRef"];
        if !bound.is_null() {
            let bound_kind = bound["kind"].as_str().unwrap_or("");
            let bound_name = bound["name"].as_str().unwrap_or("");
            if bound_name.is_empty() {
                return Err(invalid("spec.boundObjectRef.name", "Required value".into()));
            }
            let (obj_kind, obj_ns) = match bound_kind {
                "Pod" | "Secret" => (core_kind(bound_kind)?, Some(ns)),
                "Node" => (core_kind("Node")?, None),
                other => {
                    return Err(invalid(
                        "spec.boundObjectRef.kind",
                        format!(
                            "Unsupported value: {other:?}: supported values: \"Pod\", \"Secret\", \"Node\""
                        ),
                    ));
                }
            };
            let (obj, _) = self.load(obj_kind, obj_ns, bound_name).await?;
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
                && want != uid
            {
                return Err(ApiError::conflict(
                    obj_kind,
                    bound_name,
                    &format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record ({uid}); the object might have been deleted and then recreated"
                    ),
                ));
            }
            let r = Some(Ref { name: bound_name.into(), uid });
            match bound_kind {
                "Pod" => {
                    let runs_as = obj["spec"]["serviceAccountName"].as_str().unwrap_or("default");
                    if runs_as != name {
                        return Err(ApiError::bad_request(format!(
                            "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name"
                        )));
                    }
                    claims_of.pod = r;
                }
                "Secret" => claims_of.secret = r,
                _ => claims_of.node = r,
            }
        }
        let now = now_unix();
        let lifetime = if expiration == KUBELET_EXPIRATION && claims_of.pod.is_some() {
            claims_of.warnafter = Some(now + expiration);
            EXTENDED_EXPIRATION
        } else {
            expiration
        };
        let claims = Claims {
            iss: ISSUER.into(),
            sub: format!("system:serviceaccount:{ns}:{name}"),
            aud: audiences.clone(),
            exp: now + lifetime,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: claims_of,
        };
        let token = signer.sign(&claims).map_err(|e| ApiError::internal(e.to_string()))?;
        let at = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
        if !bound.is_null() {
            out_spec["boundObjectRef"] = bound.clone();
        }
        Ok(ApiResponse::Object {
            code: 201,
            body: json!({
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": at(now)},
                "spec": out_spec,
                "status": {"token": token, "expirationTimestamp": at(now + expiration)},
            }),
            warnings: Vec::new(),
        })
    }

    /// The object a token names, if it still exists with the uid the token names.
    async fn still_there(&self, kind: &str, ns: Option<&str>, r: &Ref) -> Result<Value, String> {
        let kind = core_kind(kind).map_err(|e| e.to_string())?;
        let name = &r.name;
        match self.load(kind, ns, name).await {
            Ok((obj, _)) if obj["metadata"]["uid"].as_str() == Some(r.uid.as_str()) => Ok(obj),
            Ok(_) => Err(format!("{} {name:?} has been deleted (its uid changed)", kind.kind)),
            Err(_) => Err(format!("{} {name:?} has been deleted", kind.kind)),
        }
    }

    /// Who a service account token belongs to, if this server signed it, it is valid now, it
    /// names one of `audiences`, and its account and bound object still exist with the uids
    /// it names; otherwise why not. Returns the user and the audiences it was accepted for.
    pub async fn authenticate_service_account(
        &self,
        token: &str,
        audiences: &[&str],
    ) -> Result<(User, Vec<String>), String> {
        let signer = self.signer.get().ok_or("no service account tokens here")?;
        let claims = signer.verify(token, now_unix()).map_err(|e| e.to_string())?;
        let accepted: Vec<String> =
            claims.aud.iter().filter(|a| audiences.contains(&a.as_str())).cloned().collect();
        if accepted.is_empty() {
            return Err(format!(
                "token audiences {:?} is invalid for the target audiences {audiences:?}",
                claims.aud
            ));
        }
        let k = &claims.kubernetes;
        let ns = k.namespace.as_str();
        self.still_there("ServiceAccount", Some(ns), &k.serviceaccount).await?;
        let mut extra = std::collections::BTreeMap::new();
        if let Some(pod) = &k.pod {
            let obj = self.still_there("Pod", Some(ns), pod).await?;
            if obj["metadata"]["deletionTimestamp"].is_string() {
                return Err(format!("pod {:?} is being deleted", pod.name));
            }
            extra.insert("authentication.kubernetes.io/pod-name".into(), vec![pod.name.clone()]);
            extra.insert("authentication.kubernetes.io/pod-uid".into(), vec![pod.uid.clone()]);
        }
        if let Some(secret) = &k.secret {
            self.still_there("Secret", Some(ns), secret).await?;
        }
        if let Some(node) = &k.node {
            self.still_there("Node", None, node).await?;
            extra.insert("authentication.kubernetes.io/node-name".into(), vec![node.name.clone()]);
        }
        extra.insert(
            "authentication.kubernetes.io/credential-id".into(),
            vec![format!("JTI={}", claims.jti)],
        );
        let user = User {
            name: claims.sub.clone(),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                SERVICE_ACCOUNTS_GROUP.into(),
                format!("{SERVICE_ACCOUNTS_GROUP}:{ns}"),
                crate::api::request::AUTHENTICATED_GROUP.into(),
            ],
            extra,
        };
        Ok((user, accepted))
    }
}
