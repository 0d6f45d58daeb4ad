//! Service account tokens: JSON Web Tokens signed with ES256 (ECDSA P-256, SHA-256) by a key
//! only the API server holds, carrying Kubernetes' claims (`sub`
//! `system:serviceaccount:<ns>:<name>`, the audiences, the times, and under `kubernetes.io`
//! the account's and any bound object's name and uid). This module signs and checks the
//! token itself; whether the account and the bound object still exist is the engine's
//! question ([`super::engine`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// Who issues the tokens (`iss`), as a kube-apiserver with default flags says.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the service account signing key: {0}")]
    Key(String),
    #[error("not a token of this server: {0}")]
    Malformed(&'static str),
    #[error("invalid signature")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("signing failed")]
    Sign,
}

/// An object a token is bound to (Kubernetes' `kubernetes.io` private claims).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateClaims {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    /// When a token whose lifetime the server extended should have been renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: PrivateClaims,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: String,
}

/// The server's signing key.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    /// Names the key in the tokens' header (a digest of its public half).
    kid: String,
    rng: SystemRandom,
}

impl TokenSigner {
    /// The key in `path` (PKCS#8 PEM), made on first use with mode 0600.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, TokenError> {
        let pem = match std::fs::read_to_string(path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| TokenError::Key(e.to_string()))?;
                let pem = pair.serialize_pem();
                write_private(path, &pem)
                    .map_err(|e| TokenError::Key(format!("{}: {e}", path.display())))?;
                pem
            }
            Err(e) => return Err(TokenError::Key(format!("{}: {e}", path.display()))),
        };
        let pair = rcgen::KeyPair::from_pem(&pem)
            .map_err(|e| TokenError::Key(format!("{}: {e}", path.display())))?;
        Self::from_pkcs8(&pair.serialize_der())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok(Self { key, kid, rng })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header { alg: "ES256".into(), kid: self.kid.clone() };
        let encode = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let head = serde_json::to_vec(&header).map_err(|_| TokenError::Sign)?;
        let body = serde_json::to_vec(claims).map_err(|_| TokenError::Sign)?;
        let signed = format!("{}.{}", encode(&head), encode(&body));
        let sig = self.key.sign(&self.rng, signed.as_bytes()).map_err(|_| TokenError::Sign)?;
        Ok(format!("{signed}.{}", encode(sig.as_ref())))
    }

    /// The claims of a token this key signed, if it is valid at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(head), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not three parts"));
        };
        let decode =
            |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Malformed("base64"));
        let header: Header =
            serde_json::from_slice(&decode(head)?).map_err(|_| TokenError::Malformed("header"))?;
        if header.alg != "ES256" || header.kid != self.kid {
            return Err(TokenError::Malformed("another algorithm or key"));
        }
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        );
        let signed_len = head.len() + 1 + body.len();
        public
            .verify(&token.as_bytes()[..signed_len], &decode(sig)?)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(body)?).map_err(|_| TokenError::Malformed("claims"))?;
        if claims.iss != ISSUER {
            return Err(TokenError::Malformed("issuer"));
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:ns:robot".into(),
            aud: vec![ISSUER.into()],
            exp,
            iat: 100,
            nbf: 100,
            jti: "j".into(),
            kubernetes: PrivateClaims {
                namespace: "ns".into(),
                serviceaccount: Ref { name: "robot".into(), uid: "u1".into() },
                pod: None,
                secret: None,
                node: None,
                warnafter: None,
            },
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.key");
        let signer = TokenSigner::load_or_create(&path).unwrap();
        let token = signer.sign(&claims(1000)).unwrap();
        assert_eq!(signer.verify(&token, 500).unwrap(), claims(1000));
        // The same key comes back from its file.
        let again = TokenSigner::load_or_create(&path).unwrap();
        assert_eq!(again.verify(&token, 500).unwrap().sub, "system:serviceaccount:ns:robot");
        assert!(matches!(signer.verify(&token, 1000), Err(TokenError::Expired)));
        assert!(matches!(signer.verify(&token, 99), Err(TokenError::NotYetValid)));
        // Another account's name in the same signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims(1000);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(matches!(signer.verify(&parts.join("."), 500), Err(TokenError::Signature)));
        // Another server's key.
        let other = TokenSigner::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.verify(&token, 500).is_err());
        for junk in ["", "a.b", "a.b.c.d", "!!.??.##", "e30.e30.e30"] {
            assert!(signer.verify(junk, 500).is_err(), "{junk}");
        }
    }
}
