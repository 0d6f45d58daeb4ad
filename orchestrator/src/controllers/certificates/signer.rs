//! Issues approved `kubernetes.io/kubelet-serving` requests with the cluster CA: a serving
//! certificate for exactly `CN=system:node:NAME, O=system:nodes` and the requested names,
//! server usages only, for the requested lifetime (at most a year). Whatever the request
//! carried beyond that is not copied. A request the signer cannot honour is marked Failed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rcgen::{
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SerialNumber,
};
use serde_json::json;

use super::{CertificateSigner, KUBELET_SERVING, NODE_USER_PREFIX, NODES_GROUP};
use super::{requested_node, serving_usages};
use crate::api::ApiError;
use crate::api::certificate_requests::{has_condition, parse_request};
use crate::controllers::Context;
use crate::kube::{Action, Controller, Informer, Kube, ObjectKey, Reconciler, WorkQueue};

/// The longest a serving certificate lives (and what it gets when the request names none).
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Clock skew between the control plane and nodes that a fresh certificate tolerates.
const BACKDATE: Duration = Duration::from_secs(300);

pub struct Signer {
    kube: Kube,
    csrs: Arc<Informer<CertificateSigningRequest>>,
    ca: Arc<dyn CertificateSigner>,
}

/// The signing controller; none without a CA to sign with (a controller manager started
/// without the cluster's signing key).
pub fn controller(ctx: &Context) -> Option<Controller> {
    let ca = ctx.config.signer.clone()?;
    let queue = WorkQueue::new();
    let csrs = ctx.informers.get::<CertificateSigningRequest>();
    let q = queue.clone();
    csrs.on_change(move |c| q.add(ObjectKey::of(&c.object().metadata)));
    let reconciler = Arc::new(Signer { kube: ctx.kube.named("certificate-controller"), csrs, ca });
    Some(Controller { name: "csrsigning", queue, reconciler, workers: 1 })
}

fn unix_time(t: std::time::SystemTime) -> Result<x509_parser::time::ASN1Time, String> {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let secs = i64::try_from(secs).map_err(|e| e.to_string())?;
    x509_parser::time::ASN1Time::from_timestamp(secs).map_err(|e| e.to_string())
}

/// The certificate parameters for `request`: what the signer vouches for, nothing more.
pub fn settle(
    mut request: CertificateSigningRequestParams,
    usages: &[String],
    expiration_seconds: Option<i32>,
) -> Result<CertificateSigningRequestParams, String> {
    let node = requested_node(&request)?;
    serving_usages(usages)?;
    let p = &mut request.params;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node}"));
    p.distinguished_name.push(DnType::OrganizationName, NODES_GROUP);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.name_constraints = None;
    p.crl_distribution_points = Vec::new();
    p.custom_extensions = Vec::new();
    p.use_authority_key_identifier_extension = true;
    let lifetime = expiration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(MAX_LIFETIME, |s| Duration::from_secs(s).min(MAX_LIFETIME));
    let now = std::time::SystemTime::now();
    p.not_before = unix_time(now - BACKDATE)?.to_datetime();
    p.not_after = unix_time(now + lifetime)?.to_datetime();
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(request)
}

#[async_trait]
impl Reconciler for Signer {
    async fn sync(&self, key: &ObjectKey) -> Result<Action, ApiError> {
        let Some(csr) = self.csrs.get(key) else { return Ok(Action::Done) };
        let value = serde_json::to_value(&*csr).unwrap_or_default();
        let issued = csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty());
        if csr.spec.signer_name != KUBELET_SERVING
            || !has_condition(&value, "Approved")
            || has_condition(&value, "Failed")
            || issued
        {
            return Ok(Action::Done);
        }
        let usages = csr.spec.usages.clone().unwrap_or_default();
        let signed = parse_request(&value)
            .and_then(|r| settle(r, &usages, csr.spec.expiration_seconds))
            .and_then(|params| self.ca.sign(&params));
        let status = match signed {
            Ok(pem) => {
                tracing::info!("certificate request {}: issued", key.name);
                json!({"certificate": base64::engine::general_purpose::STANDARD.encode(pem)})
            }
            Err(why) => {
                tracing::warn!("certificate request {}: cannot sign: {why}", key.name);
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let mut conditions = value["status"]["conditions"].clone();
                if let Some(list) = conditions.as_array_mut() {
                    list.push(json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                        "message": why, "lastUpdateTime": now, "lastTransitionTime": now}));
                }
                json!({"conditions": conditions})
            }
        };
        self.kube.patch_status::<CertificateSigningRequest, _>(None, &key.name, &status).await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::request;
    use super::*;

    #[test]
    fn what_the_signer_vouches_for() {
        let usages = vec!["digital signature".to_owned(), "server auth".to_owned()];
        let mut asked = request("system:node:a", &[NODES_GROUP], &["10.0.0.1"]);
        asked.params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        asked.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let p = settle(asked, &usages, Some(3600)).unwrap().params;
        assert_eq!(p.is_ca, IsCa::ExplicitNoCa);
        assert_eq!(p.extended_key_usages, [ExtendedKeyUsagePurpose::ServerAuth]);
        let life = p.not_after - p.not_before;
        assert_eq!(life.whole_seconds(), 3600 + BACKDATE.as_secs() as i64);
        assert!(settle(request("admin", &[], &[]), &usages, None).is_err());
        let client = vec!["client auth".to_owned()];
        assert!(settle(request("system:node:a", &[NODES_GROUP], &[]), &client, None).is_err());
    }
}
