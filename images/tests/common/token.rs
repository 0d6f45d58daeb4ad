//! A token service for `docker-registry`'s bearer auth: it hands anyone a JWT (ES256, with its
//! certificate in `x5c`) granting pull and push, as an anonymous-access registry's would.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SERVICE: &str = "ringfence-test-registry";
pub const ISSUER: &str = "ringfence-test-issuer";

pub struct TokenService {
    pub realm: String,
    pub cert_pem: String,
    /// How many tokens it handed out.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenService {
    pub async fn start() -> TokenService {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["token-issuer".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &SystemRandom::new(),
        )
        .unwrap();
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(cert.der())] });
        let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = issued.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                // `GET /token?scope=repository:NAME:pull&service=... HTTP/1.1`
                let scope = request
                    .split(['?', '&', ' '])
                    .find_map(|p| p.strip_prefix("scope="))
                    .unwrap_or("");
                let scope = scope.replace("%3A", ":").replace("%2F", "/").replace("%2C", ",");
                let repo = scope.split(':').nth(1).unwrap_or("").to_string();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
                let claims = serde_json::json!({
                    "iss": ISSUER, "sub": "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("t{now}{n}"),
                    "access": [{ "type": "repository", "name": repo, "actions": ["pull", "push"] }],
                });
                let signing_input = format!(
                    "{header}.{}",
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
                );
                let sig = signer.sign(&SystemRandom::new(), signing_input.as_bytes()).unwrap();
                let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = serde_json::json!({ "token": token }).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            }
        });
        TokenService { realm, cert_pem: cert.pem(), issued }
    }

    /// The registry's `auth:` section trusting this service (its certificate written to `dir`).
    pub fn registry_auth(&self, dir: &std::path::Path) -> String {
        let bundle = dir.join("token-ca.pem");
        std::fs::write(&bundle, &self.cert_pem).unwrap();
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm,
            bundle.display()
        )
    }

    /// A token for pushing in the test, fetched like a client would.
    pub async fn token_for(&self, repo: &str) -> String {
        let url = format!("{}?service={SERVICE}&scope=repository:{repo}:pull,push", self.realm);
        let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }
}
