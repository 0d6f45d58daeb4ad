//! One pod on this node: a level-triggered loop that makes the runtime match the pod's spec
//! (sandbox, image pulls, containers, restarts with back-off, probes) and reports status.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Shared;
use super::env;
use super::probe::{self, ProbeState};
use super::volumes;
use crate::kube::quantity;

/// The labels the runtime objects carry, as the kubelet sets them.
/// The CFS period of sandbox CPU limits, in microseconds.
const CPU_PERIOD_US: i64 = 100_000;

pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";

const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long without failing gets its back-off reset.
const BACKOFF_RESET: Duration = Duration::from_secs(600);
const TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
struct ContainerTrack {
    id: Option<String>,
    restarts: u32,
    /// The last termination, as the API's `lastState.terminated`.
    last_terminated: Option<Value>,
    waiting: Option<(String, String)>,
    backoff: Duration,
    retry_at: Option<Instant>,
    started: Option<Instant>,
    /// Until it succeeds, liveness and readiness wait and the container is not `started`.
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    /// Finished for good (restart policy says no more runs).
    done: bool,
}

pub struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    sandbox: Option<String>,
    sandbox_attempt: u32,
    pod_ip: Option<IpAddr>,
    sandbox_error: Option<(String, String)>,
    /// Volume name -> host path, once prepared.
    volumes: Option<HashMap<String, std::path::PathBuf>>,
    tracks: HashMap<String, ContainerTrack>,
    init_index: usize,
    last_status: Value,
    start_time: String,
    events: std::collections::HashSet<String>,
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn ns_to_rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp(ns / 1_000_000_000, (ns % 1_000_000_000) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(now_rfc3339)
}

impl PodWorker {
    pub fn new(shared: Arc<Shared>, uid: String) -> PodWorker {
        PodWorker {
            shared,
            uid,
            sandbox: None,
            sandbox_attempt: 0,
            pod_ip: None,
            sandbox_error: None,
            volumes: None,
            tracks: HashMap::new(),
            init_index: 0,
            last_status: Value::Null,
            start_time: now_rfc3339(),
            events: Default::default(),
        }
    }

    /// Runs until the pod is gone from the API and its runtime objects are removed.
    pub async fn run(mut self, mut pod_rx: watch::Receiver<Option<Value>>) {
        self.adopt().await;
        if self.sandbox.is_none()
            && let Some(pod) = pod_rx.borrow().clone()
        {
            self.carry_over(&pod);
        }
        loop {
            let pod = pod_rx.borrow_and_update().clone();
            match pod {
                None => {
                    self.teardown(Duration::ZERO).await;
                    return;
                }
                Some(p) if !p["metadata"]["deletionTimestamp"].is_null() => {
                    let grace = p["metadata"]["deletionGracePeriodSeconds"]
                        .as_u64()
                        .or_else(|| p["spec"]["terminationGracePeriodSeconds"].as_u64())
                        .unwrap_or(30);
                    self.pre_stop(&p, Duration::from_secs(grace)).await;
                    self.teardown(Duration::from_secs(grace)).await;
                    self.finish_deletion(&p).await;
                    // Wait for the API to drop it (the watch delivers None).
                    let _ = tokio::time::timeout(Duration::from_secs(5), pod_rx.changed()).await;
                    if pod_rx.borrow().is_none() || pod_rx.has_changed().is_err() {
                        return;
                    }
                    continue;
                }
                Some(p) => {
                    if let Err(e) = self.sync(&p).await {
                        tracing::warn!(pod = str_of(&p, &["metadata", "name"]), "sync: {e}");
                    }
                }
            }
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() { self.teardown(Duration::ZERO).await; return; },
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Picks up runtime objects of this pod left by a previous agent.
    async fn adopt(&mut self) {
        let mut cri = self.shared.cri.clone();
        let filter = cri::PodSandboxFilter {
            label_selector: [(LABEL_POD_UID.to_string(), self.uid.clone())].into(),
            ..Default::default()
        };
        let Ok(list) =
            cri.runtime.list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(filter) }).await
        else {
            return;
        };
        for sb in list.into_inner().items {
            if sb.state == cri::PodSandboxState::SandboxReady as i32 && self.sandbox.is_none() {
                self.sandbox = Some(sb.id.clone());
                self.sandbox_attempt = sb.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                if let Ok(st) = cri
                    .runtime
                    .pod_sandbox_status(cri::PodSandboxStatusRequest {
                        pod_sandbox_id: sb.id.clone(),
                        verbose: false,
                    })
                    .await
                {
                    self.pod_ip = st
                        .into_inner()
                        .status
                        .and_then(|s| s.network)
                        .and_then(|n| n.ip.parse().ok());
                }
                let cf =
                    cri::ContainerFilter { pod_sandbox_id: sb.id.clone(), ..Default::default() };
                if let Ok(cs) = cri
                    .runtime
                    .list_containers(cri::ListContainersRequest { filter: Some(cf) })
                    .await
                {
                    for c in cs.into_inner().containers {
                        let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
                        let t = self.tracks.entry(name).or_default();
                        let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                        if t.id.is_none() || attempt >= t.restarts {
                            t.id = Some(c.id);
                            t.restarts = attempt;
                        }
                    }
                }
            } else {
                let _ = cri
                    .runtime
                    .stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sb.id.clone() })
                    .await;
                let _ = cri
                    .runtime
                    .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sb.id })
                    .await;
            }
        }
    }

    /// A pod the API says ran here but whose sandbox is gone (the node or its runtime
    /// restarted): its containers count a restart, and their last state says the run ended
    /// in an unknown way, as the kubelet reports after a reboot.
    fn carry_over(&mut self, pod: &Value) {
        for cs in pod["status"]["containerStatuses"].as_array().into_iter().flatten() {
            let Some(name) = cs["name"].as_str() else { continue };
            let count = cs["restartCount"].as_u64().unwrap_or(0) as u32;
            let was_running = !cs["state"]["running"].is_null();
            let t = self.tracks.entry(name.to_owned()).or_default();
            t.restarts = count + u32::from(was_running);
            if was_running {
                t.last_terminated = Some(json!({
                    "exitCode": 255,
                    "reason": "Unknown",
                    "startedAt": cs["state"]["running"]["startedAt"].clone(),
                    "finishedAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "containerID": cs["containerID"].clone(),
                }));
            } else if !cs["lastState"]["terminated"].is_null() {
                t.last_terminated = Some(cs["lastState"]["terminated"].clone());
            }
        }
    }

    async fn event_once(&mut self, pod: &Value, kind: &str, reason: &str, message: &str) {
        let key = format!("{reason}:{message}");
        if self.events.insert(key) {
            self.shared.api.event(&self.shared.node, pod, kind, reason, message).await;
        }
    }

    async fn event(&self, pod: &Value, kind: &str, reason: &str, message: &str) {
        self.shared.api.event(&self.shared.node, pod, kind, reason, message).await;
    }

    /// The runtime handler for the pod's RuntimeClass.
    async fn handler(&self, pod: &Value) -> Result<String, String> {
        let class = str_of(pod, &["spec", "runtimeClassName"]);
        if class.is_empty() {
            return Ok(self.shared.default_handler.clone());
        }
        let r = self
            .shared
            .api
            .get(&format!("/apis/node.k8s.io/v1/runtimeclasses/{class}"))
            .await
            .map_err(|e| e.to_string())?;
        if r.status == 404 {
            return Err(format!("RuntimeClass \"{class}\" not found"));
        }
        let handler = r.json()["handler"].as_str().unwrap_or("").to_string();
        if !self.shared.handlers.contains(&handler) {
            return Err(format!(
                "RuntimeClass \"{class}\" names handler {handler:?}, which this node does not run"
            ));
        }
        Ok(handler)
    }

    async fn ensure_sandbox(&mut self, pod: &Value) -> Result<(), ()> {
        let mut cri = self.shared.cri.clone();
        if let Some(id) = &self.sandbox {
            let st = cri
                .runtime
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await;
            let ready = st
                .ok()
                .and_then(|s| s.into_inner().status)
                .is_some_and(|s| s.state == cri::PodSandboxState::SandboxReady as i32);
            if ready {
                return Ok(());
            }
            // The sandbox died: everything in it died too.
            let _ = cri
                .runtime
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.clone() })
                .await;
            self.sandbox = None;
            self.sandbox_attempt += 1;
            for t in self.tracks.values_mut() {
                if t.id.take().is_some() && !t.done {
                    t.restarts += 1;
                }
            }
            self.event(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
            .await;
        }
        let handler = match self.handler(pod).await {
            Ok(h) => h,
            Err(e) => {
                self.sandbox_error = Some(("CreatePodSandboxError".into(), e.clone()));
                self.event_once(pod, "Warning", "FailedCreatePodSandBox", &e).await;
                return Err(());
            }
        };
        let ns = str_of(pod, &["metadata", "namespace"]).to_string();
        let name = str_of(pod, &["metadata", "name"]).to_string();
        let labels: HashMap<String, String> = [
            (LABEL_POD_UID.to_string(), self.uid.clone()),
            (LABEL_POD_NAME.to_string(), name.clone()),
            (LABEL_POD_NAMESPACE.to_string(), ns.clone()),
        ]
        .into();
        let memory: i64 = pod["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        c["resources"]["limits"]["memory"].as_str().and_then(quantity::value)
                    })
                    .sum()
            })
            .unwrap_or(0);
        // A CPU limit for the sandbox when every container has one (as the kubelet's pod
        // cgroup), quantities as millicores of a 100 ms period.
        let cpu_limits: Option<Vec<i64>> = pod["spec"]["containers"].as_array().map(|cs| {
            cs.iter()
                .map(|c| c["resources"]["limits"]["cpu"].as_str().and_then(quantity::milli))
                .collect::<Option<Vec<i64>>>()
                .unwrap_or_default()
        });
        let cpu_quota = match cpu_limits {
            Some(ms) if !ms.is_empty() => ms.iter().sum::<i64>() * CPU_PERIOD_US / 1000,
            _ => 0,
        };
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.clone(),
                uid: self.uid.clone(),
                namespace: ns.clone(),
                attempt: self.sandbox_attempt,
            }),
            hostname: pod["spec"]["hostname"].as_str().unwrap_or(&name).to_string(),
            log_directory: self
                .shared
                .log_dir
                .join(format!("{ns}_{name}_{}", self.uid))
                .to_string_lossy()
                .into_owned(),
            labels,
            dns_config: self.dns_config(pod),
            linux: Some(cri::LinuxPodSandboxConfig {
                resources: (memory > 0 || cpu_quota > 0).then(|| cri::LinuxContainerResources {
                    memory_limit_in_bytes: memory,
                    cpu_period: CPU_PERIOD_US,
                    cpu_quota,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        match cri
            .runtime
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler,
            })
            .await
        {
            Ok(r) => {
                let id = r.into_inner().pod_sandbox_id;
                if let Ok(st) = cri
                    .runtime
                    .pod_sandbox_status(cri::PodSandboxStatusRequest {
                        pod_sandbox_id: id.clone(),
                        verbose: false,
                    })
                    .await
                {
                    self.pod_ip = st
                        .into_inner()
                        .status
                        .and_then(|s| s.network)
                        .and_then(|n| n.ip.parse().ok());
                }
                self.sandbox = Some(id);
                self.sandbox_error = None;
                Ok(())
            }
            Err(e) => {
                let msg = format!("Failed to create pod sandbox: {}", e.message());
                self.sandbox_error = Some(("CreatePodSandboxError".into(), msg.clone()));
                self.event_once(pod, "Warning", "FailedCreatePodSandBox", &msg).await;
                Err(())
            }
        }
    }

    /// Pulls the image as the container's pull policy asks.
    async fn ensure_image(&mut self, pod: &Value, c: &Value) -> Result<(), (String, String)> {
        let image = c["image"].as_str().unwrap_or("");
        let mut cri = self.shared.cri.clone();
        let spec = cri::ImageSpec { image: image.into(), ..Default::default() };
        let tag_latest =
            !image.contains('@') && !image.rsplit('/').next().unwrap_or("").contains(':');
        let policy = c["imagePullPolicy"].as_str().unwrap_or(if tag_latest {
            "Always"
        } else {
            "IfNotPresent"
        });
        let present = cri
            .images
            .image_status(cri::ImageStatusRequest { image: Some(spec.clone()), verbose: false })
            .await
            .ok()
            .and_then(|r| r.into_inner().image)
            .is_some();
        match policy {
            "Never" if !present => {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                self.event_once(pod, "Warning", "ErrImageNeverPull", &msg).await;
                return Err(("ErrImageNeverPull".into(), msg));
            }
            "IfNotPresent" | "Never" if present => return Ok(()),
            _ => {}
        }
        // A locally imported image (no registry) satisfies Always as well, as long as it is
        // present; only a missing one must come from its registry.
        self.event_once(pod, "Normal", "Pulling", &format!("Pulling image \"{image}\"")).await;
        match cri
            .images
            .pull_image(cri::PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: None,
            })
            .await
        {
            Ok(_) => {
                self.event_once(
                    pod,
                    "Normal",
                    "Pulled",
                    &format!("Successfully pulled image \"{image}\""),
                )
                .await;
                Ok(())
            }
            Err(_) if present => Ok(()),
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {}", e.message());
                self.event_once(pod, "Warning", "Failed", &msg).await;
                Err(("ErrImagePull".into(), msg))
            }
        }
    }

    async fn start_container(&mut self, pod: &Value, c: &Value) {
        let name = c["name"].as_str().unwrap_or("").to_string();
        if let Err((reason, msg)) = self.ensure_image(pod, c).await {
            let t = self.tracks.entry(name).or_default();
            t.waiting = Some((reason, msg));
            t.retry_at = Some(Instant::now() + BACKOFF_START);
            return;
        }
        let Some(sandbox) = self.sandbox.clone() else { return };
        let restarts = self.tracks.get(&name).map(|t| t.restarts).unwrap_or(0);
        let ns = str_of(pod, &["metadata", "namespace"]);
        let pod_name = str_of(pod, &["metadata", "name"]);
        let facts =
            env::PodFacts { pod, pod_ip: self.pod_ip, host_ip: self.shared.address.as_str() };
        let vars = match env::build(&self.shared.api, &facts, c).await {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("Error: {e}");
                self.event_once(pod, "Warning", "Failed", &msg).await;
                let t = self.tracks.entry(name).or_default();
                t.waiting = Some(("CreateContainerConfigError".into(), e));
                t.retry_at = Some(Instant::now() + BACKOFF_START);
                return;
            }
        };
        let var_map: HashMap<String, String> = vars.iter().cloned().collect();
        let envs: Vec<cri::KeyValue> =
            vars.into_iter().map(|(key, value)| cri::KeyValue { key, value }).collect();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter().filter_map(|s| s.as_str().map(|s| env::expand(s, &var_map))).collect()
                })
                .unwrap_or_default()
        };
        let sc = &c["securityContext"];
        let no_volumes = HashMap::new();
        let mounts = match volumes::mounts(pod, c, self.volumes.as_ref().unwrap_or(&no_volumes)) {
            Ok(m) => m,
            Err(e) => {
                let msg = format!("Error: {e}");
                self.event_once(pod, "Warning", "Failed", &msg).await;
                let t = self.tracks.entry(name).or_default();
                t.waiting = Some(("CreateContainerConfigError".into(), e.to_string()));
                t.retry_at = Some(Instant::now() + BACKOFF_START);
                return;
            }
        };
        let config = cri::ContainerConfig {
            mounts,
            stdin: c["stdin"].as_bool().unwrap_or(false),
            stdin_once: c["stdinOnce"].as_bool().unwrap_or(false),
            tty: c["tty"].as_bool().unwrap_or(false),
            metadata: Some(cri::ContainerMetadata { name: name.clone(), attempt: restarts }),
            image: Some(cri::ImageSpec {
                image: c["image"].as_str().unwrap_or("").into(),
                ..Default::default()
            }),
            command: strings(&c["command"]),
            args: strings(&c["args"]),
            working_dir: c["workingDir"].as_str().unwrap_or("").into(),
            envs,
            labels: [
                (LABEL_POD_UID.to_string(), self.uid.clone()),
                (LABEL_POD_NAME.to_string(), pod_name.to_string()),
                (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
                (LABEL_CONTAINER.to_string(), name.clone()),
            ]
            .into(),
            log_path: format!("{name}/{restarts}.log"),
            linux: Some(cri::LinuxContainerConfig {
                security_context: Some(cri::LinuxContainerSecurityContext {
                    run_as_user: sc["runAsUser"].as_i64().map(|v| cri::Int64Value { value: v }),
                    run_as_group: sc["runAsGroup"].as_i64().map(|v| cri::Int64Value { value: v }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut cri = self.shared.cri.clone();
        let sandbox_config = None;
        let created = cri
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox,
                config: Some(config),
                sandbox_config,
            })
            .await;
        let id = match created {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let msg = format!("Error: {}", e.message());
                self.event_once(pod, "Warning", "Failed", &msg).await;
                let t = self.tracks.entry(name).or_default();
                t.waiting = Some(("CreateContainerError".into(), e.message().to_string()));
                t.retry_at = Some(Instant::now() + BACKOFF_START);
                return;
            }
        };
        self.event(pod, "Normal", "Created", &format!("Created container {name}")).await;
        if let Err(e) = cri
            .runtime
            .start_container(cri::StartContainerRequest { container_id: id.clone() })
            .await
        {
            let msg = format!("Error: failed to start container \"{name}\": {}", e.message());
            self.event_once(pod, "Warning", "Failed", &msg).await;
            let _ = cri
                .runtime
                .remove_container(cri::RemoveContainerRequest { container_id: id })
                .await;
            let t = self.tracks.entry(name).or_default();
            t.waiting = Some(("RunContainerError".into(), e.message().to_string()));
            t.backoff = (t.backoff * 2).clamp(BACKOFF_START, BACKOFF_MAX);
            t.retry_at = Some(Instant::now() + t.backoff);
            t.restarts += 1;
            return;
        }
        self.event(pod, "Normal", "Started", &format!("Started container {name}")).await;
        let t = self.tracks.entry(name).or_default();
        t.id = Some(id);
        t.waiting = None;
        t.started = Some(Instant::now());
        t.startup =
            (!c["startupProbe"].is_null()).then(|| ProbeState::new(&c["startupProbe"], false));
        t.liveness =
            (!c["livenessProbe"].is_null()).then(|| ProbeState::new(&c["livenessProbe"], true));
        t.readiness =
            (!c["readinessProbe"].is_null()).then(|| ProbeState::new(&c["readinessProbe"], false));
    }

    /// The pod's resolver configuration, per its dnsPolicy (ClusterFirst unless told).
    fn dns_config(&self, pod: &Value) -> Option<cri::DnsConfig> {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        let custom = &pod["spec"]["dnsConfig"];
        let (mut servers, mut searches, mut options) = match pod["spec"]["dnsPolicy"].as_str() {
            Some("None") | Some("Default") => (Vec::new(), Vec::new(), Vec::new()),
            _ => match self.shared.dns_server {
                Some(server) => {
                    super::dns::resolv_conf(str_of(pod, &["metadata", "namespace"]), server)
                }
                None => (Vec::new(), Vec::new(), Vec::new()),
            },
        };
        servers.extend(strings(&custom["nameservers"]));
        searches.extend(strings(&custom["searches"]));
        for o in custom["options"].as_array().into_iter().flatten() {
            let Some(name) = o["name"].as_str() else { continue };
            options.retain(|x| x.split(':').next() != Some(name));
            options.push(match o["value"].as_str() {
                Some(v) => format!("{name}:{v}"),
                None => name.to_owned(),
            });
        }
        (!servers.is_empty() || !searches.is_empty()).then_some(cri::DnsConfig {
            servers,
            searches,
            options,
        })
    }

    /// Handles a container whose process ended: restart per policy, with back-off.
    fn on_exit(&mut self, name: &str, status: &cri::ContainerStatus, policy: &str) {
        let t = self.tracks.entry(name.to_string()).or_default();
        let terminated = json!({
            "exitCode": status.exit_code,
            "reason": if status.reason.is_empty() { if status.exit_code == 0 { "Completed" } else { "Error" } } else { status.reason.as_str() },
            "startedAt": ns_to_rfc3339(status.started_at),
            "finishedAt": ns_to_rfc3339(status.finished_at),
            "containerID": format!("ringfence://{}", status.id),
        });
        t.last_terminated = Some(terminated);
        t.id = None;
        t.startup = None;
        t.liveness = None;
        t.readiness = None;
        let restart = match policy {
            "Never" => false,
            "OnFailure" => status.exit_code != 0,
            _ => true,
        };
        if !restart {
            t.done = true;
            return;
        }
        if t.started.is_some_and(|s| s.elapsed() > BACKOFF_RESET) {
            t.backoff = Duration::ZERO;
        }
        // The first restart is immediate; then 10 s, 20 s, ... up to 5 minutes.
        t.retry_at = (!t.backoff.is_zero()).then(|| Instant::now() + t.backoff);
        t.backoff =
            if t.backoff.is_zero() { BACKOFF_START } else { (t.backoff * 2).min(BACKOFF_MAX) };
        t.restarts += 1;
    }

    /// Makes the pod's volumes exist on the host, once; false (with an Event) while they can't.
    async fn ensure_volumes(&mut self, pod: &Value) -> bool {
        if self.volumes.is_some() {
            return true;
        }
        match volumes::prepare(&self.shared.api, pod, &self.pod_dir()).await {
            Ok(v) => {
                self.volumes = Some(v);
                true
            }
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                self.event_once(pod, "Warning", "FailedMount", &msg).await;
                self.sandbox_error = Some(("ContainerCreating".into(), msg));
                false
            }
        }
    }

    /// Where this pod's volumes live on the host.
    fn pod_dir(&self) -> std::path::PathBuf {
        self.shared.root_dir.join("pods").join(&self.uid).join("volumes")
    }

    async fn sync(&mut self, pod: &Value) -> Result<(), String> {
        let policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_string();
        if self.ensure_sandbox(pod).await.is_ok() && self.ensure_volumes(pod).await {
            let init: Vec<Value> =
                pod["spec"]["initContainers"].as_array().cloned().unwrap_or_default();
            let main: Vec<Value> =
                pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
            // Init containers, one at a time, each to completion.
            while self.init_index < init.len() {
                let c = &init[self.init_index];
                let name = c["name"].as_str().unwrap_or("").to_string();
                match self.observe(&name).await {
                    Some(st) if st.state == cri::ContainerState::ContainerExited as i32 => {
                        let ok = st.exit_code == 0;
                        // A successful init container is done; a failed one is retried
                        // unless the pod never restarts anything.
                        let again = if ok || policy == "Never" { "Never" } else { "OnFailure" };
                        self.on_exit(&name, &st, again);
                        if ok {
                            self.init_index += 1;
                            continue;
                        }
                        break;
                    }
                    Some(_) => break,
                    None => {
                        if self.due(&name) {
                            self.start_container(pod, c).await;
                        }
                        break;
                    }
                }
            }
            if self.init_index >= init.len() {
                for c in &main {
                    let name = c["name"].as_str().unwrap_or("").to_string();
                    match self.observe(&name).await {
                        Some(st) if st.state == cri::ContainerState::ContainerExited as i32 => {
                            self.on_exit(&name, &st, &policy);
                            let mut cri = self.shared.cri.clone();
                            let _ = cri
                                .runtime
                                .remove_container(cri::RemoveContainerRequest {
                                    container_id: st.id.clone(),
                                })
                                .await;
                            if self.due(&name) {
                                self.start_container(pod, c).await;
                            }
                        }
                        Some(_) => self.probe(pod, c, &name).await,
                        None => {
                            if self.due(&name) {
                                self.start_container(pod, c).await;
                            }
                        }
                    }
                }
            }
        }
        self.report(pod).await
    }

    /// Whether container `name` should be (re)started now.
    fn due(&self, name: &str) -> bool {
        match self.tracks.get(name) {
            None => true,
            Some(t) => !t.done && t.id.is_none() && t.retry_at.is_none_or(|r| Instant::now() >= r),
        }
    }

    /// The runtime's status of container `name`, if it has a current container.
    async fn observe(&mut self, name: &str) -> Option<cri::ContainerStatus> {
        let id = self.tracks.get(name)?.id.clone()?;
        let mut cri = self.shared.cri.clone();
        match cri
            .runtime
            .container_status(cri::ContainerStatusRequest { container_id: id, verbose: false })
            .await
        {
            Ok(r) => r.into_inner().status,
            Err(_) => {
                if let Some(t) = self.tracks.get_mut(name) {
                    t.id = None;
                }
                None
            }
        }
    }

    async fn probe(&mut self, pod: &Value, c: &Value, name: &str) {
        let Some(t) = self.tracks.get(name) else { return };
        let Some(id) = t.id.clone() else { return };
        let (startup, liveness) = (t.startup.clone(), t.liveness.clone());
        let mut cri = self.shared.cri.clone();
        let ip = self.pod_ip;
        if let Some(mut st) = startup.filter(|st| !st.ok) {
            probe::tick(&mut st, &c["startupProbe"], c, ip, &mut cri, &id).await;
            let failed = !st.ok && st.failures >= probe::failure_threshold(&c["startupProbe"]);
            let msg = st.last_message.clone();
            let passed = st.ok;
            if let Some(t) = self.tracks.get_mut(name) {
                t.startup = Some(st);
            }
            if failed {
                self.kill_unhealthy(pod, name, &id, "Startup", &msg).await;
            }
            if !passed {
                return;
            }
        }
        if let Some(mut st) = liveness {
            probe::tick(&mut st, &c["livenessProbe"], c, ip, &mut cri, &id).await;
            let failed = !st.ok;
            let msg = st.last_message.clone();
            if let Some(t) = self.tracks.get_mut(name) {
                t.liveness = Some(st);
            }
            if failed {
                self.kill_unhealthy(pod, name, &id, "Liveness", &msg).await;
                return;
            }
        }
        if let Some(t) = self.tracks.get(name)
            && let Some(mut st) = t.readiness.clone()
        {
            let changed = probe::tick(&mut st, &c["readinessProbe"], c, ip, &mut cri, &id).await;
            if changed && !st.ok {
                self.event(
                    pod,
                    "Warning",
                    "Unhealthy",
                    &format!("Readiness probe failed: {}", st.last_message),
                )
                .await;
            }
            if let Some(t) = self.tracks.get_mut(name) {
                t.readiness = Some(st);
            }
        }
    }

    /// Restarts a container whose liveness or startup probe failed, as the kubelet does.
    async fn kill_unhealthy(&mut self, pod: &Value, name: &str, id: &str, probe: &str, msg: &str) {
        self.event(pod, "Warning", "Unhealthy", &format!("{probe} probe failed: {msg}")).await;
        self.event(
            pod,
            "Normal",
            "Killing",
            &format!("Container {name} failed {} probe, will be restarted", probe.to_lowercase()),
        )
        .await;
        let grace = pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
        let _ = self
            .shared
            .cri
            .clone()
            .runtime
            .stop_container(cri::StopContainerRequest { container_id: id.into(), timeout: grace })
            .await;
    }

    fn container_status(&self, c: &Value, live: Option<&cri::ContainerStatus>) -> Value {
        let name = c["name"].as_str().unwrap_or("");
        let t = self.tracks.get(name);
        let restarts = t.map(|t| t.restarts).unwrap_or(0);
        let (state, ready, started, cid) = match live {
            Some(s) if s.state == cri::ContainerState::ContainerRunning as i32 => {
                let started = t.and_then(|t| t.startup.as_ref()).is_none_or(|p| p.ok);
                let ready = started && t.and_then(|t| t.readiness.as_ref()).is_none_or(|r| r.ok);
                (
                    json!({"running": {"startedAt": ns_to_rfc3339(s.started_at)}}),
                    ready,
                    started,
                    Some(s.id.clone()),
                )
            }
            _ => match t {
                Some(t) if t.done => (
                    json!({"terminated": t.last_terminated.clone().unwrap_or(json!({}))}),
                    false,
                    false,
                    None,
                ),
                Some(t) => {
                    let (reason, message) = match &t.waiting {
                        Some(w) => w.clone(),
                        None if t.retry_at.is_some_and(|r| Instant::now() < r) => (
                            "CrashLoopBackOff".into(),
                            format!("back-off restarting failed container {name}"),
                        ),
                        None => ("ContainerCreating".into(), String::new()),
                    };
                    (json!({"waiting": {"reason": reason, "message": message}}), false, false, None)
                }
                None => {
                    let (reason, message) = self
                        .sandbox_error
                        .clone()
                        .unwrap_or(("ContainerCreating".into(), String::new()));
                    (json!({"waiting": {"reason": reason, "message": message}}), false, false, None)
                }
            },
        };
        let mut v = json!({
            "name": name,
            "state": state,
            "lastState": t.and_then(|t| t.last_terminated.clone()).map(|l| json!({"terminated": l})).unwrap_or(json!({})),
            "ready": ready,
            "restartCount": restarts,
            "image": c["image"].clone(),
            "imageID": "",
            "started": started,
        });
        if let Some(id) = cid {
            v["containerID"] = json!(format!("ringfence://{id}"));
        }
        v
    }

    async fn report(&mut self, pod: &Value) -> Result<(), String> {
        let mut cri = self.shared.cri.clone();
        let mut live: HashMap<String, cri::ContainerStatus> = HashMap::new();
        for (name, t) in &self.tracks {
            if let Some(id) = &t.id
                && let Ok(r) = cri
                    .runtime
                    .container_status(cri::ContainerStatusRequest {
                        container_id: id.clone(),
                        verbose: false,
                    })
                    .await
                && let Some(s) = r.into_inner().status
            {
                live.insert(name.clone(), s);
            }
        }
        let spec_of = |key: &str| pod["spec"][key].as_array().cloned().unwrap_or_default();
        let statuses: Vec<Value> = spec_of("containers")
            .iter()
            .map(|c| self.container_status(c, live.get(c["name"].as_str().unwrap_or(""))))
            .collect();
        let init_statuses: Vec<Value> = spec_of("initContainers")
            .iter()
            .map(|c| self.container_status(c, live.get(c["name"].as_str().unwrap_or(""))))
            .collect();
        let running = statuses.iter().any(|s| !s["state"]["running"].is_null());
        let all_done =
            !statuses.is_empty() && statuses.iter().all(|s| !s["state"]["terminated"].is_null());
        let phase = if all_done {
            if statuses.iter().all(|s| s["state"]["terminated"]["exitCode"] == 0) {
                "Succeeded"
            } else {
                "Failed"
            }
        } else if running || statuses.iter().any(|s| s["restartCount"].as_u64().unwrap_or(0) > 0) {
            "Running"
        } else {
            "Pending"
        };
        let all_ready = !statuses.is_empty() && statuses.iter().all(|s| s["ready"] == true);
        let init_done = self.init_index >= init_statuses.len();
        let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
        let mut status = json!({
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", self.sandbox.is_some()),
                cond("Initialized", init_done),
                cond("Ready", all_ready),
                cond("ContainersReady", all_ready),
                cond("PodScheduled", true),
            ],
            "hostIP": self.shared.address,
            "hostIPs": [{"ip": self.shared.address}],
            "startTime": self.start_time,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if let Some(ip) = self.pod_ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        // Compare without the timestamps that change on every sync.
        let mut comparable = status.clone();
        if let Some(cs) = comparable["conditions"].as_array_mut() {
            for c in cs {
                c["lastTransitionTime"] = Value::Null;
            }
        }
        if comparable == self.last_status {
            return Ok(());
        }
        let ns = str_of(pod, &["metadata", "namespace"]);
        let name = str_of(pod, &["metadata", "name"]);
        let r = self
            .shared
            .api
            .merge_patch(
                &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
                &json!({"status": status}),
            )
            .await
            .map_err(|e| e.to_string())?;
        if r.status >= 300 && r.status != 404 {
            return Err(format!(
                "status update answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        self.last_status = comparable;
        Ok(())
    }

    /// Runs the preStop hooks of the running containers, all at once, within `grace`.
    async fn pre_stop(&self, pod: &Value, grace: Duration) {
        let containers = pod["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let hooks = containers.iter().filter_map(|c| {
            let hook = c["lifecycle"]["preStop"].clone();
            let name = c["name"].as_str()?;
            let id = self.tracks.get(name)?.id.clone()?;
            (!hook.is_null()).then_some((c.clone(), hook, id))
        });
        let runs = hooks.map(|(c, hook, id)| {
            let mut cri = self.shared.cri.clone();
            let ip = self.pod_ip;
            async move {
                if let Err(e) = probe::run_hook(&hook, &c, ip, &mut cri, &id, grace).await {
                    tracing::info!(container = c["name"].as_str(), "preStop hook failed: {e}");
                }
            }
        });
        let _ = tokio::time::timeout(grace, futures_util::future::join_all(runs)).await;
    }

    /// Stops everything of the pod in the runtime, giving containers `grace` to exit.
    async fn teardown(&mut self, grace: Duration) {
        let mut cri = self.shared.cri.clone();
        for t in self.tracks.values_mut() {
            if let Some(id) = t.id.take() {
                let _ = cri
                    .runtime
                    .stop_container(cri::StopContainerRequest {
                        container_id: id,
                        timeout: grace.as_secs() as i64,
                    })
                    .await;
            }
        }
        if let Some(id) = self.sandbox.take() {
            let _ = cri
                .runtime
                .stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.clone() })
                .await;
            let _ = cri
                .runtime
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await;
        }
        // emptyDirs, ConfigMap and Secret copies go with the pod (hostPath data stays).
        let dir = self.shared.root_dir.join("pods").join(&self.uid);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("removing {}: {e}", dir.display());
        }
        self.volumes = None;
    }

    /// Completes a graceful deletion: the API removes the pod once its node says so.
    async fn finish_deletion(&self, pod: &Value) {
        let ns = str_of(pod, &["metadata", "namespace"]);
        let name = str_of(pod, &["metadata", "name"]);
        let body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}});
        if let Err(e) = self
            .shared
            .api
            .send("DELETE", &format!("/api/v1/namespaces/{ns}/pods/{name}"), &body)
            .await
        {
            tracing::warn!("completing the deletion of {ns}/{name}: {e}");
        }
    }
}
