//! `ringfence bench ...`: benchmarks that print tables with ratios against their peers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::bench::api::{self, BackendKind, BenchConfig};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The API server on the embedded store and on etcd: throughput, latency, watch fan-out.
    Api(ApiArgs),
    /// The Sentry against runc and runsc (ptrace): start-to-exit, syscalls, fork+exec, memory.
    Sentry(SentryArgs),
    /// The scheduler on simulated nodes: pods/s and scheduling latency.
    Scheduler(SchedulerArgs),
    /// Sentry pods on a `ringfence up` node: startup latency (create to Running) and memory.
    Pods(PodsArgs),
    /// The microVMM against QEMU microvm: time to first serial byte, to exit, peak RSS.
    Vmm(VmmArgs),
    /// Inside the nested-SVM lane: this VMM and QEMU microvm boot the same Linux to its init
    /// (time from start, peak RSS).
    Lane(LaneArgs),
    /// The virtio devices through the mock queue: blk requests/s and GiB/s, net frames/s,
    /// the cost of a rate-limiter decision; against the same system calls made directly.
    Virtio(VirtioArgs),
    /// The project's Linux guest booted N times and restored N times from a snapshot of one:
    /// snapshot time and size, start -> agent answering, PSS per VM.
    Snapshot(SnapshotArgs),
    /// Starts a VMM (left running) and prints its pid and the milliseconds from its start to
    /// its guest agent answering, to its vsock socket listening and to the guest accepting a
    /// connection to the agent's port (used by `bench snapshot`).
    #[command(hide = true)]
    StartToAgent(StartToAgentArgs),
    /// The same workloads in every runtime here (native, runc, runsc, the Sentry, microVMs):
    /// medians, spread and ratios to native in DIR/report.md, every sample in
    /// DIR/results.json, SVG plots and DIR/index.html.
    Overhead(OverheadArgs),
    /// TCP throughput and request/response latency pod -> pod (same node, other node) and
    /// pod -> Service, and Service connection setup with 100 endpoints; through nftables and
    /// the user-space proxy in the same run, each beside the same program run natively.
    Network(NetworkArgs),
}

#[derive(Args)]
pub struct NetworkArgs {
    /// Service data paths to measure, each in a fresh two-node cluster.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "nftables,userspace")]
    modes: Vec<crate::bench::network::model::ProxyMode>,
    /// Short transfers and few samples: about a minute.
    #[arg(long)]
    quick: bool,
    /// Also write every result as JSON here (schema: docs/bench-network.schema.json).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct OverheadArgs {
    /// Runtimes to compare (those not available here are reported as skipped).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "native,runc,runsc,sentry,microvm"
    )]
    runtimes: Vec<crate::bench::overhead::model::RuntimeId>,
    /// Workloads to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Vec<crate::bench::overhead::model::Job>,
    /// Small sizes and few samples: minutes instead of a quarter of an hour.
    #[arg(long)]
    quick: bool,
    /// Where the report goes.
    #[arg(long, default_value = "overhead-report")]
    out: std::path::PathBuf,
    /// Density is reported as idle sandboxes per this many GiB.
    #[arg(long, default_value_t = 16)]
    density_gib: u64,
    /// How microVMs run: `nested` (the lane) or `direct` (this host's KVM).
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: crate::lane::Transport,
}

#[derive(Args)]
pub struct SnapshotArgs {
    /// Boots, and restores, each.
    #[arg(long, default_value_t = 5)]
    vms: usize,
    /// Where: `nested` (the lane) or `direct` (this host's KVM).
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: crate::lane::Transport,
}

#[derive(Args)]
pub struct StartToAgentArgs {
    /// The VMM's vsock Unix socket (the PATH of `--vsock CID,PATH`).
    #[arg(long)]
    vsock: std::path::PathBuf,
    /// Seconds to wait for the agent (the VMM is stopped after).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The vsock socket of a VM already running, whose agent is asked first (so that the
    /// client's code runs warm, as in a node agent that has started pods before).
    #[arg(long)]
    warm_up: Option<std::path::PathBuf>,
    /// Start the VMM bare and send it these requests (`URI=FILE`, a JSON body, PUT) on this
    /// API socket, in order; the clock starts at the last (InstanceStart or a snapshot load).
    #[arg(long, requires = "put")]
    api_sock: Option<std::path::PathBuf>,
    /// A request for `--api-sock`: `URI=FILE`.
    #[arg(long, requires = "api_sock", value_parser = parse_put)]
    put: Vec<(String, std::path::PathBuf)>,
    /// The VMM and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<std::ffi::OsString>,
}

#[derive(Args)]
pub struct LaneArgs {
    /// Boots per VMM (medians are reported).
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Where both VMMs run: `nested` (the lane) or `direct` (this host's hardware KVM).
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: crate::lane::Transport,
}

#[derive(Args)]
pub struct VirtioArgs {
    /// Seconds per row.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

#[derive(Args)]
pub struct VmmArgs {
    /// Runs per VMM (medians are reported).
    #[arg(long, default_value_t = 30)]
    runs: usize,
}

#[derive(Args)]
pub struct PodsArgs {
    /// Pods to start.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods created per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// `sentry`, or `microvm`: microVM pods on a node in the nested-SVM lane (or on this
    /// host's KVM with `--transport direct`) next to Sentry pods and to bare boots of the same
    /// guest, in one run.
    #[arg(long, default_value = "sentry", value_parser = ["sentry", "microvm"])]
    runtime: String,
    /// Bare boots of the guest to compare microVM pods with.
    #[arg(long, default_value_t = 3)]
    boots: usize,
    /// microVM pods only as template clones (no booted pods, no bare boots): for hosts where
    /// a boot takes minutes.
    #[arg(long)]
    skip_booted: bool,
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: crate::lane::Transport,
}

#[derive(Args)]
pub struct SentryArgs {
    /// Sandbox starts per runtime for the start-to-exit median.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// getpid calls per runtime (clock_gettime runs ten times as many, open+read+close a
    /// quarter as many).
    #[arg(long, default_value_t = 20_000)]
    iterations: u64,
    /// fork+exec+wait cycles per runtime.
    #[arg(long, default_value_t = 100)]
    forks: u64,
    /// Rows the sqlite3 CLI inserts in one transaction.
    #[arg(long, default_value_t = 100_000)]
    inserts: u64,
    /// Rows each of the 4 concurrent sqlite3 writers inserts (one process per row).
    #[arg(long, default_value_t = 50)]
    writer_rows: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Workloads {
    Both,
    Plain,
    AntiAffinity,
}

#[derive(Args)]
pub struct SchedulerArgs {
    /// Pods per workload.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Simulated nodes.
    #[arg(long, default_value_t = 1_000)]
    nodes: usize,
    /// Concurrent pod creators.
    #[arg(long, default_value_t = 16)]
    creators: usize,
    #[arg(long, value_enum, default_value_t = Workloads::Both)]
    workload: Workloads,
    /// Pods per anti-affinity group (each group goes one pod per node).
    #[arg(long, default_value_t = 10)]
    group: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backends {
    Both,
    Embedded,
    Etcd,
}

#[derive(Args)]
pub struct ApiArgs {
    /// Objects stored before measuring.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Watchers for the fan-out phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Total rate of the paced mutation phases.
    #[arg(long, default_value_t = 200)]
    qps: u32,
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Network(a) => {
            use crate::bench::network::{self, NetworkConfig, report};
            let mut modes = a.modes;
            modes.sort_unstable();
            modes.dedup();
            let report = network::run(&NetworkConfig { modes, quick: a.quick })?;
            if let Some(path) = &a.json {
                let json = serde_json::to_vec_pretty(&report::to_json(&report))?;
                std::fs::write(path, json)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            print!("{}", report::table(&report));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Overhead(a) => {
            use crate::bench::overhead::{self, OverheadConfig, model::Job};
            let mut runtimes = a.runtimes;
            runtimes.sort_unstable();
            runtimes.dedup();
            let jobs = if a.workloads.is_empty() {
                Job::ALL.to_vec()
            } else {
                Job::ALL.into_iter().filter(|j| a.workloads.contains(j)).collect()
            };
            let cfg = OverheadConfig {
                runtimes,
                jobs,
                quick: a.quick,
                out: a.out,
                density_gib: a.density_gib.max(1),
                transport: a.transport,
            };
            let report = overhead::run(&cfg)?;
            overhead::write(&report, &cfg.out)?;
            println!("{}", overhead::report::header(&report));
            print!("{}", overhead::report::summary_table(&report));
            println!("\nreport: {}", cfg.out.join("index.html").display());
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Lane(a) => {
            let rows = crate::bench::lane::run(a.runs.max(1), a.transport)?;
            print!("{}", crate::bench::lane::render(&rows));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Snapshot(a) => {
            let report = crate::bench::snapshot::run(a.vms.max(1), a.transport)?;
            print!("{}", crate::bench::snapshot::render(&report, a.transport));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::StartToAgent(a) => {
            let timeout = Duration::from_secs(a.timeout);
            let api = match a.api_sock {
                Some(sock) => {
                    let mut requests = Vec::new();
                    for (uri, file) in a.put {
                        let body = std::fs::read(&file)
                            .with_context(|| format!("reading {}", file.display()))?;
                        requests.push((uri, body));
                    }
                    Some(crate::bench::agent_start::ApiStart { sock, requests })
                }
                None => None,
            };
            let t = crate::bench::agent_start::start_to_agent(
                &a.vsock,
                timeout,
                a.warm_up.as_deref(),
                api.as_ref(),
                &a.command,
            )?;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{} {:.1} {:.1} {:.1} {:.1}",
                t.pid,
                ms(t.answering),
                ms(t.listening),
                ms(t.accepting),
                ms(t.from_spawn)
            );
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Virtio(a) => {
            let seconds = a.seconds.max(0.1);
            let rows = crate::bench::virtio::run(seconds)?;
            print!("{}", crate::bench::virtio::render(&rows, seconds));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Vmm(a) => {
            let runs = a.runs.max(1);
            let rows = crate::bench::vmm::run(runs)?;
            print!("{}", crate::bench::vmm::render(&rows, runs));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Pods(a) => {
            use crate::bench::pods::{self, MicrovmBenchConfig, PodsBenchConfig};
            if a.runtime == "microvm" {
                let cfg = MicrovmBenchConfig {
                    pods: a.pods.max(1),
                    rate: a.rate.max(0.1),
                    boots: a.boots.max(1),
                    booted: !a.skip_booted,
                    transport: a.transport,
                };
                let rows = pods::run_microvm(&cfg)?;
                print!("{}", pods::render_microvm(&rows, a.transport));
                return Ok(ExitCode::SUCCESS);
            }
            let cfg = PodsBenchConfig { pods: a.pods.max(1), rate: a.rate.max(0.1) };
            let report = pods::run(&cfg)?;
            print!("{}", pods::render(&report));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Sentry(a) => {
            let cfg = crate::bench::sentry::BenchConfig {
                runs: a.runs.max(1),
                iterations: a.iterations.max(4),
                fork_iterations: a.forks.max(1),
                inserts: a.inserts.max(1),
                writer_rows: a.writer_rows.max(1),
            };
            let rows = crate::bench::sentry::run(&cfg)?;
            print!("{}", crate::bench::sentry::render(&rows, &cfg));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Scheduler(a) => {
            use crate::bench::scheduler::{self, SchedBenchConfig, Workload};
            let anti = Workload::AntiAffinity(a.group.max(1));
            let workloads = match a.workload {
                Workloads::Both => vec![Workload::Plain, anti],
                Workloads::Plain => vec![Workload::Plain],
                Workloads::AntiAffinity => vec![anti],
            };
            let cfg = SchedBenchConfig {
                pods: a.pods.max(1),
                nodes: a.nodes.max(1),
                creators: a.creators.max(1),
                workloads,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let rows = runtime.block_on(scheduler::run(cfg))?;
            print!("{}", scheduler::render(&rows));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Api(a) => {
            let backends = match a.backend {
                Backends::Both => vec![BackendKind::Embedded, BackendKind::Etcd],
                Backends::Embedded => vec![BackendKind::Embedded],
                Backends::Etcd => vec![BackendKind::Etcd],
            };
            let cfg = BenchConfig {
                objects: a.objects,
                clients: a.clients.max(1),
                watchers: a.watchers.max(1),
                duration: Duration::from_secs(a.seconds.max(1)),
                paced_qps: a.qps.max(1),
                backends,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let rows = runtime.block_on(api::run(cfg.clone()))?;
            print!("{}", api::render(&rows, &cfg));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `URI=FILE` of `--put`.
fn parse_put(s: &str) -> Result<(String, std::path::PathBuf), String> {
    match s.split_once('=') {
        Some((uri, file)) if uri.starts_with('/') && !file.is_empty() => {
            Ok((uri.to_owned(), file.into()))
        }
        _ => Err(format!("{s:?}: expected URI=FILE, e.g. /actions=start.json")),
    }
}
