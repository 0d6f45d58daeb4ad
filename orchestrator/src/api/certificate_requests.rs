//! certificates.k8s.io/v1 CertificateSigningRequest rules the API server keeps, as
//! Kubernetes keeps them: the requester's identity is stamped into the spec on create, the
//! spec never changes, `approval` writes only the Approved/Denied conditions (which are never
//! taken back), `status` writes the certificate and other conditions but never approves, and
//! a certificate is only set once, on an approved request.

use base64::Engine;
use rcgen::CertificateSigningRequestParams;
use serde_json::{Value, json};

use super::error::Cause;
use super::request::User;
use super::resources::Subresource;

/// The signer of node agents' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// The key usages a request may name (certificates.k8s.io/v1 KeyUsage).
const KNOWN_USAGES: [&str; 23] = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Whether `obj`'s kind is the CertificateSigningRequest.
pub fn is_csr(group: &str, kind: &str) -> bool {
    group == "certificates.k8s.io" && kind == "CertificateSigningRequest"
}

/// The PKCS#10 request in `spec.request` (base64 of PEM in JSON), its signature verified.
pub fn parse_request(obj: &Value) -> Result<CertificateSigningRequestParams, String> {
    let b64 = obj["spec"]["request"].as_str().unwrap_or("");
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("not base64: {e}"))?;
    let pem = std::str::from_utf8(&pem).map_err(|_| "not PEM text".to_owned())?;
    if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    CertificateSigningRequestParams::from_pem(pem).map_err(|e| match e {
        rcgen::Error::InvalidCertificationRequestSignature => {
            "the request's signature does not verify".to_owned()
        }
        e => format!("not a certificate request: {e}"),
    })
}

/// The conditions of `obj` of `type_`.
fn conditions<'a>(obj: &'a Value, type_: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    obj["status"]["conditions"].as_array().into_iter().flatten().filter(move |c| c["type"] == type_)
}

pub fn has_condition(obj: &Value, type_: &str) -> bool {
    conditions(obj, type_).next().is_some()
}

/// What a stored request must satisfy.
pub fn validate(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    match spec["signerName"].as_str() {
        None | Some("") => causes.push(Cause::required("spec.signerName")),
        Some(s) if !is_signer_name(s) => causes.push(Cause::invalid(
            "spec.signerName",
            format!("Invalid value: {s:?}: must be a fully qualified domain and path of the form 'example.com/signer-name'"),
        )),
        _ => {}
    }
    if spec["request"].as_str().unwrap_or("").is_empty() {
        causes.push(Cause::required("spec.request"));
    } else if let Err(why) = parse_request(obj) {
        causes.push(Cause::invalid("spec.request", format!("Invalid value: {why}")));
    }
    let usages = spec["usages"].as_array().cloned().unwrap_or_default();
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages"));
    }
    for (i, u) in usages.iter().enumerate() {
        if !u.as_str().is_some_and(|u| KNOWN_USAGES.contains(&u)) {
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: format!("spec.usages[{i}]"),
                message: format!("Unsupported value: {u}"),
            });
        }
    }
    if let Some(s) = spec["expirationSeconds"].as_i64()
        && s < 600
    {
        causes.push(Cause::invalid(
            "spec.expirationSeconds",
            format!(
                "Invalid value: {s}: may not specify a duration less than 600 seconds (10 minutes)"
            ),
        ));
    }
    if has_condition(obj, "Approved") && has_condition(obj, "Denied") {
        causes.push(Cause::invalid(
            "status.conditions",
            "Invalid value: Approved and Denied conditions are mutually exclusive",
        ));
    }
    let cert = obj["status"]["certificate"].as_str().unwrap_or("");
    if !cert.is_empty() && !has_condition(obj, "Approved") {
        causes.push(Cause {
            reason: "FieldValueForbidden",
            field: "status.certificate".into(),
            message: "Forbidden: certificate can only be set if an Approved condition is present"
                .into(),
        });
    }
}

fn is_signer_name(s: &str) -> bool {
    s.split_once('/').is_some_and(|(domain, path)| {
        super::validation::is_dns_subdomain(domain) && domain.contains('.') && !path.is_empty()
    })
}

/// On create: the spec records who asked (the user cannot claim another identity), and a
/// new request has no status.
pub fn stamp_requester(user: &User, obj: &mut Value) {
    let spec = &mut obj["spec"];
    spec["username"] = json!(user.name);
    spec["groups"] = json!(user.groups);
    match user.uid.as_str() {
        "" => drop(spec.as_object_mut().and_then(|s| s.remove("uid"))),
        uid => spec["uid"] = json!(uid),
    }
    match user.extra.is_empty() {
        true => drop(spec.as_object_mut().and_then(|s| s.remove("extra"))),
        false => spec["extra"] = json!(user.extra),
    }
}

/// What a write through `sub` may change, applied to `new` (the spec is immutable, kept by
/// the caller): `approval` only the Approved/Denied conditions, never removing one; `status`
/// everything but those; a certificate once set stays.
pub fn admit_update(
    current: &Value,
    mut new: Value,
    sub: Option<Subresource>,
) -> Result<Value, Vec<Cause>> {
    let is_decision = |c: &Value| c["type"] == "Approved" || c["type"] == "Denied";
    let list = |v: &Value| v["status"]["conditions"].as_array().cloned().unwrap_or_default();
    match sub {
        Some(Subresource::Approval) => {
            let decisions: Vec<Value> = list(&new).into_iter().filter(is_decision).collect();
            for old in list(current).iter().filter(|c| is_decision(c)) {
                if !decisions
                    .iter()
                    .any(|d| d["type"] == old["type"] && d["status"] == old["status"])
                {
                    return Err(vec![Cause::invalid(
                        "status.conditions",
                        format!(
                            "Forbidden: updates may not remove a condition of type {:?}",
                            old["type"]
                        ),
                    )]);
                }
            }
            let mut conds: Vec<Value> =
                list(current).into_iter().filter(|c| !is_decision(c)).collect();
            conds.extend(decisions);
            new["status"] = current["status"].clone();
            new["status"]["conditions"] = json!(conds);
        }
        Some(Subresource::Status) => {
            let mut conds: Vec<Value> =
                list(&new).into_iter().filter(|c| !is_decision(c)).collect();
            conds.extend(list(current).into_iter().filter(is_decision));
            new["status"]["conditions"] = json!(conds);
            let old_cert = current["status"]["certificate"].as_str().unwrap_or("");
            if !old_cert.is_empty()
                && new["status"]["certificate"] != current["status"]["certificate"]
            {
                return Err(vec![Cause::invalid(
                    "status.certificate",
                    "Invalid value: updates may not modify existing certificate content",
                )]);
            }
        }
        _ => {}
    }
    if new["status"]["conditions"].as_array().is_some_and(Vec::is_empty)
        && let Some(s) = new["status"].as_object_mut()
    {
        s.remove("conditions");
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["10.0.0.1".to_owned()]).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(pem: &str) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        json!({"spec": {"request": b64, "signerName": KUBELET_SERVING, "usages": ["server auth"]}})
    }

    fn causes(obj: &Value) -> Vec<String> {
        let mut c = Vec::new();
        validate(obj, &mut c);
        c.into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
    }

    #[test]
    fn requests_are_checked() {
        assert!(causes(&csr(&request_pem())).is_empty());
        let not_csr = csr("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(causes(&not_csr)[0].contains("CERTIFICATE REQUEST"), "{:?}", causes(&not_csr));
        let garbage =
            csr("-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n");
        assert!(causes(&garbage)[0].starts_with("spec.request"));
        let mut bad = csr(&request_pem());
        bad["spec"]["usages"] = json!(["server auth", "teleport"]);
        bad["spec"]["signerName"] = json!("nodomain");
        assert_eq!(causes(&bad).len(), 2, "{:?}", causes(&bad));
        let mut cert_unapproved = csr(&request_pem());
        cert_unapproved["status"]["certificate"] = json!("AAAA");
        assert!(causes(&cert_unapproved)[0].starts_with("status.certificate"));
    }

    #[test]
    fn approval_and_status_write_their_own_conditions() {
        let current = json!({"status": {}});
        let approve = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": "Zm9v"}});
        let approved = admit_update(&current, approve, Some(Subresource::Approval)).unwrap();
        assert_eq!(approved["status"]["conditions"][0]["type"], "Approved");
        assert!(approved["status"]["certificate"].is_null(), "approval sets no certificate");
        // A status write can neither approve nor take an approval back.
        let status = json!({"status": {"conditions": [{"type": "Denied", "status": "True"}]}});
        let s = admit_update(&approved, status, Some(Subresource::Status)).unwrap();
        assert_eq!(s["status"]["conditions"], json!([{"type": "Approved", "status": "True"}]));
        let undo = json!({"status": {}});
        assert!(admit_update(&approved, undo, Some(Subresource::Approval)).is_err());
    }

    #[test]
    fn the_requester_is_whoever_asked() {
        let mut obj =
            json!({"spec": {"username": "system:node:other", "groups": ["system:masters"]}});
        let user = User { name: "alice".into(), groups: vec!["dev".into()], ..Default::default() };
        stamp_requester(&user, &mut obj);
        assert_eq!(obj["spec"]["username"], "alice");
        assert_eq!(obj["spec"]["groups"], json!(["dev"]));
    }
}
