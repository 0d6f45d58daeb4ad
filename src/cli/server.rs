//! `ringfence server`: serve the Kubernetes API from a data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use orchestrator::api::ServiceCidr;
use orchestrator::server::{self, ServerConfig};

#[derive(Args)]
pub struct ServerArgs {
    /// Where the store, the cluster CA and the admin kubeconfig live.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to serve HTTPS on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Another DNS name or IP address the serving certificate covers; repeatable.
    #[arg(long = "tls-san")]
    tls_sans: Vec<String>,
    /// The address pods reach the server at (the `kubernetes` Service's endpoint); default:
    /// the listen address unless it is a loopback or wildcard one.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// Keep state in this etcd (e.g. http://127.0.0.1:2379) instead of the embedded store.
    #[arg(long)]
    etcd: Option<String>,
    /// Range that Service cluster IPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Static bearer tokens (`token,user,uid,"group1,group2"` lines); default DATA_DIR/tokens.csv.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Seconds between compactions of the store's history.
    #[arg(long, default_value_t = 300)]
    compact_interval: u64,
    /// Run the scheduler in the server (false: run `ringfence scheduler` apart).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scheduler: bool,
    /// Run the controllers in the server (false: run `ringfence controllers` apart).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    controllers: bool,
    /// Seconds without a Lease renewal before a node is marked unreachable.
    #[arg(long, default_value_t = 40.0)]
    node_monitor_grace_period: f64,
    /// Seconds between evaluations of each HorizontalPodAutoscaler.
    #[arg(long, default_value_t = 15.0)]
    horizontal_pod_autoscaler_sync_period: f64,
    #[command(flatten)]
    cluster_cidr: super::controlplane::ClusterCidrArgs,
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let service_cidr = ServiceCidr::parse(&args.service_cidr).with_context(|| {
        format!("--service-cidr {:?} is not an IPv4 range like 10.96.0.0/12", args.service_cidr)
    })?;
    let mut config = ServerConfig::new(&args.data_dir);
    config.listen = args.listen;
    config.tls_sans = args.tls_sans.clone();
    config.advertise_address = args.advertise_address;
    config.service_cidr = service_cidr;
    config.token_file = args.token_file;
    config.compact_interval = Duration::from_secs(args.compact_interval.max(1));
    config.scheduler = args.scheduler;
    config.controllers = args.controllers;
    config.controller_config.node_monitor_grace_period =
        Duration::from_secs_f64(args.node_monitor_grace_period.max(0.1));
    config.controller_config.hpa_sync_period =
        Duration::from_secs_f64(args.horizontal_pod_autoscaler_sync_period.max(0.1));
    config.controller_config.cluster_cidr = args.cluster_cidr.parse()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let etcd = args.etcd.clone();
    runtime.block_on(async move {
        let store = match &etcd {
            Some(url) => server::open_etcd(url).await.with_context(|| format!("connecting to etcd at {url}"))?,
            None => server::open_embedded(&config.data_dir)?,
        };
        let running = server::start(config, store).await?;
        if running.first_start {
            println!(
                "Wrote the admin kubeconfig to {0}. Use it with:\n  export KUBECONFIG={0}\n  kubectl get namespaces",
                running.kubeconfig.display()
            );
        }
        println!("ringfence API server listening on https://{}", running.address);
        tokio::select! {
            _ = running.wait() => {}
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        }
        Ok(ExitCode::SUCCESS)
    })
}
