//! The admin kubeconfig written to the data directory.

use base64::Engine as _;
use serde_json::json;

use super::tls::ClientCert;

pub const CLUSTER: &str = "ringfence";

/// A kubeconfig for `server` trusting `ca_pem`, as `user` with a client certificate or token.
pub fn render(
    server: &str,
    ca_pem: &str,
    user: &str,
    cert: Option<&ClientCert>,
    token: Option<&str>,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut creds = json!({});
    if let Some(c) = cert {
        creds["client-certificate-data"] = json!(b64(&c.cert_pem));
        creds["client-key-data"] = json!(b64(&c.key_pem));
    }
    if let Some(t) = token {
        creds["token"] = json!(t);
    }
    let context = format!("{user}@{CLUSTER}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": CLUSTER, "cluster": { "server": server, "certificate-authority-data": b64(ca_pem) } }],
        "users": [{ "name": user, "user": creds }],
        "contexts": [{ "name": context, "context": { "cluster": CLUSTER, "user": user, "namespace": "default" } }],
        "current-context": context,
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_else(|_| doc.to_string())
}
