//! Who may use the node agent's port (logs, exec, attach, port-forward): TLS with the node's
//! serving certificate, client certificates from the cluster CA required at the handshake,
//! and of those only the API server's own (kube-apiserver's `--kubelet-client-certificate`)
//! let through, as a kubelet with `--client-ca-file` whose authorizer admits the API server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::error::NodeError;
use super::{Shared, server, serving_cert};
use crate::kube::connection::ConnectionConfig;
use crate::upgrade_proxy::Body;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The user (CN) of the API server's client certificate toward nodes.
pub const APISERVER_USER: &str = "kube-apiserver-kubelet-client";
/// Its group (O): checked with the user, so that no other identity of the CA passes.
pub const APISERVER_GROUP: &str = "ringfence:kubelet-api-clients";

fn tls_err(what: &str, e: impl std::fmt::Display) -> NodeError {
    NodeError::Tls(format!("{what}: {e}"))
}

/// The TLS side of the door: this certificate, and client certificates verified against
/// `client_ca` (missing or foreign ones end the handshake).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Arc<rustls::RootCertStore>,
) -> Result<Arc<rustls::ServerConfig>, NodeError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(client_ca, provider.clone())
            .build()
            .map_err(|e| tls_err("client verifier", e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("serving certificate", e))?;
    // Upgrades (exec, attach, port-forward) are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verified client: its user (CN) and groups (O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub user: String,
    pub groups: Vec<String>,
}

impl Client {
    /// The identity in a client certificate the handshake already verified.
    pub fn from_cert(cert: &CertificateDer<'_>) -> Option<Client> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let subject = parsed.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        Some(Client { user, groups })
    }

    /// Whether this is the API server.
    pub fn is_apiserver(&self) -> bool {
        self.user == APISERVER_USER && self.groups.iter().any(|g| g == APISERVER_GROUP)
    }
}

/// The agent's port, bound (so the Node can advertise it) but not yet answering.
pub struct Door {
    listener: TcpListener,
    port: u16,
}

impl Door {
    /// Binds `addr` (port 0 picks a free one).
    pub async fn bind(addr: (&str, u16)) -> Result<Door, NodeError> {
        let listen_error =
            |source| NodeError::Listen { addr: format!("{}:{}", addr.0, addr.1), source };
        let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        Ok(Door { listener, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Obtains the node's serving certificate (the Node must be registered, its addresses are
    /// what the certificate may name) and serves the endpoints behind the door; client
    /// certificates are checked against the CA of `kubeconfig`'s cluster.
    pub async fn open(self, shared: Arc<Shared>, kubeconfig: &Path) -> Result<(), NodeError> {
        let client_ca = ConnectionConfig::from_kubeconfig(kubeconfig)?.roots();
        let cert = serving_cert::obtain(
            &shared.kube,
            &shared.node,
            &shared.address,
            serving_cert::ISSUE_TIMEOUT,
        )
        .await?;
        let acceptor = TlsAcceptor::from(server_config(cert.chain, cert.key, client_ca)?);
        tokio::spawn(accept_loop(self.listener, acceptor, shared));
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("node endpoints: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!("node endpoints: refused {peer} at the TLS handshake: {e}");
                    return;
                }
                Err(_) => return,
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(Client::from_cert);
            let allowed = client.as_ref().is_some_and(Client::is_apiserver);
            let user = client.map(|c| c.user).unwrap_or_default();
            if !allowed {
                tracing::info!("node endpoints: forbidding {peer} (user {user:?})");
            }
            let svc = hyper::service::service_fn(move |req| {
                let (shared, user) = (shared.clone(), user.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(if allowed {
                        server::handle(shared, req).await
                    } else {
                        forbidden(&user, &req)
                    })
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc).await;
        });
    }
}

/// The answer to a client the CA vouches for that is not the API server, worded as the
/// kubelet words it.
fn forbidden(user: &str, req: &Request<Incoming>) -> Response<Body> {
    let verb = if req.method() == http::Method::GET { "get" } else { "create" };
    server::text(
        StatusCode::FORBIDDEN,
        format!("Forbidden (user={user}, verb={verb}, resource=nodes, subresource=proxy)\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_apiserver_identity_passes() {
        let c = |user: &str, groups: &[&str]| Client {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(c(APISERVER_USER, &[APISERVER_GROUP]).is_apiserver());
        assert!(!c(APISERVER_USER, &[]).is_apiserver());
        assert!(!c("kubernetes-admin", &["system:masters"]).is_apiserver());
        assert!(!c("system:node:a", &[APISERVER_GROUP]).is_apiserver());
    }
}
