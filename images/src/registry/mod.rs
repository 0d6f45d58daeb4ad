//! A client of the OCI distribution API (registry v2): manifests and blobs of one repository,
//! anonymous or with bearer tokens from the registry's token service.

mod auth;

use std::net::IpAddr;
use std::sync::Mutex;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use crate::digest::Digest;
use crate::error::ImageError;
use crate::reference::{DEFAULT_REGISTRY, Reference};

pub struct RegistryClient {
    http: reqwest::Client,
    /// `https://registry-1.docker.io` or `http://127.0.0.1:5000`.
    base: String,
    registry: String,
    repository: String,
    token: Mutex<Option<String>>,
}

impl RegistryClient {
    pub fn new(reference: &Reference, insecure: &[String]) -> Result<RegistryClient, ImageError> {
        let host = if reference.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            reference.registry.as_str()
        };
        let scheme = if is_loopback(host)
            || insecure.iter().any(|h| h == &reference.registry || h == host)
        {
            "http"
        } else {
            "https"
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("ringfence/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(30))
            // A registry that stops sending mid-blob fails the pull instead of hanging it.
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| ImageError::Registry {
                registry: reference.registry.clone(),
                detail: format!("HTTP client: {e}"),
            })?;
        Ok(RegistryClient {
            http,
            base: format!("{scheme}://{host}"),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            token: Mutex::new(None),
        })
    }

    pub fn error(&self, detail: impl ToString) -> ImageError {
        ImageError::Registry { registry: self.registry.clone(), detail: detail.to_string() }
    }

    /// Fetches a manifest or index by tag or digest: its bytes and the media type the registry gave.
    pub async fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Option<String>), ImageError> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let resp = self.get(&url, Some(crate::spec::media::ACCEPT_MANIFESTS)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ImageError::NotFound(format!(
                "{}/{}:{reference}",
                self.registry, self.repository
            )));
        }
        let resp = self.ok(resp, &url).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        if resp.content_length().is_some_and(|n| n > crate::blobs::MAX_DOCUMENT) {
            return Err(self.error(format!("manifest {reference} is larger than 4 MiB")));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.error(format!("reading manifest {reference}: {e}")))?;
        if bytes.len() as u64 > crate::blobs::MAX_DOCUMENT {
            return Err(self.error(format!("manifest {reference} is larger than 4 MiB")));
        }
        Ok((bytes.to_vec(), media_type))
    }

    /// Starts downloading a blob; the caller streams the body.
    pub async fn blob(&self, digest: &Digest) -> Result<Response, ImageError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.get(&url, None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(ImageError::MissingBlob(format!(
                "{digest} in {}/{}",
                self.registry, self.repository
            )));
        }
        self.ok(resp, &url).await
    }

    /// A GET, answering one bearer challenge with an anonymous token.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        let send = |token: Option<String>| {
            let mut req = self.http.get(url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(t) = token {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            req.send()
        };
        let cached = self.token.lock().map(|t| t.clone()).unwrap_or(None);
        let resp = send(cached).await.map_err(|e| self.error(format!("GET {url}: {e}")))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let token = self.fetch_token(&challenge).await?;
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.clone());
        }
        send(Some(token)).await.map_err(|e| self.error(format!("GET {url}: {e}")))
    }

    async fn fetch_token(&self, challenge: &str) -> Result<String, ImageError> {
        let (scheme, params) = auth::parse_challenge(challenge)
            .ok_or_else(|| self.error("401 without a WWW-Authenticate challenge"))?;
        if scheme != "bearer" {
            return Err(self.error(format!(
                "requires {scheme} authentication; only anonymous bearer tokens are supported"
            )));
        }
        let realm =
            params.get("realm").ok_or_else(|| self.error("bearer challenge without a realm"))?;
        let default_scope = format!("repository:{}:pull", self.repository);
        let scope = params.get("scope").unwrap_or(&default_scope);
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = params.get("service") {
            query.push(("service", service.as_str()));
        }
        let resp = self
            .http
            .get(realm)
            .query(&query)
            .send()
            .await
            .map_err(|e| self.error(format!("token from {realm}: {e}")))?;
        let resp = self.ok(resp, realm).await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body: TokenResponse =
            resp.json().await.map_err(|e| self.error(format!("token from {realm}: {e}")))?;
        body.token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.error(format!("{realm} returned no token")))
    }

    async fn ok(&self, resp: Response, url: &str) -> Result<Response, ImageError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        Err(self.error(format!("GET {url}: {status}: {}", body.trim())))
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = match host.rsplit_once(':') {
        // `[::1]:5000`, `127.0.0.1:5000`, `localhost:5000`
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
