//! The node's serving certificate, obtained the kubelet's way: a fresh key and a PKCS#10
//! request for `CN=system:node:NAME, O=system:nodes` naming the node's addresses, sent as a
//! certificates.k8s.io/v1 CertificateSigningRequest to signer `kubernetes.io/kubelet-serving`,
//! and waited for until the control plane approves and issues it. The key never leaves this
//! process; the node needs no file from the cluster's CA.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::NodeError;
use crate::api::certificate_requests::KUBELET_SERVING;
use crate::controllers::certificates::{NODE_USER_PREFIX, NODES_GROUP};
use crate::kube::Kube;

/// How long the node waits for its certificate before giving up.
pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

pub struct ServingCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn cert_err(e: impl std::fmt::Display) -> NodeError {
    NodeError::ServingCert(e.to_string())
}

/// The names the certificate covers: the node's address and, if it is a DNS name, its name
/// (the Node object's InternalIP and Hostname addresses).
fn names(node: &str, address: &str) -> Vec<String> {
    let mut names = vec![address.to_owned()];
    if node != address && crate::api::validation::is_dns_subdomain(node) {
        names.push(node.to_owned());
    }
    names
}

/// The key and the request (PEM) for `node` at `address`.
fn make_request(node: &str, address: &str) -> Result<(KeyPair, String), NodeError> {
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(names(node, address)).map_err(cert_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node}"));
    params.distinguished_name.push(DnType::OrganizationName, NODES_GROUP);
    let pem = params.serialize_request(&key).and_then(|r| r.pem()).map_err(cert_err)?;
    Ok((key, pem))
}

/// Why a request will not be issued, if its conditions say so.
fn refusal(csr: &CertificateSigningRequest) -> Option<String> {
    let conditions = csr.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().find(|c| c.type_ == "Denied" || c.type_ == "Failed").map(|c| {
        format!("{}: {}", c.type_.to_lowercase(), c.message.as_deref().unwrap_or("no reason given"))
    })
}

/// Asks the control plane for a serving certificate and waits (at most `timeout`) for it.
pub async fn obtain(
    kube: &Kube,
    node: &str,
    address: &str,
    timeout: Duration,
) -> Result<ServingCert, NodeError> {
    let (key, request_pem) = make_request(node, address)?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.into_bytes()),
            signer_name: KUBELET_SERVING.into(),
            usages: Some(
                ["digital signature", "key encipherment", "server auth"].map(String::from).into(),
            ),
            ..Default::default()
        },
        status: None,
    };
    let created = kube.create(&csr).await.map_err(|e| {
        NodeError::ServingCert(format!("creating a CertificateSigningRequest: {e}"))
    })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!("requested a serving certificate: CertificateSigningRequest {name}");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match kube.get::<CertificateSigningRequest>(None, &name).await {
            Ok(Some(csr)) => {
                if let Some(why) = refusal(&csr) {
                    return Err(NodeError::ServingCert(format!(
                        "CertificateSigningRequest {name} was {why}"
                    )));
                }
                let cert = csr.status.and_then(|s| s.certificate).map(|c| c.0).unwrap_or_default();
                if !cert.is_empty() {
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                        .collect::<Result<_, _>>()
                        .map_err(|e| cert_err(format!("the issued certificate of {name}: {e}")))?;
                    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                        .map_err(cert_err)?;
                    tracing::info!("serving certificate issued (CertificateSigningRequest {name})");
                    return Ok(ServingCert { chain, key });
                }
            }
            Ok(None) => {
                return Err(NodeError::ServingCert(format!(
                    "CertificateSigningRequest {name} was deleted before it was issued"
                )));
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            let seen = last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default();
            return Err(NodeError::ServingCert(format!(
                "CertificateSigningRequest {name} (signer {KUBELET_SERVING}) was not issued within \
                 {}s{seen}: the control plane's certificate controllers approve and sign it; \
                 check that they run with the cluster CA, or approve it with \
                 `kubectl certificate approve {name}`",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_node_and_its_addresses() {
        let (_, pem) = make_request("node-a", "10.0.0.1").unwrap();
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&pem).unwrap();
        let node = crate::controllers::certificates::requested_node(&parsed).unwrap();
        assert_eq!(node, "node-a");
        assert_eq!(parsed.params.subject_alt_names.len(), 2);
        assert_eq!(names("10.0.0.1", "10.0.0.1"), ["10.0.0.1"]);
        assert_eq!(names("Bad_Name", "10.0.0.1"), ["10.0.0.1"]);
    }
}
