//! One HTTPS connection to the API server, configured from a kubeconfig: a
//! [`ConnectionConfig`] (server, trust, credentials) opens any number of [`Connection`]s, each
//! one HTTP/1.1 connection sending raw REST requests. [`super::https::HttpsClient`] pools
//! them behind the [`super::Client`] seam; benchmarks and tests use them directly (as many as
//! they need, with untyped JSON).

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

#[derive(Clone)]
pub struct ConnectionConfig {
    host: String,
    port: u16,
    roots: Arc<rustls::RootCertStore>,
    /// The same CA certificates as PEM text.
    ca_pem: String,
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn tls_config(
    roots: Arc<rustls::RootCertStore>,
    auth: Option<ClientAuth>,
) -> Result<Arc<rustls::ClientConfig>, ConnectionError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectionError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match auth {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ConnectionError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn kc(msg: impl Into<String>) -> ConnectionError {
    ConnectionError::Kubeconfig(msg.into())
}

fn b64(v: &Value, what: &str) -> Result<Vec<u8>, ConnectionError> {
    let s = v.as_str().ok_or_else(|| kc(format!("{what} is missing")))?;
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| kc(format!("{what}: {e}")))
}

impl ConnectionConfig {
    /// The current context's cluster and user from a kubeconfig file (inline data only).
    pub fn from_kubeconfig(path: &Path) -> Result<Self, ConnectionError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| kc(format!("{}: {e}", path.display())))?;
        let doc: Value = serde_yaml::from_str(&text).map_err(|e| kc(e.to_string()))?;
        let cluster = &doc["clusters"][0]["cluster"];
        let user = &doc["users"][0]["user"];
        let server = cluster["server"].as_str().ok_or_else(|| kc("no cluster server"))?;
        let hostport =
            server.strip_prefix("https://").ok_or_else(|| kc("the server must be https://"))?;
        let (host, port) = hostport
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(|| kc("the server needs a port"))?;
        let port: u16 = port.parse().map_err(|_| kc("bad port"))?;
        let ca = b64(&cluster["certificate-authority-data"], "certificate-authority-data")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots
                .add(cert.map_err(|e| ConnectionError::Tls(e.to_string()))?)
                .map_err(|e| ConnectionError::Tls(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let auth = if user.get("client-certificate-data").is_some() {
            let cert = b64(&user["client-certificate-data"], "client-certificate-data")?;
            let key = b64(&user["client-key-data"], "client-key-data")?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<_, _>>()
                .map_err(|e| ConnectionError::Tls(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| ConnectionError::Tls(e.to_string()))?;
            Some((chain, key))
        } else {
            None
        };
        let tls = tls_config(roots.clone(), auth)?;
        Ok(Self {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            roots,
            ca_pem: String::from_utf8_lossy(&ca).into_owned(),
            tls,
            token: user["token"].as_str().map(str::to_owned),
        })
    }

    /// The cluster's CA certificates (the kubeconfig's `certificate-authority-data`).
    pub fn roots(&self) -> Arc<rustls::RootCertStore> {
        self.roots.clone()
    }

    /// The cluster's CA certificates as PEM (what in-cluster clients are given).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The same server and trust, authenticating with a bearer token instead.
    pub fn with_token(&self, token: &str) -> Result<Self, ConnectionError> {
        Ok(Self {
            tls: tls_config(self.roots.clone(), None)?,
            token: Some(token.to_owned()),
            ..self.clone()
        })
    }

    pub async fn connect(&self) -> Result<Connection, ConnectionError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| ConnectionError::Connect(addr.clone(), e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| ConnectionError::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectionError::Connect(addr.clone(), e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| ConnectionError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender, authority: addr, token: self.token.clone() })
    }
}

pub struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    authority: String,
    token: Option<String>,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Connection {
    fn build(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<http::Request<Full<Bytes>>, ConnectionError> {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "ringfence-client/0.1");
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(t) = &self.token {
            b = b.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Full::new(Bytes::from(body))).map_err(|e| ConnectionError::Http(e.to_string()))
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, ConnectionError> {
        let req = self.build(method, path, content_type, body)?;
        self.sender.ready().await.map_err(|e| ConnectionError::Http(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| ConnectionError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ConnectionError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, ConnectionError> {
        self.request("GET", path, None, Vec::new()).await
    }

    pub async fn send_json(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<Reply, ConnectionError> {
        self.request(
            method,
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap_or_default(),
        )
        .await
    }

    /// Opens a watch; events arrive as JSON values on the returned channel.
    pub async fn watch(
        mut self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<Value>, ConnectionError> {
        let req = self.build("GET", path, None, Vec::new())?;
        self.sender.ready().await.map_err(|e| ConnectionError::Http(e.to_string()))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| ConnectionError::Http(e.to_string()))?;
        if resp.status() != http::StatusCode::OK {
            return Err(ConnectionError::Http(format!("watch answered {}", resp.status())));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let _keep = self;
            let mut buf = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                buf.extend_from_slice(&data);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&line)
                        && tx.send(v).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }
}
