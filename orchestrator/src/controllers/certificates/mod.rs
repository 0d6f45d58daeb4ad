//! Certificate requests for node agents' serving certificates (signer
//! `kubernetes.io/kubelet-serving`), as kube-controller-manager's csrapproving and
//! csrsigning controllers handle them:
//!
//! - [`approver`]: approves a request made by the node itself (or an admin) whose names are
//!   the node's own addresses; denies one that can never be valid; leaves the rest to people
//!   (`kubectl certificate approve`).
//! - [`signer`]: issues approved requests with the cluster CA (the [`CertificateSigner`] the
//!   process holding the CA key provides), or marks them Failed saying why.

pub mod approver;
pub mod signer;

use rcgen::{CertificateSigningRequestParams, DnType, DnValue};

pub use crate::api::certificate_requests::KUBELET_SERVING;

/// The group every node's identity is in.
pub const NODES_GROUP: &str = "system:nodes";
/// A node's user name is this and the node's name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The usages a serving certificate may carry; `server auth` is required.
const SERVING_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

/// Issues certificates with the cluster CA.
pub trait CertificateSigner: Send + Sync {
    /// The PEM certificate for `request` (whose parameters the signer already settled).
    fn sign(&self, request: &CertificateSigningRequestParams) -> Result<String, String>;
}

impl std::fmt::Debug for dyn CertificateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateSigner")
    }
}

fn text(v: &DnValue) -> Option<String> {
    match v {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        DnValue::Ia5String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The node a kubelet-serving request is for: its subject must be exactly
/// `CN=system:node:NAME, O=system:nodes`.
pub fn requested_node(request: &CertificateSigningRequestParams) -> Result<String, String> {
    let dn = &request.params.distinguished_name;
    let mut cn = None;
    let mut orgs = Vec::new();
    for (t, v) in dn.iter() {
        match t {
            DnType::CommonName => cn = text(v),
            DnType::OrganizationName => orgs.push(text(v).unwrap_or_default()),
            _ => return Err("the subject may hold only CN and O".into()),
        }
    }
    let name = cn
        .as_deref()
        .and_then(|cn| cn.strip_prefix(NODE_USER_PREFIX))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("the subject's CN must be {NODE_USER_PREFIX}<node name>"))?;
    if orgs != [NODES_GROUP] {
        return Err(format!("the subject's O must be exactly {NODES_GROUP}"));
    }
    Ok(name.to_owned())
}

/// Whether `usages` fit a serving certificate.
pub fn serving_usages(usages: &[String]) -> Result<(), String> {
    if !usages.iter().any(|u| u == "server auth") {
        return Err("usages must include \"server auth\"".into());
    }
    match usages.iter().find(|u| !SERVING_USAGES.contains(&u.as_str())) {
        Some(u) => Err(format!("usage {u:?} is not allowed for {KUBELET_SERVING}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn request(
        cn: &str,
        orgs: &[&str],
        sans: &[&str],
    ) -> CertificateSigningRequestParams {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let pem = p.serialize_request(&key).unwrap().pem().unwrap();
        CertificateSigningRequestParams::from_pem(&pem).unwrap()
    }

    #[test]
    fn subjects_name_one_node() {
        assert_eq!(requested_node(&request("system:node:a", &[NODES_GROUP], &[])).unwrap(), "a");
        assert!(requested_node(&request("system:node:", &[NODES_GROUP], &[])).is_err());
        assert!(requested_node(&request("admin", &[NODES_GROUP], &[])).is_err());
        assert!(requested_node(&request("system:node:a", &["system:masters"], &[])).is_err());
        assert!(
            requested_node(&request("system:node:a", &[NODES_GROUP, "system:masters"], &[]))
                .is_err()
        );
    }

    #[test]
    fn usages_of_a_serving_certificate() {
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(serving_usages(&u(&["digital signature", "server auth"])).is_ok());
        assert!(serving_usages(&u(&["digital signature"])).is_err());
        assert!(serving_usages(&u(&["server auth", "client auth"])).is_err());
    }
}
