//! The node agent (the kubelet's role): registers the node, keeps its Lease fresh, runs the
//! pods bound to it through the CRI runtime, reports their status, serves logs and exec, and
//! proxies Service addresses to ready endpoints.
//!
//! - [`pod_worker`]: one level-triggered loop per pod: observe, plan (pure), execute, report.
//! - [`probe`]: startup, liveness and readiness probes; lifecycle hooks.
//! - [`server`]: the agent's HTTP endpoints the API server proxies logs and exec to.
//! - [`door`], [`serving_cert`]: who may reach them (TLS, the API server's client
//!   certificate only) and the node's serving certificate (a CertificateSigningRequest).
//! - [`volumes`], [`env`]: pod volumes as host directories; container environments.
//! - [`nft_proxy`]: Service cluster IPs and node ports on this node, in nftables (default).
//! - [`network_policy`]: NetworkPolicies enforced for this node's pods, in nftables.
//! - [`service_proxy`]: the same as a user-space TCP proxy (`--proxy-mode userspace`).
//! - [`dns`]: cluster DNS for this node's pods.
//! - [`pod_cidr`], [`pod_routes`]: this node's pod range, and routes to other nodes' pods.
//! - [`cri_client`]: the agent's connection to the runtime (the API is reached through the
//!   typed [`Kube`] client).
//! - [`error`]: what can go wrong.
//! - [`registration`], [`lease`], [`pod_status`], [`pod_metrics`]: what any node owes the
//!   control plane,
//!   shared with the simulated nodes of `ringfence sim-nodes`.
//! - [`node_metrics`]: this node's own CPU and memory use, for `kubectl top node`.

pub mod cri_client;
pub mod dns;
pub mod door;
pub mod env;
pub mod error;
pub mod lease;
pub mod network_policy;
pub mod nft_proxy;
pub mod node_metrics;
pub mod pod_cidr;
pub mod pod_metrics;
pub mod pod_routes;
pub mod pod_status;
pub mod pod_worker;
pub mod probe;
pub mod projected_volume;
pub mod registration;
pub mod server;
pub mod service_env;
pub mod service_proxy;
pub mod serving_cert;
pub mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use tokio::sync::watch;

use crate::api::request::ListOptions;
use crate::api::selector::FieldSelector;
use crate::kube::Kube;
use crate::kube::https::HttpsClient;
use cri_client::Cri;
pub use error::NodeError;

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often the node's Lease is renewed.
const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub name: String,
    pub kubeconfig: PathBuf,
    pub cri_socket: PathBuf,
    /// The address pods and the API server reach this node at.
    pub address: String,
    /// Where its endpoints listen, when not at `address` (a node behind a port forward).
    pub listen_address: Option<String>,
    /// Port of the agent's HTTP endpoints (logs, exec).
    pub port: u16,
    /// This node's pod range; none: the control plane allocates one (`spec.podCIDR`).
    pub pod_cidr: Option<String>,
    /// Where container logs go (one directory per pod).
    pub log_dir: PathBuf,
    /// The agent's own state: pod volumes (emptyDir, ConfigMap and Secret copies).
    pub root_dir: PathBuf,
    pub cpus: u32,
    pub memory_bytes: u64,
    pub max_pods: u32,
    /// Runtime handlers this node's runtime offers; the first is the default.
    pub handlers: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Whether this agent proxies Service cluster IPs.
    pub service_proxy: bool,
    /// How it does.
    pub proxy_mode: ProxyMode,
    /// Where cluster DNS finds the resolvers for names outside the cluster.
    pub resolv_conf: PathBuf,
    /// Whether this agent enforces NetworkPolicies for its pods.
    pub network_policy: bool,
}

/// How a node implements Services.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// A user-space TCP relay per Service port (kept to compare against).
    Userspace,
    /// Rules in the kernel's nftables.
    #[default]
    Nftables,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown proxy mode {0:?} (userspace or nftables)")]
pub struct UnknownProxyMode(String);

impl std::str::FromStr for ProxyMode {
    type Err = UnknownProxyMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "userspace" => Ok(ProxyMode::Userspace),
            "nftables" => Ok(ProxyMode::Nftables),
            other => Err(UnknownProxyMode(other.to_owned())),
        }
    }
}

impl AgentConfig {
    fn registration(&self) -> registration::NodeConfig {
        registration::NodeConfig {
            name: self.name.clone(),
            cpu: self.cpus.to_string(),
            memory: format!("{}Ki", self.memory_bytes / 1024),
            ephemeral_storage: "100Gi".into(),
            pods: self.max_pods,
            labels: self.labels.clone(),
            runtime_handlers: self.handlers.clone(),
            address: self.address.clone(),
            pod_cidr: self.pod_cidr.clone(),
            runtime_version: format!("ringfence://{}", env!("CARGO_PKG_VERSION")),
            daemon_port: Some(i32::from(self.port)),
        }
    }
}

/// The first address of a pod subnet like 10.88.0.0/24: the bridge's, the pods' gateway.
fn gateway(pod_cidr: &str) -> Option<std::net::Ipv4Addr> {
    let net = pod_cidr.parse::<ipnet::Ipv4Net>().ok()?.network();
    u32::from(net).checked_add(1).map(std::net::Ipv4Addr::from)
}

/// What every part of the agent shares.
pub struct Shared {
    pub node: String,
    pub kube: Kube,
    pub cri: Cri,
    pub address: String,
    pub log_dir: PathBuf,
    pub root_dir: PathBuf,
    pub handlers: Vec<String>,
    pub default_handler: String,
    /// Where this node's pods send DNS queries (the pod bridge's gateway), if DNS is served;
    /// known once the node's pod range is.
    pub dns_server: std::sync::OnceLock<std::net::Ipv4Addr>,
    /// uid -> (namespace, name) of pods this agent runs.
    pub pods: Mutex<HashMap<String, (String, String)>>,
}

pub struct NodeAgent {
    config: AgentConfig,
    kube: Kube,
    shared: Arc<Shared>,
}

/// What a pod worker is told: the pod as the API has it now, or None once it is gone.
type PodSender = watch::Sender<Option<Arc<Pod>>>;

impl NodeAgent {
    pub fn new(config: AgentConfig) -> Result<NodeAgent, NodeError> {
        let https = HttpsClient::from_kubeconfig(&config.kubeconfig)?;
        let kube = Kube::new(Arc::new(https), "ringfence-node");
        let cri = Cri::connect(&config.cri_socket)?;
        let default_handler = config.handlers.first().cloned().ok_or_else(|| {
            NodeError::Config("the node needs at least one runtime handler".into())
        })?;
        let shared = Arc::new(Shared {
            node: config.name.clone(),
            kube: kube.clone(),
            cri,
            address: config.address.clone(),
            log_dir: config.log_dir.clone(),
            root_dir: config.root_dir.clone(),
            handlers: config.handlers.clone(),
            default_handler,
            dns_server: std::sync::OnceLock::new(),
            pods: Mutex::new(HashMap::new()),
        });
        Ok(NodeAgent { config, kube, shared })
    }

    /// Where the agent's endpoints listen.
    fn listen_host(&self) -> &str {
        self.config.listen_address.as_deref().unwrap_or(&self.config.address)
    }

    /// Renews the Lease and, if the control plane marked the node not ready (after an outage),
    /// reports it Ready again.
    async fn heartbeat(&self) {
        let name = &self.config.name;
        let mut last = None;
        loop {
            last = match lease::renew(&self.kube, name, LEASE_DURATION_SECONDS, last).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!("renewing the node lease: {e}");
                    None
                }
            };
            match self.kube.get::<Node>(None, name).await {
                Ok(Some(node)) if !registration::is_ready(&node) => {
                    if let Err(e) = registration::report_ready(&self.kube, &node).await {
                        tracing::warn!("reporting the node ready: {e}");
                    }
                }
                Ok(None) => {
                    // Deleted while we run: register again, as the kubelet does.
                    if let Err(e) =
                        registration::register(&self.kube, &self.config.registration()).await
                    {
                        tracing::warn!("registering the node again: {e}");
                    }
                }
                _ => {}
            }
            tokio::time::sleep(LEASE_RENEW).await;
        }
    }

    /// Runs the agent until the process ends.
    pub async fn run(mut self) -> Result<(), NodeError> {
        // Bound first, so that the Node advertises the port actually served; opened once
        // registered, as its serving certificate may name only the Node's addresses.
        let door = door::Door::bind((self.listen_host(), self.config.port)).await?;
        self.config.port = door.port();
        // Before registering: a node that cannot implement Services or policies should not
        // take pods.
        let nft_services =
            self.config.service_proxy && self.config.proxy_mode == ProxyMode::Nftables;
        if nft_services || self.config.network_policy {
            nft_proxy::nft::check()?;
        }
        registration::register(&self.kube, &self.config.registration())
            .await
            .map_err(|source| NodeError::Register { node: self.config.name.clone(), source })?;
        door.open(self.shared.clone(), &self.config.kubeconfig).await?;
        let range = match self.config.pod_cidr.clone() {
            Some(range) => range,
            None => {
                let name = &self.config.name;
                pod_cidr::wait_for_allocation(&self.kube, name, pod_cidr::ALLOCATION_TIMEOUT)
                    .await?
            }
        };
        // Registering again (after the Node was deleted) keeps the range pods already have.
        self.config.pod_cidr = Some(range.clone());
        pod_cidr::tell_runtime(&self.shared.cri, &range).await?;
        if let (true, Some(gw)) = (self.config.service_proxy, gateway(&range)) {
            let _ = self.shared.dns_server.set(gw);
        }
        match range.parse::<ipnet::Ipv4Net>() {
            Ok(net) => pod_routes::start(
                self.kube.clone(),
                self.config.name.clone(),
                self.config.address.clone(),
                net.trunc(),
            ),
            Err(_) => tracing::warn!(%range, "the pod range is not IPv4: no routes to other nodes"),
        }
        // Dropped (the tables removed) when the agent ends. Policies first: no Service should
        // reach a pod before its policies hold.
        let _policies = match self.config.network_policy {
            true => Some(
                network_policy::NetworkPolicyEnforcer::start(self.shared.clone(), &range).await?,
            ),
            false => None,
        };
        let _services = match (self.config.service_proxy, self.config.proxy_mode) {
            (true, ProxyMode::Nftables) => {
                Some(nft_proxy::NftProxy::start(self.shared.clone(), &range).await?)
            }
            (true, ProxyMode::Userspace) => {
                service_proxy::start(self.shared.clone());
                None
            }
            (false, _) => None,
        };
        let me = Arc::new(self);
        {
            let me = me.clone();
            tokio::spawn(async move { me.heartbeat().await });
        }
        tokio::spawn(pod_metrics::run(me.kube.clone(), me.shared.cri.clone()));
        tokio::spawn(node_metrics::run(me.kube.clone(), me.config.name.clone()));
        // Set only when the agent proxies Services (which feed the names).
        if let Some(&addr) = me.shared.dns_server.get() {
            dns::start(me.kube.clone(), addr, &me.config.resolv_conf);
        }
        me.clone().watch_pods().await;
        Ok(())
    }

    /// The pods bound to this node.
    fn bound_here(&self) -> ListOptions {
        let on_node = ("spec.nodeName".to_owned(), true, self.config.name.clone());
        ListOptions { field_selector: FieldSelector(vec![on_node]), ..Default::default() }
    }

    /// Follows the pods bound to this node and keeps one worker per pod, forever.
    async fn watch_pods(self: Arc<Self>) {
        let mut workers: HashMap<String, PodSender> = HashMap::new();
        loop {
            let (pods, rv) = match self.kube.list_selected::<Pod>(None, self.bound_here()).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!("listing pods: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut seen = std::collections::HashSet::new();
            for pod in pods {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                seen.insert(uid.clone());
                self.deliver(&mut workers, uid, Some(pod));
            }
            for uid in workers.keys().cloned().collect::<Vec<_>>() {
                if !seen.contains(&uid) {
                    self.deliver(&mut workers, uid, None);
                }
            }
            let opts = ListOptions {
                resource_version: Some(rv),
                allow_bookmarks: true,
                ..self.bound_here()
            };
            let mut events = match self.kube.watch_selected::<Pod>(None, opts).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!("watching pods: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        self.deliver(&mut workers, uid, Some(pod));
                    }
                    Ok(WatchEvent::Deleted(pod)) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        self.deliver(&mut workers, uid, None);
                    }
                    Ok(WatchEvent::Bookmark { .. }) => {}
                    Ok(WatchEvent::ErrorStatus(_) | WatchEvent::ErrorOther(_)) => break,
                    Err(e) => tracing::warn!("watching pods: {e}"),
                }
            }
            // The watch ended (timeout, 410 Gone, connection loss): list again.
        }
    }

    fn deliver(&self, workers: &mut HashMap<String, PodSender>, uid: String, pod: Option<Pod>) {
        if uid.is_empty() {
            return;
        }
        workers.retain(|_, tx| !tx.is_closed());
        match (workers.get(&uid), pod) {
            (Some(tx), pod) => {
                if pod.is_none() {
                    self.shared.pods.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
                }
                let _ = tx.send(pod.map(Arc::new));
            }
            (None, Some(pod)) => {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                self.shared
                    .pods
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(uid.clone(), (ns, name));
                let (tx, rx) = watch::channel(Some(Arc::new(pod)));
                let worker = pod_worker::PodWorker::new(self.shared.clone(), uid.clone());
                tokio::spawn(worker.run(rx));
                workers.insert(uid, tx);
            }
            (None, None) => {}
        }
    }
}
