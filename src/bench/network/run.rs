//! The order of a run. Shared by both proxy modes: the measuring program and its image, node
//! B's namespace and link, and the 100 endpoint addresses with their one native listener.
//! Then per mode: a fresh two-node cluster, server pods on both nodes, the client pod on node
//! A, their Services; native servers beside the Sentry ones in the server pods' namespaces;
//! the native client in the client pod's namespace, then the Sentry client; the cluster torn
//! down.
//!
//! The many-endpoint Service: 100 ready pods would cost minutes and gigabytes here, so its
//! endpoints are 100 addresses of one namespace behind node A, written by hand into the
//! Service's Endpoints and EndpointSlice (as for any Service without a selector) and served by
//! one listener. The data path cannot tell: nftables picks one of 100 endpoint chains and
//! DNATs to it, the user-space proxy picks one of 100 backends and dials it, and every
//! connection crosses the host to a different address. The same client dialing the same 100
//! addresses directly is the row beside it, so the Service's own cost is the difference.

use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::cluster::{Cluster, NODE_A, NODE_B};
use super::model::{Measurement, PATHS, ProxyMode, Runner, Sizes, median, metrics_of};
use super::objects::{self, CLIENT, ENDPOINT_PORT, NATIVE_PORT, SENTRY_PORT};
use super::topology::{EndpointNet, NodeLink, Ranges, process_in_namespace_of};
use super::workload::{self, Line, Targets};
use super::{NetworkConfig, Report};
use crate::bench::overhead::machine::Machine;

const ENDPOINTS: u8 = 100;

/// What every mode's run shares.
struct Shared {
    dir: tempfile::TempDir,
    netbench: std::path::PathBuf,
    image: std::path::PathBuf,
    ranges: Ranges,
    link: NodeLink,
    endpoints: EndpointNet,
    sizes: Sizes,
    rt: tokio::runtime::Runtime,
}

pub fn run(cfg: &NetworkConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sizes = if cfg.quick { Sizes::quick() } else { Sizes::full() };
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    eprintln!("network: compiling netbench, setting up node B's namespace and 100 endpoints ...");
    let netbench = workload::compile(dir.path())?;
    let image = crate::bench::pods::busybox_image_with(
        &dir.path().join("image"),
        &[(netbench.as_path(), "/netbench")],
    )?;
    let ranges = Ranges::for_process();
    let link = NodeLink::create(&ranges).context("node B's namespace")?;
    let endpoints =
        EndpointNet::create(&ranges, ENDPOINTS, dir.path()).context("the endpoint namespace")?;
    let _listener = workload::server(endpoints.ns.command(&netbench), ENDPOINT_PORT)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let shared = Shared { dir, netbench, image, ranges, link, endpoints, sizes, rt };
    let mut measurements = Vec::new();
    for (i, &mode) in cfg.modes.iter().enumerate() {
        eprintln!("network: [{}/{}] {} data path ...", i + 1, cfg.modes.len(), mode.id());
        let t = Instant::now();
        let got = measure_mode(&shared, mode).unwrap_or_else(|e| {
            eprintln!("network:     {}: FAILED: {e:#}", mode.id());
            failed_all(mode, &format!("{e:#}"))
        });
        eprintln!("network:     {} done in {:.0} s", mode.id(), t.elapsed().as_secs_f64());
        measurements.extend(got);
    }
    Ok(Report {
        started_unix_s,
        duration_s: started.elapsed().as_secs_f64(),
        quick: cfg.quick,
        sizes: shared.sizes.clone(),
        modes: cfg.modes.clone(),
        machine: Machine::detect(),
        measurements,
    })
}

/// Every measurement of `mode`, failed for `reason`.
fn failed_all(mode: ProxyMode, reason: &str) -> Vec<Measurement> {
    let mut out = Vec::new();
    for p in PATHS {
        for m in metrics_of(p) {
            for runner in Runner::ALL {
                out.push(Measurement {
                    path: p.id,
                    metric: m.id,
                    mode,
                    runner,
                    value: None,
                    rounds: Vec::new(),
                    error: Some(reason.to_owned()),
                });
            }
        }
    }
    out
}

/// How long a client may take for a whole plan: generous, a stuck path must still end it.
fn client_limit(s: &Sizes) -> Duration {
    let paths = PATHS.len() as u64 * s.rounds.max(1);
    Duration::from_secs(60 + paths * s.stream_ms / 1000)
        + Duration::from_millis(paths * (s.round_trips + s.connects) * 5)
}

fn measure_mode(sh: &Shared, mode: ProxyMode) -> anyhow::Result<Vec<Measurement>> {
    let state = sh.dir.path().join(mode.id());
    let out_dir = state.join("client");
    std::fs::create_dir_all(&out_dir)?;
    let t = Instant::now();
    let cluster = Cluster::start(&sh.rt, mode, &sh.ranges, &sh.link, &state, &sh.image)
        .with_context(|| format!("the cluster's logs are in {}", state.display()))?;
    eprintln!("network:     two nodes ready in {:.1} s", t.elapsed().as_secs_f64());
    let result = measure_on(sh, &cluster, mode, &state, &out_dir);
    if let Err(e) = sh.rt.block_on(cluster.delete_pods()) {
        tracing::warn!("tearing the {} cluster down: {e:#}", mode.id());
    }
    drop(cluster);
    result
}

fn measure_on(
    sh: &Shared,
    cluster: &Cluster,
    mode: ProxyMode,
    state: &Path,
    out_dir: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let kube = &cluster.kube;
    let t = Instant::now();
    let (pod_a, pod_b, client, service_a, service_b, service_many) = sh.rt.block_on(async {
        objects::server_pod(kube, "netbench-a", NODE_A).await?;
        objects::server_pod(kube, "netbench-b", NODE_B).await?;
        objects::client_pod(kube, NODE_A, out_dir).await?;
        let service_a = objects::service(kube, "netbench-a", "netbench-a").await?;
        let service_b = objects::service(kube, "netbench-b", "netbench-b").await?;
        let many = objects::many_endpoint_service(kube, "netbench-many", &sh.endpoints.addresses);
        let service_many = many.await?;
        let pod_a = objects::wait_running(kube, "netbench-a").await?;
        let pod_b = objects::wait_running(kube, "netbench-b").await?;
        let client = objects::wait_running(kube, CLIENT).await?;
        anyhow::Ok((pod_a, pod_b, client, service_a, service_b, service_many))
    })?;
    eprintln!("network:     three pods running in {:.1} s", t.elapsed().as_secs_f64());

    let (pid_a, pid_b) = (process_in_namespace_of(pod_a)?, process_in_namespace_of(pod_b)?);
    let client_pid = process_in_namespace_of(client)?;
    let _native_a = workload::server_in_namespace_of(pid_a, &sh.netbench, NATIVE_PORT)?;
    let _native_b = workload::server_in_namespace_of(pid_b, &sh.netbench, NATIVE_PORT)?;
    let mut answering = vec![SocketAddrV4::new(service_many, SENTRY_PORT)];
    for ip in [pod_a, pod_b, service_a, service_b] {
        answering.extend([SENTRY_PORT, NATIVE_PORT].map(|p| SocketAddrV4::new(ip, p)));
    }
    workload::wait_answering(client_pid, &sh.netbench, &answering, Duration::from_secs(30))
        .context("waiting for the paths to be in place")?;

    let targets = Targets {
        pod_a,
        pod_b,
        service_a,
        service_b,
        service_many,
        endpoints: sh.endpoints.addresses.clone(),
    };
    let limit = client_limit(&sh.sizes);
    let mut out = Vec::new();
    eprintln!("network:     native client ...");
    let native_dir = state.join("native");
    std::fs::create_dir_all(&native_dir)?;
    let plan = workload::plan(&targets, Runner::Native, &sh.sizes);
    let native = workload::run_native(client_pid, &sh.netbench, &native_dir, &plan, limit);
    out.extend(collect(mode, Runner::Native, native));
    eprintln!("network:     Sentry client ...");
    let sentry = run_sentry_client(sh, cluster, out_dir, &targets, limit);
    out.extend(collect(mode, Runner::Sentry, sentry));
    Ok(out)
}

/// Hands the client pod its plan and waits for its results.
fn run_sentry_client(
    sh: &Shared,
    cluster: &Cluster,
    out_dir: &Path,
    targets: &Targets,
    limit: Duration,
) -> anyhow::Result<String> {
    let plan = workload::plan(targets, Runner::Sentry, &sh.sizes);
    let tmp = out_dir.join("plan.tmp");
    std::fs::write(&tmp, plan)?;
    std::fs::rename(&tmp, out_dir.join("plan"))?;
    let result = out_dir.join("result");
    let start = Instant::now();
    let mut checked = Instant::now();
    while !result.exists() {
        if start.elapsed() > limit {
            anyhow::bail!("the Sentry client gave no results within {limit:?}");
        }
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            let phase = sh.rt.block_on(objects::phase(&cluster.kube, CLIENT))?;
            if phase == "Failed" || phase == "Succeeded" {
                anyhow::bail!("the Sentry client pod ended ({phase}) without results");
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(std::fs::read_to_string(&result)?)
}

/// The measurements of one client's results (or of its failure).
fn collect(mode: ProxyMode, runner: Runner, results: anyhow::Result<String>) -> Vec<Measurement> {
    let lines = match results {
        Ok(text) => workload::parse(&text),
        Err(e) => {
            eprintln!("network:     {} client FAILED: {e:#}", runner.id());
            return failed_all(mode, &format!("{e:#}"))
                .into_iter()
                .filter(|m| m.runner == runner)
                .collect();
        }
    };
    let mut out = Vec::new();
    for p in PATHS {
        for m in metrics_of(p) {
            let rounds: Vec<f64> = lines
                .iter()
                .filter_map(|l| match l {
                    Line::Value { path, metric, value } if path == p.id && metric == m.id => {
                        Some(*value)
                    }
                    _ => None,
                })
                .collect();
            let value = median(&rounds);
            let failure = lines.iter().find_map(|l| match l {
                Line::Failed { path, exchange, errno } if path == p.id && exchange == m.kind => {
                    Some(format!("{} failed: errno {errno}", m.kind))
                }
                _ => None,
            });
            let error = match (value, failure) {
                (Some(_), _) => None,
                (None, Some(f)) => Some(f),
                (None, None) => Some("no result".to_owned()),
            };
            if let (Some(v), _) = (value, &error) {
                eprintln!("network:     {} {} {}: {v:.1}", runner.id(), p.id, m.id);
            }
            out.push(Measurement { path: p.id, metric: m.id, mode, runner, value, rounds, error });
        }
    }
    out
}
