//! `ringfence bench pods`: pod startup latency and memory per idle pod on one node.
//!
//! Starts `ringfence up` on a fresh data directory, imports a busybox image (so no pull is
//! measured), then creates N `sleep` pods with runtimeClassName `sentry` at a steady rate. A
//! pod's startup latency runs from just before its create request to the watch event that
//! shows it Running, as Kubernetes' pod startup SLI does (5 s p99 is the Kubernetes SLO, 1 s
//! is this project's target). Memory is the node's process tree minus the `up` process itself
//! (API server, scheduler, controllers, agent), divided by the pods, once they idle.
//!
//! With `--runtime microvm` ([`run_microvm`]) the same cluster gets a second node, inside the
//! nested-SVM lane (or on this host's KVM with the direct transport), offering microVMs: the
//! same pods there, next to Sentry pods on the first node and to bare boots of the same guest
//! to its agent, all in one run. A microVM pod's memory is the proportional set size of its
//! VMM (and jail) and virtio-fs daemon, read in the lane.

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
use orchestrator::api::request::{DeleteOptions, ListOptions};
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
    busybox_image_with(dir, &[])
}

/// The same image with `files` (a file on the host, the absolute path in the image) added.
pub(super) fn busybox_image_with(dir: &Path, files: &[(&Path, &str)]) -> anyhow::Result<PathBuf> {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("busybox-static (scripts/setup installs it)")?;
    for applet in ["sh", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    for (from, to) in files {
        let dest = root.join(to.trim_start_matches('/'));
        std::fs::copy(from, &dest).with_context(|| format!("copying {}", from.display()))?;
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
pub(super) struct Up(pub(super) Child);

impl Up {
    fn start(data: &Path, extra: &[&str]) -> anyhow::Result<(Up, PathBuf)> {
        let mut args = vec!["--listen", "127.0.0.1:0", "--node-port", "0", "--bridge", "rfbench0"];
        args.extend(["--pod-cidr", "10.89.0.0/24", "--service-cidr", "10.97.0.0/24"]);
        args.extend(extra);
        Up::start_with(data, &args)
    }

    /// `ringfence up --data-dir data` with exactly `args`; returns the admin kubeconfig.
    pub(super) fn start_with(data: &Path, args: &[&str]) -> anyhow::Result<(Up, PathBuf)> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("up")
            .arg("--data-dir")
            .arg(data)
            .args(args)
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
        super::process::terminate(&mut self.0, Duration::from_secs(60));
    }
}

/// The `i`-th pod of a batch: `sleep` in runtime class `class`, with a memory limit if given.
fn pod(i: usize, class: &str, batch: &str, memory: Option<&str>) -> Pod {
    let resources = memory.map(|m| k8s_openapi::api::core::v1::ResourceRequirements {
        limits: Some(
            [(
                "memory".to_owned(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(m.into()),
            )]
            .into(),
        ),
        ..Default::default()
    });
    let main = Container {
        name: "main".into(),
        image: Some("bench:1".into()),
        image_pull_policy: Some("Never".into()),
        command: Some(vec!["sleep".into(), "3600".into()]),
        resources,
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("bench-{batch}-{i}")),
            namespace: Some("default".into()),
            labels: Some([("app".to_owned(), format!("bench-{batch}"))].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            runtime_class_name: Some(class.into()),
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
    let (up, kubeconfig) = Up::start(&data, &[])?;
    import(&data, &image)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let latencies = runtime.block_on(async {
        let kube = connect(&kubeconfig).await?;
        measure(&kube, cfg.pods, cfg.rate, "sentry", "sentry", None).await
    })?;
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

/// Imports the bench image into the node whose state is in `data`.
pub(super) fn import(data: &Path, image: &Path) -> anyhow::Result<()> {
    let st = Command::new(std::env::current_exe()?)
        .args(["image", "import", "--data-dir"])
        .arg(data)
        .arg(image)
        .args(["--name", "bench:1"])
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("importing the busybox image failed");
    }
    Ok(())
}

pub(super) async fn connect(kubeconfig: &Path) -> anyhow::Result<Kube> {
    Ok(Kube::new(Arc::new(HttpsClient::from_kubeconfig(kubeconfig)?), "ringfence-bench"))
}

/// Makes sure RuntimeClass `class` exists (`ringfence up` makes those of its own node).
async fn runtime_class(kube: &Kube, class: &str) -> anyhow::Result<()> {
    let rc = RuntimeClass {
        metadata: ObjectMeta { name: Some(class.into()), ..Default::default() },
        handler: class.into(),
        ..Default::default()
    };
    match kube.create(&rc).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating RuntimeClass {class}"))),
    }
}

/// Creates `pods` pods of `class` (named after `batch`) at `rate` per second and times each
/// to Running.
async fn measure(
    kube: &Kube,
    pods: usize,
    rate: f64,
    class: &str,
    batch: &str,
    memory: Option<&str>,
) -> anyhow::Result<Samples> {
    runtime_class(kube, class).await?;
    let (_, rv) = kube.list_selected::<Pod>(Some("default"), ListOptions::default()).await?;
    let from_now = ListOptions { resource_version: Some(rv), ..Default::default() };
    let mut events = kube.watch_selected::<Pod>(Some("default"), from_now).await?;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let creator = {
        let (kube, sent, n, rate) = (kube.clone(), sent.clone(), pods, rate.max(0.1));
        let (class, memory) = (class.to_owned(), memory.map(str::to_owned));
        let batch = batch.to_owned();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let (kube, sent) = (kube.clone(), sent.clone());
                let p = pod(i, &class, &batch, memory.as_deref());
                tasks.push(tokio::spawn(async move {
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

    let bar = ProgressBar::new(pods as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} {bar:30} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{batch} pods running"));
    let mut samples = Samples::default();
    let mut running = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(300 + (pods as f64 / rate) as u64);
    while running.len() < pods {
        let ev = tokio::time::timeout_at(deadline.into(), events.next()).await;
        let obj = match ev {
            Ok(Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)))) => p,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                bail!("only {} of {pods} {class} pods became Running", running.len())
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

/// `--runtime microvm`: what to run and where the microVM node runs.
pub struct MicrovmBenchConfig {
    pub pods: usize,
    pub rate: f64,
    /// Bare boots of the same guest to compare with.
    pub boots: usize,
    /// Also pods (and bare boots) that boot their guest, on a node without templates; skipped
    /// where a boot takes minutes (this host's own KVM).
    pub booted: bool,
    pub transport: crate::lane::Transport,
}

/// Startup and memory of one kind of pod (or of bare boots).
pub struct Row {
    pub name: &'static str,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub pss_mib_per_pod: Option<f64>,
}

/// Memory limit of the microVM pods: with the guest's own 64 MiB, 128 MiB guests.
const MICROVM_POD_MEMORY: &str = "64Mi";
/// What the microVM pods' memory is judged against, MiB per idle pod.
pub const MICROVM_PSS_TARGET_MIB: f64 = 40.0;
/// What a microVM pod's startup p99 is judged against: this many bare boots' p99.
pub const MICROVM_P99_TARGET_RATIO: f64 = 1.5;
/// On a host's own KVM, where a boot takes minutes: template-clone pods' p99 create -> Running.
pub const MICROVM_DIRECT_P99_TARGET_MS: f64 = 3000.0;

pub fn run_microvm(cfg: &MicrovmBenchConfig) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let image = busybox_image(dir.path())?;
    // The lane takes files: the image directory as one tar.
    let image_tar = dir.path().join("image.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&image_tar)
        .arg(".")
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("tar of the image failed");
    }
    let data = dir.path().join("node");
    let (up, kubeconfig) =
        Up::start(&data, &["--tls-san", "10.0.2.2", "--runtime-handlers", "sentry"])?;
    import(&data, &image)?;
    let (kernel, initrd) = crate::lane::node::last_guest()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let kube = runtime.block_on(connect(&kubeconfig))?;
    let spec = |name: &str, templates: bool| crate::lane::node::NodeSpec {
        name: name.into(),
        kubeconfig: kubeconfig.clone(),
        images: vec![("bench:1".into(), image_tar.clone())],
        kernel: kernel.clone(),
        initrd: initrd.clone(),
        transport: cfg.transport,
        timeout: Duration::from_secs(1800),
        boot_timeout: Duration::from_secs(600),
        templates,
        runtime: crate::lane::node::NodeRuntime::Ringfence,
    };
    let pss_of = |node: &crate::lane::node::LaneNode| -> anyhow::Result<u64> {
        let report = node.report()?;
        crate::lane::node::parse_report(&report)
            .into_iter()
            .find(|(k, _)| k == "sandbox-pss-kib")
            .map(|(_, v)| v)
            .with_context(|| format!("no memory in the node's report:\n{report}"))
    };
    let per_pod = |kib: u64| Some(kib as f64 / 1024.0 / cfg.pods as f64);

    // Every guest boots: a node without templates, and bare boots of the same guest:
    // (bare boots, pods, their PSS).
    let booted = match cfg.booted {
        false => None,
        true => {
            let booting = crate::lane::node::LaneNode::start(&spec("bench-boot", false))?;
            runtime.block_on(wait_node_ready(&kube, "bench-boot"))?;
            let mut boots = Samples::default();
            for _ in 0..cfg.boots.max(1) {
                boots.push(booting.bare_boot()?);
            }
            let pods = runtime.block_on(measure(
                &kube,
                cfg.pods,
                cfg.rate,
                "microvm",
                "booted",
                Some(MICROVM_POD_MEMORY),
            ))?;
            std::thread::sleep(Duration::from_secs(3));
            let pss = pss_of(&booting)?;
            finish(booting)?;
            runtime.block_on(forget_node(&kube, "bench-boot", "booted"))?;
            Some((boots, pods, pss))
        }
    };

    // Clones of the node's template, built after a first pod of the same shape booted.
    let cloning = crate::lane::node::LaneNode::start(&spec("bench-clone", true))?;
    runtime.block_on(wait_node_ready(&kube, "bench-clone"))?;
    runtime.block_on(measure(&kube, 1, 1.0, "microvm", "warmup", Some(MICROVM_POD_MEMORY)))?;
    wait_for_template(&cloning)?;
    runtime.block_on(delete_batch(&kube, "warmup"))?;
    let mut cloned = runtime.block_on(measure(
        &kube,
        cfg.pods,
        cfg.rate,
        "microvm",
        "cloned",
        Some(MICROVM_POD_MEMORY),
    ))?;
    std::thread::sleep(Duration::from_secs(3));
    let cloned_pss = pss_of(&cloning)?;
    let node_output = finish(cloning)?;
    if let Some(b) = start_breakdown(&node_output) {
        println!("{b}");
    }
    runtime.block_on(forget_node(&kube, "bench-clone", "cloned"))?;

    let pss_before = process::tree_pss_kib(up.0.id()).saturating_sub(own_pss_kib(up.0.id()));
    let mut sentry = runtime.block_on(measure(
        &kube,
        cfg.pods,
        cfg.rate,
        "sentry",
        "sentry",
        Some(MICROVM_POD_MEMORY),
    ))?;
    std::thread::sleep(Duration::from_secs(3));
    let pss_after = process::tree_pss_kib(up.0.id()).saturating_sub(own_pss_kib(up.0.id()));
    drop(up);
    let row = |name, samples: &mut Samples, pss| Row {
        name,
        count: samples.len(),
        p50_ms: samples.percentile_ms(50.0),
        p99_ms: samples.percentile_ms(99.0),
        pss_mib_per_pod: pss,
    };
    let mut rows = vec![
        row(CLONES_ROW, &mut cloned, per_pod(cloned_pss)),
        row("sentry pods", &mut sentry, per_pod(pss_after.saturating_sub(pss_before))),
    ];
    if let Some((mut boots, mut pods, pss)) = booted {
        rows.insert(0, row("microvm pods, booted", &mut pods, per_pod(pss)));
        rows.push(row("bare vm boot to agent", &mut boots, None));
    }
    Ok(rows)
}

/// Stops a lane node, which must end cleanly; returns what it printed.
fn finish(node: crate::lane::node::LaneNode) -> anyhow::Result<String> {
    let out = node.stop()?;
    if out.exit_code != 0 {
        bail!("the microVM node ended with {}:\n{}", out.exit_code, out.output);
    }
    Ok(out.output)
}

/// A log line without its ANSI colours.
fn plain(line: &str) -> String {
    let mut plain = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // An escape sequence ends at its first letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The `key=N` numbers of a log line without colours.
fn numbers(line: &str) -> Vec<(String, u64)> {
    line.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Samples of each named step, in the order the steps were first seen.
type StepSamples = Vec<(String, Samples)>;

/// Where the clones' starts went, from the runtime's timings in the node's output: medians
/// of the guest coming up (restore, identity, interface), of each container's sharing,
/// CreateContainer and first exec, and of CreateContainer's own steps in the guest.
fn start_breakdown(output: &str) -> Option<String> {
    let mut phases: Vec<(&str, &str, Samples)> = vec![
        ("microVM guest up", "total_ms", Samples::default()),
        ("microVM clone ready", "agent_ms", Samples::default()),
        ("microVM clone ready", "identity_ms", Samples::default()),
        ("container started", "shared_ms", Samples::default()),
        ("container started", "create_ms", Samples::default()),
        ("container started", "exec_ms", Samples::default()),
    ];
    // The guest's own step lists, `guest_steps_ms="overlay:120,proc:30"`, per key.
    let mut lists: [(&str, &str, StepSamples); 4] = [
        ("refresh_steps_ms=", "a clone's Refresh in the guest", Vec::new()),
        ("interface_steps_ms=", "a clone's interface in the guest", Vec::new()),
        ("guest_steps_ms=", "CreateContainer in the guest", Vec::new()),
        ("exec_steps_ms=", "first exec in the guest", Vec::new()),
    ];
    for line in output.lines().filter(|l| l.contains("CRI-TIMING")).map(plain) {
        let values = numbers(&line);
        for (event, key, samples) in phases.iter_mut() {
            if line.contains(*event)
                && let Some((_, v)) = values.iter().find(|(k, _)| k == key)
            {
                samples.push(Duration::from_millis(*v));
            }
        }
        for (key, _, steps) in lists.iter_mut() {
            let Some(rest) = line.split(*key).nth(1) else { continue };
            let list = rest.split_whitespace().next().unwrap_or("").trim_matches('"');
            for (step, ms) in list.split(',').filter_map(|p| p.split_once(':')) {
                let Ok(ms) = ms.trim_matches(|c: char| !c.is_ascii_digit()).parse() else {
                    continue;
                };
                let at = match steps.iter().position(|(s, _)| s == step) {
                    Some(i) => i,
                    None => {
                        steps.push((step.to_owned(), Samples::default()));
                        steps.len() - 1
                    }
                };
                steps[at].1.push(Duration::from_millis(ms));
            }
        }
    }
    let mut parts: Vec<String> = phases
        .iter_mut()
        .filter(|(_, _, samples)| samples.len() > 0)
        .map(|(event, key, samples)| {
            let n = samples.len();
            format!("{event} {key} {:.0} (n={n})", samples.percentile_ms(50.0))
        })
        .collect();
    for (_, what, steps) in lists.iter_mut().filter(|(_, _, steps)| !steps.is_empty()) {
        let each: Vec<String> = steps
            .iter_mut()
            .map(|(step, samples)| format!("{step} {:.0}", samples.percentile_ms(50.0)))
            .collect();
        parts.push(format!("{what}, ms: {}", each.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("microvm pod start, medians: {}", parts.join("; ")))
}

/// Waits (up to 5 minutes) for the node to report a ready snapshot template.
fn wait_for_template(node: &crate::lane::node::LaneNode) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let report = node.report()?;
        let ready = crate::lane::node::parse_report(&report)
            .iter()
            .any(|(k, v)| k == "templates" && *v > 0);
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the node built no template within 5 minutes:\n{}", node.report()?)
}

fn batch_selector(batch: &str) -> anyhow::Result<orchestrator::api::selector::LabelSelector> {
    orchestrator::api::selector::LabelSelector::parse(&format!("app=bench-{batch}"))
        .map_err(|e| anyhow::anyhow!("selector: {e}"))
}

/// Deletes the pods of `batch` and waits until they are gone.
async fn delete_batch(kube: &Kube, batch: &str) -> anyhow::Result<()> {
    let selected = ListOptions { label_selector: batch_selector(batch)?, ..Default::default() };
    let (pods, _) = kube.list_selected::<Pod>(Some("default"), selected.clone()).await?;
    for p in pods {
        let name = p.metadata.name.unwrap_or_default();
        let now = DeleteOptions { grace_period: Some(0), ..Default::default() };
        kube.delete::<Pod>(Some("default"), &name, now)
            .await
            .with_context(|| format!("deleting pod {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if kube.list_selected::<Pod>(Some("default"), selected.clone()).await?.0.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the {batch} pods were not deleted within 2 minutes")
}

/// Removes a stopped lane node and the pods it held from the cluster.
async fn forget_node(kube: &Kube, node: &str, batch: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let _ = kube.delete::<Node>(None, node, DeleteOptions::default()).await;
    // Pods bound to a node that is gone are removed without it.
    let selected = ListOptions { label_selector: batch_selector(batch)?, ..Default::default() };
    let (pods, _) = kube.list_selected::<Pod>(Some("default"), selected).await?;
    for p in pods {
        let name = p.metadata.name.unwrap_or_default();
        let now = DeleteOptions { grace_period: Some(0), ..Default::default() };
        let _ = kube.delete::<Pod>(Some("default"), &name, now).await;
    }
    Ok(())
}

/// Waits for Node `name` to report Ready.
async fn wait_node_ready(kube: &Kube, name: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Ok(Some(n)) = kube.get::<k8s_openapi::api::core::v1::Node>(None, name).await {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("node {name} was not Ready within 5 minutes")
}

const CLONES_ROW: &str = "microvm pods, template clones";

pub fn render_microvm(rows: &[Row], transport: crate::lane::Transport) -> String {
    let boot_p99 = rows.iter().find(|r| r.pss_mib_per_pod.is_none()).map(|r| r.p99_ms);
    let where_ = match transport {
        crate::lane::Transport::Nested => "microVMs in the nested-SVM lane",
        crate::lane::Transport::Direct => "microVMs on this host's KVM",
    };
    let mut out = format!(
        "{where_}; Sentry pods on this host; create -> Running, 128 MiB guests\n\
         | what | count | p50 ms | p99 ms | p99 vs bare boot (target {MICROVM_P99_TARGET_RATIO}x) | PSS MiB per idle pod | vs target {MICROVM_PSS_TARGET_MIB:.0} MiB |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let ratio = match boot_p99 {
            Some(b) if b > 0.0 && r.pss_mib_per_pod.is_some() => format!("{:.2}x", r.p99_ms / b),
            _ => "-".into(),
        };
        let (pss, vs) = match r.pss_mib_per_pod {
            Some(p) => (format!("{p:.1}"), format!("{:.2}x", p / MICROVM_PSS_TARGET_MIB)),
            None => ("-".into(), "-".into()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {ratio} | {pss} | {vs} |\n",
            r.name, r.count, r.p50_ms, r.p99_ms
        ));
    }
    let clones = rows.iter().find(|r| r.name == CLONES_ROW);
    if let (crate::lane::Transport::Direct, Some(c)) = (transport, clones) {
        out.push_str(&format!(
            "template clones p99 {:.0} ms vs target {MICROVM_DIRECT_P99_TARGET_MS:.0} ms: {:.2}x\n",
            c.p99_ms,
            c.p99_ms / MICROVM_DIRECT_P99_TARGET_MS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_breakdown_reads_the_runtimes_timings() {
        let output = "CRI-TIMING 2026-12-05T13:00:00Z \x1b[32m INFO\x1b[0m \x1b[2morchestrator\x1b[0m: \
                      microVM guest up \x1b[3msandbox\x1b[0m\x1b[2m=\x1b[0m\"a\" \x1b[3mtotal_ms\x1b[0m\x1b[2m=\x1b[0m2100\n\
                      CRI-TIMING INFO x: microVM guest up sandbox=\"b\" restored=true total_ms=900\n\
                      CRI-TIMING INFO x: microVM guest up sandbox=\"c\" total_ms=1000\n\
                      CRI-TIMING INFO x: microVM clone ready sandbox=\"c\" agent_ms=400 identity_ms=500 refresh_steps_ms=\"share:300\"\n\
                      CRI-TIMING INFO x: container started in the guest container=\"c\" shared_ms=3 create_ms=700 exec_ms=5000 \x1b[3mguest_steps_ms\x1b[0m\x1b[2m=\x1b[0m\"overlay:120,masks:300\" exec_steps_ms=\"fork:40,exec:90\"\n\
                      unrelated total_ms=1\n";
        let b = start_breakdown(output).unwrap();
        assert!(b.contains("microVM guest up total_ms 1000 (n=3)"), "{b}");
        assert!(b.contains("container started exec_ms 5000 (n=1)"), "{b}");
        assert!(b.contains("microVM clone ready identity_ms 500 (n=1)"), "{b}");
        assert!(b.contains("a clone's Refresh in the guest, ms: share 300"), "{b}");
        assert!(b.contains("CreateContainer in the guest, ms: overlay 120, masks 300"), "{b}");
        assert!(b.contains("first exec in the guest, ms: fork 40, exec 90"), "{b}");
        assert_eq!(start_breakdown("nothing here"), None);
    }
}
