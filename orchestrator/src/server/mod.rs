//! `ringfence server`: the API server over HTTPS. Sets up the data directory (store, PKI,
//! admin kubeconfig), bootstraps the cluster's built-in objects, runs the background lifecycle
//! work and compaction, and serves connections (HTTP/1.1 and HTTP/2 over rustls).

mod authn;
mod http;
mod impersonation;
pub mod kubeconfig;
mod kubelet_client;
mod master_endpoints;
mod metrics;
mod node_proxy;
mod protobuf;
pub mod router;
pub mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{Api, ApiConfig, ServiceCidr, lifecycle};
use crate::controllers::{self, ControllerConfig};
use crate::kube::{InProcess, Informers, Kube};
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::store::{EmbeddedStore, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] crate::api::ApiError),
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(transparent)]
    Tokens(#[from] crate::api::service_account_token::TokenError),
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub service_cidr: ServiceCidr,
    /// Static bearer tokens; default `DATA_DIR/tokens.csv` when it exists.
    pub token_file: Option<PathBuf>,
    /// How often history older than the previous tick is compacted away.
    pub compact_interval: Duration,
    /// Run the scheduler in this process.
    pub scheduler: bool,
    /// Run the controller manager in this process.
    pub controllers: bool,
    pub controller_config: ControllerConfig,
    /// More names and addresses the serving certificate covers (e.g. the address nodes in
    /// another network reach the server at).
    pub tls_sans: Vec<String>,
    /// The address pods reach this server at, published as the `kubernetes` Service's
    /// endpoint (default: the listen address unless it is a loopback or wildcard address).
    pub advertise_address: Option<std::net::IpAddr>,
}

impl ServerConfig {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            service_cidr: ApiConfig::default().service_cidr,
            token_file: None,
            compact_interval: Duration::from_secs(300),
            scheduler: true,
            controllers: true,
            controller_config: ControllerConfig::default(),
            tls_sans: Vec::new(),
            advertise_address: None,
        }
    }
}

/// A server that is listening.
pub struct RunningServer {
    pub address: SocketAddr,
    pub kubeconfig: PathBuf,
    /// Whether this start created the data directory's admin credentials.
    pub first_start: bool,
    pub api: Arc<Api>,
    task: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Serves until the task ends (it does not, unless aborted).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Stops accepting connections and stops the background work.
    pub fn shutdown(self) {
        self.task.abort();
        for t in self.background {
            t.abort();
        }
    }
}

/// Connects to etcd.
pub async fn open_etcd(endpoint: &str) -> Result<Arc<dyn Store>, ServerError> {
    Ok(Arc::new(crate::store::EtcdStore::connect(endpoint).await?))
}

/// Opens the embedded store in the data directory.
pub fn open_embedded(data_dir: &Path) -> Result<Arc<dyn Store>, ServerError> {
    std::fs::create_dir_all(data_dir).map_err(|e| ServerError::Io(data_dir.to_owned(), e))?;
    Ok(Arc::new(EmbeddedStore::open(&data_dir.join("store.redb"))?))
}

/// Starts serving with `store`; returns once the listener is bound.
pub async fn start(
    config: ServerConfig,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServerError> {
    let dir = &config.data_dir;
    let pki = Arc::new(tls::Pki::load_or_create(&dir.join("pki"))?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Listen(config.listen, e))?;
    let address = listener.local_addr().map_err(|e| ServerError::Listen(config.listen, e))?;

    let api = Api::new(store.clone(), ApiConfig { service_cidr: config.service_cidr });
    api.bootstrap().await?;

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(["kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(str::to_owned));
    let ip = address.ip();
    // In-cluster clients connect to the `kubernetes` Service's cluster IP and to the
    // advertised address.
    let advertised = config
        .advertise_address
        .or_else(|| (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip));
    let extra = [Some(ip), Some(api.kubernetes_service_ip().into()), advertised];
    for a in extra.into_iter().flatten().filter(|a| !a.is_unspecified()) {
        if !names.contains(&a.to_string()) {
            names.push(a.to_string());
        }
    }
    names.push("kubernetes.default.svc.cluster.local".to_owned());
    for san in &config.tls_sans {
        if !names.contains(san) {
            names.push(san.clone());
        }
    }
    let tls_config = pki.server_config(&names)?;
    let host = if ip.is_unspecified() { "127.0.0.1".to_owned() } else { ip.to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    let server_url = format!("https://{host}:{}", address.port());

    let kubeconfig = dir.join("admin.kubeconfig");
    let first_start = !kubeconfig.exists();
    let admin = pki.admin_cert()?;
    let text = kubeconfig::render(&server_url, &pki.ca_pem, "kubernetes-admin", Some(&admin), None);
    std::fs::write(&kubeconfig, text).map_err(|e| ServerError::Io(kubeconfig.clone(), e))?;

    let token_file = config.token_file.clone().or_else(|| Some(dir.join("tokens.csv")));
    let tokens = Arc::new(authn::TokenFile::new(token_file));
    api.set_token_authenticator(tokens.clone());
    let signer = crate::api::service_account_token::TokenSigner::load_or_create(
        &dir.join("pki").join("sa.key"),
    )?;
    api.set_token_signer(Arc::new(signer));
    let state = Arc::new(http::State {
        api: api.clone(),
        tokens,
        metrics: metrics::Metrics::default(),
        server_address: format!("{host}:{}", address.port()),
        kubelet: kubelet_client::KubeletClient::new(&pki)?,
    });

    let mut background = vec![
        tokio::spawn(lifecycle::run(api.clone())),
        tokio::spawn(crate::api::custom::controller::run(api.clone())),
        tokio::spawn(compactor(store, api.clone(), config.compact_interval)),
        api.start_watch_cache(),
    ];
    match advertised {
        Some(a) => {
            background.push(tokio::spawn(master_endpoints::run(api.clone(), a, address.port())))
        }
        None => tracing::info!(
            "listening on {ip}: pods cannot reach this server through the kubernetes Service \
             (give --advertise-address)"
        ),
    }
    let mut config = config;
    config.controller_config.signer = Some(pki.clone());
    config.controller_config.root_ca = Some(pki.ca_pem.clone());
    background.extend(start_control_plane(&api, &config));
    let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls_config), state));
    Ok(RunningServer { address, kubeconfig, first_start, api, task, background })
}

/// The scheduler and controllers this process runs, on in-process clients sharing one set of
/// informers.
fn start_control_plane(api: &Arc<Api>, config: &ServerConfig) -> Vec<tokio::task::JoinHandle<()>> {
    if !config.scheduler && !config.controllers {
        return Vec::new();
    }
    let kube =
        Kube::new(InProcess::new(api.clone(), "system:kube-controller-manager"), "ringfence");
    let informers = Informers::new(kube);
    let mut tasks = Vec::new();
    if config.scheduler {
        tasks.push(Scheduler::start(&informers, SchedulerConfig::default()).1);
    }
    if config.controllers {
        tasks.extend(controllers::start(&informers, config.controller_config.clone()));
    }
    tasks.extend(informers.start());
    tasks
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<http::State>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("TLS handshake with {peer}: {e}");
                    return;
                }
            };
            let cert_user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(authn::user_from_cert);
            let service = hyper::service::service_fn(move |req| {
                http::handle(state.clone(), cert_user.clone(), req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await
            {
                tracing::debug!("connection from {peer}: {e}");
            }
        });
    }
}

/// Every interval, drops the history older than what the previous tick saw as current — so
/// watchers always have at least one interval to resume from.
async fn compactor(store: Arc<dyn Store>, api: Arc<Api>, interval: Duration) {
    let mut previous = None;
    loop {
        tokio::time::sleep(interval).await;
        if let Some(rev) = previous {
            match store.compact(rev).await {
                // The watch cache's windows forget the same history.
                Ok(()) => api.watch_cache().compacted(rev),
                Err(e) => tracing::warn!("compaction to {rev}: {e}"),
            }
        }
        previous = store.current_revision().await.ok();
    }
}
