//! `ringfence cri` (the node's container runtime), `ringfence node` (the node agent) and
//! `ringfence up` (a whole single-node cluster in one process tree).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use orchestrator::cri::handler::SandboxHandler;
use orchestrator::cri::handler::microvm::{MicrovmConfig, MicrovmHandler};
use orchestrator::cri::handler::sentry::SentryHandler;
use orchestrator::cri::network::{NetworkConfig, PodNetwork};
use orchestrator::cri::runtime::CriRuntime;
use orchestrator::cri::streaming::StreamingServer;
use orchestrator::node::{AgentConfig, NodeAgent, ProxyMode};

#[derive(Args, Clone)]
pub struct CriArgs {
    /// Unix socket to serve the CRI on.
    #[arg(long)]
    pub socket: PathBuf,
    /// Node state: images (DATA_DIR/images) and sandboxes (DATA_DIR/cri).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// This node's pod subnet: the default CNI network's addresses (host-local). Without
    /// one, the default network waits for the node agent to pass the Node's range.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The default CNI network's bridge.
    #[arg(long, default_value = "rf0")]
    pub bridge: String,
    #[command(flatten)]
    pub cni: CniArgs,
    /// Where exec streams are served (the node agent connects here).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub streaming: SocketAddr,
    #[command(flatten)]
    pub handlers: HandlerArgs,
}

/// Where pod networks come from.
#[derive(Args, Clone, Default)]
pub struct CniArgs {
    /// The CNI configuration directory: its lexically first *.conflist or *.conf is the pods'
    /// network; when it has none, the runtime writes a default one (bridge + host-local from
    /// --pod-cidr and --bridge, loopback). Default: DATA_DIR/cni/net.d.
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// Directories of CNI plugin executables, searched in order.
    #[arg(long, value_delimiter = ',', default_value = "/usr/lib/cni,/opt/cni/bin")]
    pub cni_bin_dir: Vec<PathBuf>,
}

/// Which runtime handlers the node offers, and what the `microvm` one boots.
#[derive(Args, Clone)]
pub struct HandlerArgs {
    /// Runtime handlers to offer, the first the default for pods that name no class:
    /// `sentry` (the Sentry) and `microvm` (a Linux guest per pod).
    #[arg(long, value_delimiter = ',', default_value = "sentry,microvm")]
    pub runtime_handlers: Vec<String>,
    /// The microVM guest kernel (default: the last `ringfence image kernel` build).
    #[arg(long, requires = "guest_initrd")]
    pub guest_kernel: Option<PathBuf>,
    /// The microVM guest's initramfs (with the guest agent).
    #[arg(long, requires = "guest_kernel")]
    pub guest_initrd: Option<PathBuf>,
    /// The vhost-user daemon that shares images and volumes with microVM guests.
    #[arg(long, default_value = "/usr/lib/qemu/virtiofsd")]
    pub virtiofsd: PathBuf,
    /// Seconds a microVM guest may take to boot to its agent (minutes on hosts whose KVM
    /// emulates guest kernel code).
    #[arg(long, default_value_t = 600)]
    pub microvm_boot_timeout: u64,
    /// Start microVM pods as clones of a snapshot template (one per kernel, agent and
    /// machine shape, built in the background the first time, kept in DATA_DIR/templates)
    /// rather than booting each; `false`: every guest boots.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub microvm_templates: bool,
}

impl Default for HandlerArgs {
    fn default() -> Self {
        HandlerArgs {
            runtime_handlers: vec!["sentry".into(), "microvm".into()],
            guest_kernel: None,
            guest_initrd: None,
            virtiofsd: "/usr/lib/qemu/virtiofsd".into(),
            microvm_boot_timeout: 600,
            microvm_templates: true,
        }
    }
}

/// The handlers `args` names, built with the programs beside this binary.
fn handlers(args: &HandlerArgs, data_dir: &Path) -> anyhow::Result<Vec<Arc<dyn SandboxHandler>>> {
    let exe = std::env::current_exe().context("locating the ringfence binary")?;
    let mut out: Vec<Arc<dyn SandboxHandler>> = Vec::new();
    for name in &args.runtime_handlers {
        match name.as_str() {
            "sentry" => out.push(Arc::new(SentryHandler {
                sandbox: crate::cli::sentry_launcher(&exe, "sandbox"),
                gofer: crate::cli::gofer_launcher(&exe),
            })),
            "microvm" => {
                let config = MicrovmConfig {
                    templates: args.microvm_templates.then(|| data_dir.join("templates")),
                    ..MicrovmConfig::beside(
                        &exe,
                        &args.virtiofsd,
                        args.guest_kernel.clone().zip(args.guest_initrd.clone()),
                        std::time::Duration::from_secs(args.microvm_boot_timeout),
                    )
                };
                out.push(Arc::new(MicrovmHandler::new(config)?));
            }
            other => anyhow::bail!("unknown runtime handler {other:?} (sentry or microvm)"),
        }
    }
    if out.is_empty() {
        anyhow::bail!("--runtime-handlers names none");
    }
    Ok(out)
}

#[derive(Args, Clone)]
pub struct NodeArgs {
    /// Node name (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub kubeconfig: PathBuf,
    #[arg(long)]
    pub cri_socket: PathBuf,
    /// Address the API server and pods reach this node at.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// Address the agent's endpoints listen on, when not --address (behind a port forward).
    #[arg(long)]
    pub listen_address: Option<String>,
    /// Port of the agent's log and exec endpoints (0 picks a free one).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// This node's pod range (the runtime's); none: the control plane allocates one from its
    /// --cluster-cidr.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Where container logs are written.
    #[arg(long, default_value = "/var/log/pods")]
    pub log_dir: PathBuf,
    /// The agent's state: pod volumes (emptyDir, ConfigMap and Secret copies).
    #[arg(long, default_value = "/var/lib/ringfence/node")]
    pub root_dir: PathBuf,
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Leave Service cluster IPs alone on this node.
    #[arg(long)]
    pub no_service_proxy: bool,
    /// How Services are implemented: `nftables` (rules in the kernel; needs `nft`) or
    /// `userspace` (a TCP relay per Service port).
    #[arg(long, default_value = "nftables")]
    pub proxy_mode: ProxyMode,
    /// The resolvers cluster DNS forwards names outside the cluster to (kubelet's flag).
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// The runtime handlers the node offers, the first the default, for runtimes whose CRI
    /// Status does not list them (containerd 1.6); otherwise they are asked for.
    #[arg(long, value_delimiter = ',')]
    pub runtime_handlers: Vec<String>,
    /// Leave NetworkPolicies unenforced on this node (enforcing needs `nft` and br_netfilter).
    #[arg(long)]
    pub no_network_policy: bool,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .unwrap_or_else(|_| "node".into())
}

fn memory_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// Starts the CRI runtime's servers; they run until the runtime is dropped.
pub async fn start_cri(args: &CriArgs) -> anyhow::Result<Arc<CriRuntime>> {
    let store = images::ImageStore::open(&args.data_dir.join(images::DATA_SUBDIR))
        .with_context(|| format!("opening the image store in {}", args.data_dir.display()))?;
    let images = orchestrator::cri::store_images::StoreImages::new(store);
    let network = PodNetwork::new(NetworkConfig {
        conf_dir: args.cni.cni_conf_dir.clone().unwrap_or_else(|| args.data_dir.join("cni/net.d")),
        bin_dirs: args.cni.cni_bin_dir.clone(),
        state_dir: args.data_dir.join("cni"),
        bridge: args.bridge.clone(),
        pod_cidr: args.pod_cidr.clone(),
    })
    .context("setting up pod networking")?;
    let handlers = handlers(&args.handlers, &args.data_dir)?;
    let runtime =
        CriRuntime::new(&args.data_dir.join("cri"), Some(network), Arc::new(images), handlers);
    let streaming = StreamingServer::start(args.streaming, runtime.clone()).await?;
    let socket = args.socket.clone();
    let rt = runtime.clone();
    tokio::spawn(async move {
        if let Err(e) = orchestrator::cri::server::serve(&socket, rt, streaming).await {
            tracing::error!("{e}");
        }
    });
    // The agent connects as soon as the socket exists.
    for _ in 0..200 {
        if args.socket.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(runtime)
}

/// The runtime handlers the CRI runtime on `socket` reports (its Status), in its order; waits
/// a little for a runtime that is still starting.
async fn runtime_handlers(socket: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let cri = orchestrator::node::cri_client::Cri::connect(socket)?;
    let mut last = String::new();
    for _ in 0..100 {
        match cri.runtime_handlers().await {
            Ok(names) => {
                if names.is_empty() {
                    anyhow::bail!(
                        "the CRI runtime on {} offers no runtime handler",
                        socket.display()
                    );
                }
                return Ok(names);
            }
            Err(e) => last = e.message().to_owned(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("asking the CRI runtime on {} for its handlers: {last}", socket.display())
}

/// What a sandbox of each handler costs the node beyond the pod's requests (RuntimeClass
/// `overhead.podFixed`): the microVM's guest kernel and VMM, the Sentry's own memory.
fn pod_fixed_overhead(handler: &str) -> serde_json::Value {
    match handler {
        "microvm" => serde_json::json!({
            "memory": format!("{}Mi", MicrovmConfig::GUEST_OVERHEAD_MIB + 16),
            "cpu": "100m",
        }),
        _ => serde_json::json!({"memory": "32Mi", "cpu": "50m"}),
    }
}

/// Creates the RuntimeClass of each handler, unless one of that name exists.
async fn create_runtime_classes(
    kubeconfig: &std::path::Path,
    handlers: &[String],
) -> anyhow::Result<()> {
    let config = orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(kubeconfig)?;
    let mut conn = config.connect().await?;
    for h in handlers {
        let class = serde_json::json!({
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": h},
            "handler": h,
            "overhead": {"podFixed": pod_fixed_overhead(h)},
        });
        let r = conn.send_json("POST", "/apis/node.k8s.io/v1/runtimeclasses", &class).await?;
        match r.status {
            201 => tracing::info!("created RuntimeClass {h}"),
            409 => {}
            other => anyhow::bail!("creating RuntimeClass {h}: {other} {}", r.json()),
        }
    }
    Ok(())
}

fn node_config(args: &NodeArgs, handlers: Vec<String>) -> AgentConfig {
    AgentConfig {
        name: args.name.clone().unwrap_or_else(hostname),
        kubeconfig: args.kubeconfig.clone(),
        cri_socket: args.cri_socket.clone(),
        address: args.address.clone(),
        listen_address: args.listen_address.clone(),
        port: args.port,
        pod_cidr: args.pod_cidr.clone(),
        log_dir: args.log_dir.clone(),
        root_dir: args.root_dir.clone(),
        // SAFETY: sysconf has no preconditions.
        cpus: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32,
        memory_bytes: memory_bytes(),
        max_pods: args.max_pods,
        handlers,
        labels: Default::default(),
        service_proxy: !args.no_service_proxy,
        proxy_mode: args.proxy_mode,
        resolv_conf: args.resolv_conf.clone(),
        network_policy: !args.no_network_policy,
    }
}

async fn until_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub fn cri(args: CriArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let runtime = start_cri(&args).await?;
        println!("ringfence CRI runtime serving on {}", args.socket.display());
        until_signal().await?;
        tokio::task::spawn_blocking(move || runtime.shutdown()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let handlers = match args.runtime_handlers.is_empty() {
            true => runtime_handlers(&args.cri_socket).await?,
            false => args.runtime_handlers.clone(),
        };
        let agent = NodeAgent::new(node_config(&args, handlers)).map_err(anyhow::Error::msg)?;
        tokio::select! {
            r = agent.run() => r.map_err(anyhow::Error::msg)?,
            r = until_signal() => r?,
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Args)]
pub struct UpArgs {
    /// Where everything lives: store, kubeconfig, images, sandboxes, logs.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// API server address.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Another DNS name or IP address the API server's certificate covers; repeatable.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// The address pods reach the API server at (the `kubernetes` Service's endpoint);
    /// default: the listen address unless it is a loopback or wildcard one, else
    /// `--node-address` when the API listens on every address and that is not a loopback.
    #[arg(long)]
    pub advertise_address: Option<std::net::IpAddr>,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    #[arg(long, default_value = "10.88.0.0/24")]
    pub pod_cidr: String,
    /// Node agent port (0 picks a free one).
    #[arg(long, default_value_t = 10250)]
    pub node_port: u16,
    /// Address the API server and other nodes reach this node at (its InternalIP).
    #[arg(long, default_value = "127.0.0.1")]
    pub node_address: String,
    /// Node name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The default CNI network's bridge (one per cluster on a host).
    #[arg(long, default_value = "rf0")]
    pub bridge: String,
    #[command(flatten)]
    pub cni: CniArgs,
    /// Seconds without a Lease renewal before a node is marked unreachable.
    #[arg(long, default_value_t = 40.0)]
    pub node_monitor_grace_period: f64,
    /// How the node implements Services: `nftables` or `userspace`.
    #[arg(long, default_value = "nftables")]
    pub proxy_mode: ProxyMode,
    /// The resolvers cluster DNS forwards names outside the cluster to.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    #[command(flatten)]
    pub cluster_cidr: super::controlplane::ClusterCidrArgs,
    #[command(flatten)]
    pub handlers: HandlerArgs,
}

pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let data = args.data_dir.clone();
    std::fs::create_dir_all(&data)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let service_cidr = orchestrator::api::ServiceCidr::parse(&args.service_cidr)
            .with_context(|| format!("--service-cidr {:?}", args.service_cidr))?;
        let mut config = orchestrator::server::ServerConfig::new(&data);
        config.listen = args.listen;
        config.tls_sans = args.tls_sans.clone();
        config.advertise_address = args.advertise_address.or_else(|| {
            let node: std::net::IpAddr = args.node_address.parse().ok()?;
            (args.listen.ip().is_unspecified() && !node.is_loopback()).then_some(node)
        });
        config.service_cidr = service_cidr;
        config.controller_config.node_monitor_grace_period =
            std::time::Duration::from_secs_f64(args.node_monitor_grace_period.max(0.1));
        config.controller_config.cluster_cidr = args.cluster_cidr.parse()?;
        let store = orchestrator::server::open_embedded(&data)?;
        let server = orchestrator::server::start(config, store).await?;
        let kubeconfig = server.kubeconfig.clone();
        let cri_args = CriArgs {
            socket: data.join("cri.sock"),
            data_dir: data.clone(),
            pod_cidr: Some(args.pod_cidr.clone()),
            bridge: args.bridge.clone(),
            cni: args.cni.clone(),
            streaming: "127.0.0.1:0".parse()?,
            handlers: args.handlers.clone(),
        };
        let runtime = start_cri(&cri_args).await?;
        let node_args = NodeArgs {
            name: args.node_name.clone(),
            kubeconfig: kubeconfig.clone(),
            cri_socket: cri_args.socket.clone(),
            address: args.node_address.clone(),
            listen_address: None,
            port: args.node_port,
            pod_cidr: Some(args.pod_cidr.clone()),
            log_dir: data.join("logs"),
            root_dir: data.join("node"),
            max_pods: 110,
            no_service_proxy: false,
            proxy_mode: args.proxy_mode,
            resolv_conf: args.resolv_conf.clone(),
            no_network_policy: false,
            runtime_handlers: Vec::new(),
        };
        let handlers = runtime_handlers(&cri_args.socket).await?;
        create_runtime_classes(&kubeconfig, &handlers).await?;
        let agent =
            NodeAgent::new(node_config(&node_args, handlers)).map_err(anyhow::Error::msg)?;
        println!(
            "ringfence cluster up: API on https://{}; use it with\n  export KUBECONFIG={}",
            server.address,
            kubeconfig.display()
        );
        tokio::select! {
            r = agent.run() => r.map_err(anyhow::Error::msg)?,
            r = until_signal() => r?,
        }
        tokio::task::spawn_blocking(move || runtime.shutdown()).await?;
        server.shutdown();
        Ok(ExitCode::SUCCESS)
    })
}
