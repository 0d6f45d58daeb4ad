//! `ringfence bench scheduler`: scheduling throughput and latency on simulated nodes.
//!
//! A server runs in this process with its scheduler on the in-process client, as
//! `ringfence server` runs it; N simulated nodes register and heartbeat (their pods are not
//! started, as in Kubernetes' scheduler_perf). Per workload, many tasks create the pods
//! through the API while the scheduler binds them; throughput is pods bound per second from
//! the first creation to the last binding, latency is per pod, from entering the scheduling
//! queue (e2e) or from leaving it (attempt) to its binding being stored.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::Pod;
use orchestrator::api::request::{DeleteOptions, ListOptions};
use orchestrator::kube::{InProcess, Informers, Kube};
use orchestrator::scheduler::{Scheduler, SchedulerConfig};
use orchestrator::server::{self, ServerConfig};
use orchestrator::simnodes::{self, SimConfig};
use serde_json::json;

use super::stats::Samples;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Pods with CPU and memory requests, nothing else.
    Plain,
    /// Groups of `n` pods, each group spread one per node by required anti-affinity.
    AntiAffinity(usize),
}

impl Workload {
    fn name(self) -> String {
        match self {
            Self::Plain => "plain".into(),
            Self::AntiAffinity(n) => format!("anti-affinity (groups of {n})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SchedBenchConfig {
    pub pods: usize,
    pub nodes: usize,
    /// Concurrent pod creators.
    pub creators: usize,
    pub workloads: Vec<Workload>,
}

pub struct Row {
    pub workload: String,
    pub pods: usize,
    pub nodes: usize,
    pub pods_per_s: f64,
    pub create_per_s: f64,
    pub e2e: (f64, f64),
    pub attempt: (f64, f64),
}

/// Kubernetes' scheduler_perf/clusterloader2 threshold and this project's target (pods/s).
pub const CLUSTERLOADER2_THRESHOLD: f64 = 100.0;
pub const TARGET: f64 = 500.0;

fn pod(ns: &str, i: usize, w: Workload) -> Pod {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    });
    if let Workload::AntiAffinity(n) = w {
        let group = format!("g{}", i / n.max(1));
        p["metadata"]["labels"]["group"] = json!(group);
        p["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"group": group}}}]}});
    }
    serde_json::from_value(p).unwrap_or_default()
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!("{what:>24} {{bar:30}} {{pos}}/{{len}} {{per_sec}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

pub async fn run(cfg: SchedBenchConfig) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir().context("temporary data directory")?;
    let store = server::open_embedded(dir.path())?;
    let mut sc = ServerConfig::new(dir.path());
    sc.listen = "127.0.0.1:0".parse()?;
    sc.scheduler = false;
    sc.controllers = false;
    let running = server::start(sc, store).await?;
    let kube = Kube::new(InProcess::new(running.api.clone(), "bench"), "bench");

    let b = bar(cfg.nodes, "registering nodes");
    let sim = SimConfig {
        count: cfg.nodes,
        prefix: "node".into(),
        zones: 10,
        run_pods: false,
        ..Default::default()
    };
    let nodes = simnodes::start(kube.clone(), sim, |n| b.set_position(n as u64)).await?;
    b.finish_and_clear();

    let informers = Informers::new(kube.named("default-scheduler"));
    let (sched, task) = Scheduler::start(&informers, SchedulerConfig::default());
    let mut tasks = informers.start();
    tasks.push(task);
    informers.wait_synced().await;
    while sched.node_count() < cfg.nodes {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut rows = Vec::new();
    for (wi, w) in cfg.workloads.iter().enumerate() {
        let ns = format!("bench-{wi}");
        kube.create(&serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(
            json!({"metadata": {"name": ns}}),
        )?)
        .await?;
        let base = sched.metrics.scheduled.load(Ordering::Relaxed) as usize;
        let (e2e_base, attempt_base) = (
            sched.metrics.e2e_latency.lock().map(|v| v.len()).unwrap_or(0),
            sched.metrics.attempt_latency.lock().map(|v| v.len()).unwrap_or(0),
        );
        let b = bar(cfg.pods, &w.name());
        let started = Instant::now();
        let creators: Vec<_> = (0..cfg.creators.max(1))
            .map(|c| {
                let (kube, ns, w, n, step) =
                    (kube.clone(), ns.clone(), *w, cfg.pods, cfg.creators.max(1));
                tokio::spawn(async move {
                    for i in (c..n).step_by(step) {
                        if let Err(e) = kube.create(&pod(&ns, i, w)).await {
                            tracing::warn!("creating pod {i}: {e}");
                        }
                    }
                })
            })
            .collect();
        let mut created_at = None;
        let mut creators = Some(creators);
        loop {
            let done = sched.metrics.scheduled.load(Ordering::Relaxed) as usize - base;
            b.set_position(done as u64);
            if created_at.is_none()
                && creators.as_ref().is_some_and(|c| c.iter().all(|t| t.is_finished()))
            {
                created_at = Some(started.elapsed());
                creators = None;
            }
            if done >= cfg.pods {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                anyhow::bail!(
                    "{}: only {done} of {} pods scheduled in 10 minutes",
                    w.name(),
                    cfg.pods
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        b.finish_and_clear();
        let created = created_at.unwrap_or(elapsed);
        let mut e2e = Samples::default();
        let mut attempt = Samples::default();
        if let Ok(v) = sched.metrics.e2e_latency.lock() {
            v[e2e_base..].iter().for_each(|d| e2e.push(*d));
        }
        if let Ok(v) = sched.metrics.attempt_latency.lock() {
            v[attempt_base..].iter().for_each(|d| attempt.push(*d));
        }
        rows.push(Row {
            workload: w.name(),
            pods: cfg.pods,
            nodes: cfg.nodes,
            pods_per_s: cfg.pods as f64 / elapsed.as_secs_f64(),
            create_per_s: cfg.pods as f64 / created.as_secs_f64(),
            e2e: (e2e.percentile_ms(50.0), e2e.percentile_ms(99.0)),
            attempt: (attempt.percentile_ms(50.0), attempt.percentile_ms(99.0)),
        });
        // Free the nodes for the next workload.
        let kind = orchestrator::kube::typed::kind_of::<Pod>();
        let opts = DeleteOptions { grace_period: Some(0), ..Default::default() };
        kube.raw(
            kind,
            Some(&ns),
            None,
            None,
            orchestrator::api::Operation::DeleteCollection(ListOptions::default(), opts),
        )
        .await?;
        while !informers.get::<Pod>().list_in(&ns).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for t in tasks.into_iter().chain(nodes.tasks) {
        t.abort();
    }
    running.shutdown();
    Ok(rows)
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | pods | nodes | pods/s | vs target 500 | vs clusterloader2 100 | created/s | e2e p50 / p99 ms | attempt p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2}x | {:.1}x | {:.0} | {:.1} / {:.1} | {:.2} / {:.2} |\n",
            r.workload,
            r.pods,
            r.nodes,
            r.pods_per_s,
            r.pods_per_s / TARGET,
            r.pods_per_s / CLUSTERLOADER2_THRESHOLD,
            r.create_per_s,
            r.e2e.0,
            r.e2e.1,
            r.attempt.0,
            r.attempt.1,
        ));
    }
    out
}
