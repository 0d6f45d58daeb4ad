//! `ringfence bench pods`: pod startup latency and memory per idle pod on one node.
//!
//! Starts `ringfence up` on a fresh data directory, imports a busybox image (so no pull is
//! measured), then creates N `sleep` pods with runtimeClassName `sentry` at a steady rate. A
//! pod's startup latency runs from just before its create request to the watch event that
//! shows it Running, as Kubernetes' pod startup SLI does (5 s p99 is the Kubernetes SLO, 1 s
//! is this project's target). Memory is the node's process tree minus the `up` process itself
//! (API server, scheduler, controllers, agent), divided by the pods, once they idle.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, WatchEvent};
use orchestrator::api::request::ListOptions;
use orchestrator::kube::Kube;
use orchestrator::kube::https::HttpsClient;
use serde_json::json;

use super::process;
use super::stats::Samples;

pub const TARGET_P99_MS: f64 = 1000.0;
pub const KUBERNETES_SLO_P99_MS: f64 = 5000.0;

pub struct PodsBenchConfig {
    pub pods: usize,
    /// Pods created per second.
    pub rate: f64,
}

pub struct Report {
    pub pods: usize,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rss_mib_per_pod: f64,
    pub pss_mib_per_pod: f64,
    pub control_plane_rss_mib: f64,
}

/// A `docker save`-shaped directory holding busybox-static with every applet.
fn busybox_image(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("busybox-static (scripts/setup installs it)")?;
    for applet in ["sh", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    let image = dir.join("image");
    std::fs::create_dir_all(image.join("layer"))?;
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(image.join("layer/layer.tar"))
        .arg(".")
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("tar of the busybox root failed");
    }
    let layer = std::fs::read(image.join("layer/layer.tar"))?;
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [images::Digest::of(&layer).to_string()]},
    });
    std::fs::write(image.join("config.json"), serde_json::to_vec(&config)?)?;
    let manifest =
        json!([{"Config": "config.json", "RepoTags": ["bench:1"], "Layers": ["layer/layer.tar"]}]);
    std::fs::write(image.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    Ok(image)
}

/// `ringfence up` on `data`, stopped with SIGTERM (so it removes its pods) when dropped.
struct Up(Child);

impl Up {
    fn start(data: &Path) -> anyhow::Result<(Up, PathBuf)> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("up")
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--node-port", "0", "--bridge", "rfbench0"])
            .args(["--pod-cidr", "10.89.0.0/24", "--service-cidr", "10.97.0.0/24"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting ringfence up")?;
        let stdout = child.stdout.take().context("up's output")?;
        let up = Up(child);
        let mut lines = BufReader::new(stdout).lines();
        let ready =
            lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("ringfence cluster up"));
        if !ready {
            bail!("ringfence up ended before the cluster was up");
        }
        std::thread::spawn(move || for _ in lines {});
        Ok((up, data.join("admin.kubeconfig")))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pod(i: usize) -> Pod {
    let main = Container {
        name: "main".into(),
        image: Some("bench:1".into()),
        image_pull_policy: Some("Never".into()),
        command: Some(vec!["sleep".into(), "3600".into()]),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("bench-{i}")),
            namespace: Some("default".into()),
            labels: Some([("app".to_owned(), "bench".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            runtime_class_name: Some("sentry".into()),
            termination_grace_period_seconds: Some(0),
            containers: vec![main],
            ..Default::default()
        }),
        status: None,
    }
}

pub fn run(cfg: &PodsBenchConfig) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let image = busybox_image(dir.path())?;
    let data = dir.path().join("node");
    let (up, kubeconfig) = Up::start(&data)?;
    let st = Command::new(std::env::current_exe()?)
        .args(["image", "import", "--data-dir"])
        .arg(&data)
        .arg(&image)
        .args(["--name", "bench:1"])
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("importing the busybox image failed");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let latencies = runtime.block_on(measure(cfg, &kubeconfig))?;
    // Let the sandboxes settle to idle before reading their memory.
    std::thread::sleep(Duration::from_secs(2));
    let pid = up.0.id();
    let control_plane_rss = own_rss_kib(pid);
    let rss = process::tree_rss_kib(pid).saturating_sub(control_plane_rss);
    let pss = process::tree_pss_kib(pid).saturating_sub(own_pss_kib(pid));
    let mut samples = latencies;
    let per_pod = |kib: u64| kib as f64 / 1024.0 / cfg.pods as f64;
    let report = Report {
        pods: cfg.pods,
        rate: cfg.rate,
        p50_ms: samples.percentile_ms(50.0),
        p99_ms: samples.percentile_ms(99.0),
        max_ms: samples.percentile_ms(100.0),
        rss_mib_per_pod: per_pod(rss),
        pss_mib_per_pod: per_pod(pss),
        control_plane_rss_mib: control_plane_rss as f64 / 1024.0,
    };
    drop(up);
    Ok(report)
}

fn own_rss_kib(pid: u32) -> u64 {
    process::tree_rss_kib(pid)
        - process::children(pid).into_iter().map(process::tree_rss_kib).sum::<u64>()
}

fn own_pss_kib(pid: u32) -> u64 {
    process::tree_pss_kib(pid)
        - process::children(pid).into_iter().map(process::tree_pss_kib).sum::<u64>()
}

async fn measure(cfg: &PodsBenchConfig, kubeconfig: &Path) -> anyhow::Result<Samples> {
    let kube = Kube::new(Arc::new(HttpsClient::from_kubeconfig(kubeconfig)?), "ringfence-bench");
    let rc = RuntimeClass {
        metadata: ObjectMeta { name: Some("sentry".into()), ..Default::default() },
        handler: "sentry".into(),
        ..Default::default()
    };
    kube.create(&rc).await.context("creating the sentry RuntimeClass")?;
    let (_, rv) = kube.list_selected::<Pod>(Some("default"), ListOptions::default()).await?;
    let from_now = ListOptions { resource_version: Some(rv), ..Default::default() };
    let mut events = kube.watch_selected::<Pod>(Some("default"), from_now).await?;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let creator = {
        let (kube, sent, n, rate) = (kube.clone(), sent.clone(), cfg.pods, cfg.rate.max(0.1));
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (kube, sent) = (kube.clone(), sent.clone());
                tasks.push(tokio::spawn(async move {
                    let p = pod(i);
                    let name = p.metadata.name.clone().unwrap_or_default();
                    sent.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), Instant::now());
                    if let Err(e) = kube.create(&p).await {
                        tracing::error!("creating pod {name}: {e}");
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    let bar = ProgressBar::new(cfg.pods as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} {bar:30} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("pods running");
    let mut samples = Samples::default();
    let mut running = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120 + (cfg.pods as f64 / cfg.rate) as u64);
    while running.len() < cfg.pods {
        let ev = tokio::time::timeout_at(deadline.into(), events.next()).await;
        let obj = match ev {
            Ok(Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)))) => p,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                bail!("only {} of {} pods became Running", running.len(), cfg.pods)
            }
        };
        let name = obj.metadata.name.clone().unwrap_or_default();
        let phase = obj.status.and_then(|s| s.phase);
        if phase.as_deref() == Some("Running") && !running.contains(&name) {
            let at = sent.lock().unwrap_or_else(|e| e.into_inner()).get(&name).copied();
            if let Some(at) = at {
                samples.push(at.elapsed());
                running.insert(name);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    creator.await?;
    Ok(samples)
}

pub fn render(r: &Report) -> String {
    format!(
        "| pods | created/s | startup p50 ms | p99 ms | max ms | p99 vs target {TARGET_P99_MS:.0} ms | p99 vs Kubernetes SLO {KUBERNETES_SLO_P99_MS:.0} ms | RSS MiB per idle pod | PSS MiB per idle pod | control plane + agent RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|\n\
         | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x | {:.1} | {:.1} | {:.0} |\n",
        r.pods,
        r.rate,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.p99_ms / TARGET_P99_MS,
        r.p99_ms / KUBERNETES_SLO_P99_MS,
        r.rss_mib_per_pod,
        r.pss_mib_per_pod,
        r.control_plane_rss_mib,
    )
}
