//! `ringfence scheduler`, `ringfence controllers` and `ringfence sim-nodes`: control-plane
//! components and simulated nodes run apart from the API server, against a kubeconfig.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use orchestrator::controllers::node_ipam::ClusterCidr;
use orchestrator::controllers::{self, ControllerConfig};
use orchestrator::kube::https::HttpsClient;
use orchestrator::kube::{Informers, Kube};
use orchestrator::scheduler::{Scheduler, SchedulerConfig};
use orchestrator::simnodes::{self, SimConfig};

#[derive(Args)]
pub struct ComponentArgs {
    /// The cluster to work on (e.g. DATA_DIR/admin.kubeconfig).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Seconds without a Lease renewal before a node is marked unreachable (controllers).
    #[arg(long, default_value_t = 40.0)]
    node_monitor_grace_period: f64,
    /// Seconds between evaluations of each HorizontalPodAutoscaler (controllers).
    #[arg(long, default_value_t = 15.0)]
    horizontal_pod_autoscaler_sync_period: f64,
    /// The cluster CA's certificate (DATA_DIR/pki/ca.crt), to issue approved certificate
    /// requests such as nodes' serving certificates (controllers).
    #[arg(long, requires = "cluster_signing_key_file")]
    cluster_signing_cert_file: Option<PathBuf>,
    /// The cluster CA's key (DATA_DIR/pki/ca.key).
    #[arg(long, requires = "cluster_signing_cert_file")]
    cluster_signing_key_file: Option<PathBuf>,
    /// The CA certificate every namespace's `kube-root-ca.crt` carries for in-cluster clients
    /// (default: the kubeconfig's certificate authority).
    #[arg(long)]
    root_ca_file: Option<PathBuf>,
    #[command(flatten)]
    cluster_cidr: ClusterCidrArgs,
}

/// Where the node IPAM controller finds pod ranges for Nodes that bring none.
#[derive(Args, Clone, Default)]
pub struct ClusterCidrArgs {
    /// The cluster's pod range; each Node registered without `spec.podCIDR` gets a piece.
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// Prefix length of each Node's piece of --cluster-cidr.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
}

impl ClusterCidrArgs {
    pub fn parse(&self) -> anyhow::Result<Option<ClusterCidr>> {
        self.cluster_cidr
            .as_deref()
            .map(|c| ClusterCidr::parse(c, self.node_cidr_mask_size))
            .transpose()
            .context("--cluster-cidr")
    }
}

#[derive(Args)]
pub struct SimNodesArgs {
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// How many nodes.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Nodes are named PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "sim")]
    prefix: String,
    #[arg(long, default_value = "32")]
    cpu: String,
    #[arg(long, default_value = "256Gi")]
    memory: String,
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// Spread the nodes over this many zones (topology.kubernetes.io/zone).
    #[arg(long, default_value_t = 1)]
    zones: usize,
    /// Seconds between Lease renewals.
    #[arg(long, default_value_t = 10.0)]
    heartbeat: f64,
    /// Seconds that pods with restartPolicy Never/OnFailure run before they exit
    /// (annotation sim.ringfence.dev/run-seconds overrides).
    #[arg(long, default_value_t = 1.0)]
    run_seconds: f64,
}

fn kube(path: &std::path::Path, manager: &str) -> anyhow::Result<Kube> {
    let client = HttpsClient::from_kubeconfig(path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Kube::new(Arc::new(client), manager))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

async fn until_interrupted(tasks: Vec<tokio::task::JoinHandle<()>>) -> anyhow::Result<ExitCode> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    for t in tasks {
        t.abort();
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scheduler(a: ComponentArgs) -> anyhow::Result<ExitCode> {
    let kube = kube(&a.kubeconfig, "default-scheduler")?;
    runtime()?.block_on(async move {
        let informers = Informers::new(kube);
        let (_, task) = Scheduler::start(&informers, SchedulerConfig::default());
        let mut tasks = informers.start();
        tasks.push(task);
        println!("ringfence scheduler running");
        until_interrupted(tasks).await
    })
}

pub fn controllers(a: ComponentArgs) -> anyhow::Result<ExitCode> {
    let kube = kube(&a.kubeconfig, "kube-controller-manager")?;
    let signer = match (&a.cluster_signing_cert_file, &a.cluster_signing_key_file) {
        (Some(cert), Some(key)) => {
            let ca = orchestrator::server::tls::Pki::from_files(cert, key)?;
            Some(Arc::new(ca) as Arc<dyn controllers::certificates::CertificateSigner>)
        }
        _ => None,
    };
    let root_ca = match &a.root_ca_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("--root-ca-file {}", f.display()))?
        }
        None => orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&a.kubeconfig)?
            .ca_pem()
            .to_owned(),
    };
    let config = ControllerConfig {
        node_monitor_grace_period: Duration::from_secs_f64(a.node_monitor_grace_period.max(0.1)),
        hpa_sync_period: Duration::from_secs_f64(a.horizontal_pod_autoscaler_sync_period.max(0.1)),
        cluster_cidr: a.cluster_cidr.parse()?,
        signer,
        root_ca: Some(root_ca),
        ..Default::default()
    };
    runtime()?.block_on(async move {
        let informers = Informers::new(kube);
        let mut tasks = controllers::start(&informers, config);
        tasks.extend(informers.start());
        println!("ringfence controllers running");
        until_interrupted(tasks).await
    })
}

pub fn sim_nodes(a: SimNodesArgs) -> anyhow::Result<ExitCode> {
    let kube = kube(&a.kubeconfig, "ringfence-sim-nodes")?;
    let config = SimConfig {
        count: a.count,
        prefix: a.prefix,
        cpu: a.cpu,
        memory: a.memory,
        pods: a.pods,
        zones: a.zones.max(1),
        heartbeat: Duration::from_secs_f64(a.heartbeat.max(0.1)),
        run_seconds: a.run_seconds,
        ..Default::default()
    };
    runtime()?.block_on(async move {
        let bar = indicatif::ProgressBar::new(config.count as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("registering nodes {bar:30} {pos}/{len}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let sim = simnodes::start(kube, config, |n| bar.set_position(n as u64)).await?;
        bar.finish_and_clear();
        println!("{} simulated nodes ready", sim.nodes.len());
        until_interrupted(sim.tasks).await
    })
}
