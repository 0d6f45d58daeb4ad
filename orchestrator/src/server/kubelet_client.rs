//! The API server's connections to node agents (for logs, exec, attach, port-forward): TLS
//! with the API server's own client certificate, the node's certificate verified against the
//! cluster CA and the address the Node object gives.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::ServerError;
use super::tls::Pki;

pub struct KubeletClient {
    tls: tokio_rustls::TlsConnector,
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{what}: {e}"))
}

impl KubeletClient {
    pub fn new(pki: &Pki) -> Result<Self, ServerError> {
        let cert = pki.kubelet_client_cert()?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| tls_err("kubelet client certificate", e))?;
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
            .map_err(|e| tls_err("kubelet client key", e))?;
        let mut roots = rustls::RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(pki.ca_pem.as_bytes())
            .map_err(|e| tls_err("CA certificate", e))?;
        roots.add(ca).map_err(|e| tls_err("CA certificate", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err("TLS versions", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_err("kubelet client certificate", e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: tokio_rustls::TlsConnector::from(Arc::new(config)) })
    }

    /// A verified connection to the node agent at `host` (as the Node lists it) and `port`.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TlsStream<TcpStream>, String> {
        let addr =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("node address {host:?}: {e}"))?;
        let tcp =
            TcpStream::connect(&addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        self.tls.connect(name, tcp).await.map_err(|e| format!("TLS with {addr}: {e}"))
    }
}
