//! The runtime engine behind the CRI services: pod sandboxes, containers and their states.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;

use super::cgroup::{CpuLimit, SandboxCgroup};
use super::handler::{
    ContainerSpec, FileSpec, MountSpec, ProcessExit, ProcessSpec, RootfsPolicy, RunningSandbox,
    SandboxHandler, SandboxSetup, TerminalSize,
};
use super::host_ports::{self, HostPorts};
use super::image_source::ImageSource;
use super::network::{PodNet, PodNetwork};
use super::pid_namespace::{self, PidNamespace};
use super::{CriError, identity, logs, new_id, now_ns, pod_options, security, terminal};

pub struct SandboxRecord {
    pub id: String,
    pub config: cri::PodSandboxConfig,
    pub handler: String,
    pub created_at: i64,
    pub ready: bool,
    pub net: Option<PodNet>,
    pub running: Option<Arc<dyn RunningSandbox>>,
    /// The sandbox's CPU limit, if it has one.
    pub cgroup: Option<SandboxCgroup>,
    /// Listeners of its host ports (closed when dropped).
    pub host_ports: Option<HostPorts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub config: cri::ContainerConfig,
    pub image_id: String,
    pub rootfs: PathBuf,
    pub process: ProcessSpec,
    pub rootfs_policy: RootfsPolicy,
    pub pid_namespace: PidNamespace,
    pub log_path: PathBuf,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: Option<i32>,
    /// What `kubectl attach` connects to while the container runs.
    pub attach: Option<Arc<Attachable>>,
    /// The open log file its output goes to (replaced by ReopenContainerLog).
    pub log: Option<logs::LogFile>,
}

/// The one key of `ids` that is `id` or starts with it.
fn full_id<'a>(
    ids: impl Iterator<Item = &'a String>,
    id: &str,
    what: &str,
) -> Result<String, CriError> {
    if id.is_empty() {
        return Err(CriError::Invalid(format!("no {what} id given")));
    }
    let mut found: Option<&String> = None;
    for candidate in ids {
        if candidate == id {
            return Ok(id.to_string());
        }
        if candidate.starts_with(id) {
            if found.is_some() {
                return Err(CriError::Invalid(format!(
                    "{what} id prefix {id:?} is ambiguous: give more of it"
                )));
            }
            found = Some(candidate);
        }
    }
    found.cloned().ok_or_else(|| CriError::NotFound(format!("{what} {id} not found")))
}

/// A running container's output and (when its config asks for stdin) its input.
pub struct Attachable {
    /// Taken when the container exits, which ends every attached session.
    pub output: Mutex<Option<logs::Tap>>,
    pub stdin: Mutex<Option<std::fs::File>>,
    /// Close stdin once the first attached client detaches.
    pub stdin_once: bool,
    pub tty: bool,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, SandboxRecord>,
    containers: HashMap<String, ContainerRecord>,
}

pub struct CriRuntime {
    dir: PathBuf,
    network: Option<PodNetwork>,
    pub images: Arc<dyn ImageSource>,
    handlers: Vec<Arc<dyn SandboxHandler>>,
    state: Mutex<State>,
}

/// A pipe: (read end, write end).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

fn matches_labels(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl CriRuntime {
    pub fn new(
        dir: &Path,
        network: Option<PodNetwork>,
        images: Arc<dyn ImageSource>,
        handlers: Vec<Arc<dyn SandboxHandler>>,
    ) -> Arc<CriRuntime> {
        // Sandboxes of an earlier run of this runtime are gone for the node agent, which will
        // make new ones: take down what they left, their networks first (CNI DEL).
        let detached = network.as_ref().map_or(0, PodNetwork::sweep);
        if detached > 0 {
            tracing::info!("detached {detached} pod network(s) an earlier run left behind");
        }
        let swept = super::leftovers::sweep(&dir.join("sandboxes"));
        if swept > 0 {
            tracing::info!("removed {swept} sandbox(es) an earlier run left behind");
        }
        Arc::new(CriRuntime {
            dir: dir.to_owned(),
            network,
            images,
            handlers,
            state: Mutex::new(State::default()),
        })
    }

    /// The node's pod range as its agent knows it (CRI UpdateRuntimeConfig).
    pub fn update_pod_cidr(&self, cidr: &str) -> Result<(), CriError> {
        match &self.network {
            Some(network) if !cidr.is_empty() => network.set_pod_cidr(cidr),
            _ => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handler_names(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.name()).collect()
    }

    fn running(&self, sandbox_id: &str) -> Result<Arc<dyn RunningSandbox>, CriError> {
        let st = self.lock();
        let sb = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| CriError::NotFound(format!("pod sandbox {sandbox_id} not found")))?;
        sb.running
            .clone()
            .filter(|_| sb.ready)
            .ok_or_else(|| CriError::Invalid(format!("pod sandbox {sandbox_id} is not ready")))
    }

    // ---- pod sandboxes -----------------------------------------------------------------------

    pub fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        handler: &str,
    ) -> Result<String, CriError> {
        let handler_name = if handler.is_empty() { "sentry" } else { handler };
        let handler =
            self.handlers.iter().find(|h| h.name() == handler_name).cloned().ok_or_else(|| {
                CriError::Invalid(format!(
                    "no runtime handler {handler_name:?} (have: {})",
                    self.handler_names().join(", ")
                ))
            })?;
        pod_options::check_namespaces(&config)?;
        let sysctls = pod_options::sysctls(&config)?;
        let ports = host_ports::mappings(&config)?;
        let id = new_id();
        let net = match &self.network {
            Some(n) => Some(n.setup(&id, &config)?),
            None => None,
        };
        // A handler with a kernel of its own sets the network ones there; otherwise they go
        // in the pod's network namespace on the node.
        let (in_sandbox, on_node) = if handler.sets_sysctls() {
            (sysctls.network, Vec::new())
        } else {
            (Vec::new(), sysctls.network)
        };
        if net.is_none() && !(on_node.is_empty() && ports.is_empty()) {
            return Err(CriError::Invalid(
                "sysctls and host ports need a pod network; this runtime has none".into(),
            ));
        }
        if let Some(pn) = &net
            && let Err(e) = pod_options::apply(&pn.netns, &on_node)
        {
            if let Some(n) = &self.network {
                n.teardown(pn);
            }
            return Err(e);
        }
        let memory_limit_mib = config
            .linux
            .as_ref()
            .and_then(|l| l.resources.as_ref())
            .map(|r| r.memory_limit_in_bytes.max(0) as u64 >> 20)
            .filter(|m| *m > 0);
        let dir = self.dir.join("sandboxes").join(&id);
        let hostname = if config.hostname.is_empty() {
            config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_else(|| "sandbox".into())
        } else {
            config.hostname.clone()
        };
        let resources = config.linux.as_ref().and_then(|l| l.resources.as_ref());
        let cpu = resources.and_then(|r| CpuLimit::from_cri(r.cpu_quota, r.cpu_period));
        let setup = SandboxSetup {
            id: &id,
            dir: &dir,
            hostname: &hostname,
            network: net.as_ref(),
            memory_limit_mib,
            cpu,
            sysctls: &in_sandbox,
            ipc_sysctls: &sysctls.ipc,
        };
        // Recorded before anything starts, so that a runtime dying meanwhile leaves nothing
        // its successor cannot find.
        let rec = super::leftovers::SandboxRecord { netns: net.as_ref().map(|n| n.netns.clone()) };
        let recorded =
            std::fs::create_dir_all(&dir).and_then(|()| super::leftovers::record(&dir, &rec));
        let started = recorded
            .map_err(CriError::from)
            .and_then(|()| handler.start(&setup))
            .and_then(|running| {
                let cgroup = match (cpu, running.pid()) {
                    (Some(limit), Some(pid)) => match SandboxCgroup::create(&id, limit, pid) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            running.stop();
                            return Err(e);
                        }
                    },
                    _ => None,
                };
                Ok((running, cgroup))
            });
        let started = started.and_then(|(running, cgroup)| {
            let opened = match &net {
                Some(pn) if !pn.host_ports_by_plugin => host_ports::open(&ports, pn.ip),
                _ => Ok(HostPorts::default()),
            };
            match opened {
                Ok(p) => Ok((running, cgroup, p)),
                Err(e) => {
                    running.stop();
                    Err(e)
                }
            }
        });
        let (running, cgroup, host_ports) = match started {
            Ok(r) => r,
            Err(e) => {
                if let (Some(n), Some(pn)) = (&self.network, &net) {
                    n.teardown(pn);
                }
                super::leftovers::remove_dir(&dir);
                return Err(e);
            }
        };
        tracing::info!(sandbox = %id, pod = ?config.metadata.as_ref().map(|m| &m.name), ip = ?net.as_ref().map(|n| n.ip), "pod sandbox ready");
        self.lock().sandboxes.insert(
            id.clone(),
            SandboxRecord {
                id: id.clone(),
                config,
                handler: handler_name.into(),
                created_at: now_ns(),
                ready: true,
                net,
                running: Some(Arc::from(running)),
                cgroup,
                host_ports: Some(host_ports),
            },
        );
        Ok(id)
    }

    pub fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let (running, net, cgroup) = {
            let mut st = self.lock();
            let Some(sb) = st.sandboxes.get_mut(id) else {
                // Stopping what is gone is not an error (CRI semantics).
                return Ok(());
            };
            sb.ready = false;
            sb.host_ports = None;
            (sb.running.take(), sb.net.take(), sb.cgroup.take())
        };
        if let Some(r) = running {
            r.stop();
        }
        drop(cgroup);
        if let (Some(n), Some(pn)) = (&self.network, net) {
            n.teardown(&pn);
        }
        let now = now_ns();
        let mut st = self.lock();
        for c in st
            .containers
            .values_mut()
            .filter(|c| c.sandbox_id == id && c.state == ContainerState::Running)
        {
            c.state = ContainerState::Exited;
            c.exit_code = 137;
            c.finished_at = now;
            c.reason = "Error".into();
        }
        Ok(())
    }

    pub fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        self.stop_pod_sandbox(id)?;
        let mut st = self.lock();
        st.containers.retain(|_, c| c.sandbox_id != id);
        st.sandboxes.remove(id);
        drop(st);
        super::leftovers::remove_dir(&self.dir.join("sandboxes").join(id));
        Ok(())
    }

    pub fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let mut st = self.lock();
        let sb = st
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| CriError::NotFound(format!("pod sandbox {id} not found")))?;
        if sb.ready && !sb.running.as_ref().is_some_and(|r| r.alive()) {
            sb.ready = false;
        }
        Ok(cri::PodSandboxStatus {
            id: sb.id.clone(),
            metadata: sb.config.metadata.clone(),
            state: if sb.ready {
                cri::PodSandboxState::SandboxReady
            } else {
                cri::PodSandboxState::SandboxNotready
            } as i32,
            created_at: sb.created_at,
            network: sb.net.as_ref().map(|n| cri::PodSandboxNetworkStatus {
                ip: n.ip.to_string(),
                additional_ips: Vec::new(),
            }),
            linux: None,
            labels: sb.config.labels.clone(),
            annotations: sb.config.annotations.clone(),
            runtime_handler: sb.handler.clone(),
        })
    }

    /// The sandbox `id` names: itself, or the one sandbox whose id it is a prefix of (ids
    /// as users copy them from `crictl pods`).
    pub fn sandbox_id(&self, id: &str) -> Result<String, CriError> {
        full_id(self.lock().sandboxes.keys(), id, "pod sandbox")
    }

    /// The container `id` names, as [`Self::sandbox_id`] does for sandboxes.
    pub fn container_id(&self, id: &str) -> Result<String, CriError> {
        full_id(self.lock().containers.keys(), id, "container")
    }

    pub fn list_pod_sandbox(&self, filter: Option<cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let st = self.lock();
        st.sandboxes
            .values()
            .filter(|sb| match &filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || sb.id.starts_with(&f.id))
                        && f.state.as_ref().is_none_or(|s| s.state == if sb.ready { 0 } else { 1 })
                        && matches_labels(&sb.config.labels, &f.label_selector)
                }
            })
            .map(|sb| cri::PodSandbox {
                id: sb.id.clone(),
                metadata: sb.config.metadata.clone(),
                state: if sb.ready { 0 } else { 1 },
                created_at: sb.created_at,
                labels: sb.config.labels.clone(),
                annotations: sb.config.annotations.clone(),
                runtime_handler: sb.handler.clone(),
            })
            .collect()
    }

    // ---- containers --------------------------------------------------------------------------

    pub fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
    ) -> Result<String, CriError> {
        let image_name = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
        if image_name.is_empty() {
            return Err(CriError::Invalid("container config names no image".into()));
        }
        host_mounts(&config.mounts)?; // Checked now so that a bad mount is a CreateContainerError.
        let log_dir = {
            let st = self.lock();
            let sb = st
                .sandboxes
                .get(sandbox_id)
                .ok_or_else(|| CriError::NotFound(format!("pod sandbox {sandbox_id} not found")))?;
            if !sb.ready {
                return Err(CriError::Invalid(format!("pod sandbox {sandbox_id} is not ready")));
            }
            sb.config.log_directory.clone()
        };
        let image = self.images.resolve(&image_name)?;
        // Kubernetes' rules: command replaces the entrypoint, args replace the image's cmd.
        let argv: Vec<String> = match (config.command.is_empty(), config.args.is_empty()) {
            (false, _) => config.command.iter().chain(&config.args).cloned().collect(),
            (true, false) => image.entrypoint.iter().chain(&config.args).cloned().collect(),
            (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        };
        if argv.is_empty() {
            return Err(CriError::Invalid(format!(
                "no command to run: image {image_name} has no entrypoint or cmd and the container gives none"
            )));
        }
        let mut env = image.env.clone();
        for kv in &config.envs {
            env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(kv.key.as_str()));
            env.push(format!("{}={}", kv.key, kv.value));
        }
        if config.tty {
            terminal::default_term(&mut env);
        }
        let cwd = if !config.working_dir.is_empty() {
            config.working_dir.clone()
        } else if !image.working_dir.is_empty() {
            image.working_dir.clone()
        } else {
            "/".into()
        };
        let security = config.linux.as_ref().and_then(|l| l.security_context.as_ref());
        let who = identity::resolve(&image.rootfs, &image.user, security)?;
        let (process_security, rootfs_policy) = security::resolve(security)?;
        let pid_namespace = pid_namespace::resolve(security)?;
        if let PidNamespace::Target(target) = &pid_namespace {
            let st = self.lock();
            let found = st.containers.get(target).is_some_and(|c| c.sandbox_id == sandbox_id);
            if !found {
                return Err(CriError::NotFound(format!(
                    "the target of namespace_options.pid, container {target}, is not a container of pod sandbox {sandbox_id}"
                )));
            }
        }
        let log_path = if log_dir.is_empty() || config.log_path.is_empty() {
            self.dir.join("logs").join(format!("{}.log", new_id()))
        } else {
            Path::new(&log_dir).join(&config.log_path)
        };
        let id = new_id();
        let rec = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox_id.into(),
            image_id: image.id.clone(),
            rootfs: image.rootfs.clone(),
            process: ProcessSpec {
                argv,
                env,
                cwd,
                uid: who.uid,
                gid: who.gid,
                groups: who.groups,
                security: process_security,
                // The size comes with the first attached client's resize.
                terminal: config.tty.then(TerminalSize::default),
            },
            rootfs_policy,
            pid_namespace,
            log_path,
            config,
            state: ContainerState::Created,
            created_at: now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid: None,
            attach: None,
            log: None,
        };
        self.lock().containers.insert(id.clone(), rec);
        Ok(id)
    }

    pub fn start_container(self: &Arc<Self>, id: &str) -> Result<(), CriError> {
        let (
            sandbox_id,
            image_id,
            rootfs,
            process,
            rootfs_policy,
            pid_namespace,
            log_path,
            mounts,
            stdio,
            memory,
        ) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            if c.state != ContainerState::Created {
                return Err(CriError::Invalid(format!(
                    "container {id} is not in the created state"
                )));
            }
            let mounts = host_mounts(&c.config.mounts)?;
            (
                c.sandbox_id.clone(),
                c.image_id.clone(),
                c.rootfs.clone(),
                c.process.clone(),
                c.rootfs_policy.clone(),
                c.pid_namespace.clone(),
                c.log_path.clone(),
                mounts,
                (c.config.stdin, c.config.stdin_once, c.config.tty),
                c.config
                    .linux
                    .as_ref()
                    .and_then(|l| l.resources.as_ref())
                    .map(|r| r.memory_limit_in_bytes)
                    .filter(|m| *m > 0)
                    .map(|m| m as u64),
            )
        };
        let (wants_stdin, stdin_once, tty) = stdio;
        let running = self.running(&sandbox_id)?;
        let files = self.node_files(&sandbox_id);
        let log = logs::open(&log_path)?;
        let log_file = log.clone();
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (tap, _) = tokio::sync::broadcast::channel(256);
        logs::forward(out_r, "stdout", log.clone(), Some(tap.clone()))?;
        logs::forward(err_r, "stderr", log, Some(tap.clone()))?;
        let (stdin_r, stdin_w) = if wants_stdin {
            let (r, w) = pipe()?;
            (r, Some(std::fs::File::from(w)))
        } else {
            (dev_null()?, None)
        };
        let attach = Arc::new(Attachable {
            output: Mutex::new(Some(tap)),
            stdin: Mutex::new(stdin_w),
            stdin_once,
            tty,
        });
        let spec = ContainerSpec {
            id,
            image_id: &image_id,
            rootfs: &rootfs,
            process,
            files,
            mounts: &mounts,
            rootfs_policy,
            memory_limit_bytes: memory,
            pid_namespace,
        };
        let pid = match running.start_container(spec, [stdin_r, out_w, err_w]) {
            Ok(pid) => pid,
            Err(e) => {
                let mut st = self.lock();
                if let Some(c) = st.containers.get_mut(id) {
                    c.state = ContainerState::Exited;
                    c.exit_code = 128;
                    c.reason = "StartError".into();
                    c.message = e.to_string();
                    c.finished_at = now_ns();
                }
                return Err(e);
            }
        };
        {
            let mut st = self.lock();
            if let Some(c) = st.containers.get_mut(id) {
                c.state = ContainerState::Running;
                c.started_at = now_ns();
                c.pid = Some(pid);
                c.attach = Some(attach.clone());
                c.log = Some(log_file.clone());
            }
        }
        let me = self.clone();
        let cid = id.to_string();
        std::thread::Builder::new().name("container-wait".into()).spawn(move || {
            let result = running.wait(pid);
            // Attached sessions end once the output already sent has drained.
            attach.output.lock().unwrap_or_else(|e| e.into_inner()).take();
            attach.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut st = me.lock();
            if let Some(c) = st.containers.get_mut(&cid)
                && c.state == ContainerState::Running
            {
                let exit = result.unwrap_or(ProcessExit::KILLED);
                c.state = ContainerState::Exited;
                c.exit_code = exit.code;
                c.finished_at = now_ns();
                c.reason = match exit {
                    ProcessExit { oom_killed: true, .. } => "OOMKilled",
                    ProcessExit { code: 0, .. } => "Completed",
                    _ => "Error",
                }
                .into();
            }
        })?;
        Ok(())
    }

    /// The files a pod's containers get from the node: hostname, hosts table, resolver.
    fn node_files(&self, sandbox_id: &str) -> Vec<FileSpec> {
        let st = self.lock();
        let Some(sb) = st.sandboxes.get(sandbox_id) else { return Vec::new() };
        let host = if sb.config.hostname.is_empty() {
            sb.config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default()
        } else {
            sb.config.hostname.clone()
        };
        let mut hosts =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if let Some(n) = &sb.net {
            hosts.push_str(&format!("{}\t{host}\n", n.ip));
        }
        let mut files = vec![
            FileSpec { path: "/etc/hostname".into(), contents: format!("{host}\n"), mode: 0o644 },
            FileSpec { path: "/etc/hosts".into(), contents: hosts, mode: 0o644 },
        ];
        if let Some(dns) = &sb.config.dns_config {
            let mut text = String::new();
            for s in &dns.servers {
                text.push_str(&format!("nameserver {s}\n"));
            }
            if !dns.searches.is_empty() {
                text.push_str(&format!("search {}\n", dns.searches.join(" ")));
            }
            if !dns.options.is_empty() {
                text.push_str(&format!("options {}\n", dns.options.join(" ")));
            }
            files.push(FileSpec { path: "/etc/resolv.conf".into(), contents: text, mode: 0o644 });
        } else {
            // No DNS settings: the node's resolver, as other runtimes do (an empty file when
            // the node has none), so that programs looking for the file find one.
            let node = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            files.push(FileSpec { path: "/etc/resolv.conf".into(), contents: node, mode: 0o644 });
        }
        files
    }

    pub fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), CriError> {
        let (sandbox_id, pid, state) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            (c.sandbox_id.clone(), c.pid, c.state)
        };
        if state != ContainerState::Running {
            return Ok(());
        }
        let (Some(pid), Ok(running)) = (pid, self.running(&sandbox_id)) else { return Ok(()) };
        let _ = running.signal(pid, 15);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lock().containers.get(id).is_none_or(|c| c.state != ContainerState::Running) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = running.signal(pid, 9);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.lock().containers.get(id).is_none_or(|c| c.state != ContainerState::Running) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(CriError::Sandbox(format!("container {id} did not stop")))
    }

    pub fn remove_container(&self, id: &str) -> Result<(), CriError> {
        self.stop_container(id, Duration::ZERO)?;
        let removed = self.lock().containers.remove(id);
        if let Some(c) = removed
            && let Ok(running) = self.running(&c.sandbox_id)
            && let Err(e) = running.remove_container(id)
        {
            tracing::warn!(container = %id, "releasing the container in its sandbox: {e}");
        }
        Ok(())
    }

    pub fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let st = self.lock();
        let c = st
            .containers
            .get(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        Ok(cri::ContainerStatus {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            state: state_code(c.state),
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_id.clone(),
            image_id: c.image_id.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.log_path.to_string_lossy().into_owned(),
            mounts: c.config.mounts.clone(),
            ..Default::default()
        })
    }

    pub fn list_containers(&self, filter: Option<cri::ContainerFilter>) -> Vec<cri::Container> {
        let st = self.lock();
        st.containers
            .values()
            .filter(|c| match &filter {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || c.id.starts_with(&f.id))
                        && (f.pod_sandbox_id.is_empty()
                            || c.sandbox_id.starts_with(&f.pod_sandbox_id))
                        && f.state.as_ref().is_none_or(|s| s.state == state_code(c.state))
                        && matches_labels(&c.config.labels, &f.label_selector)
                }
            })
            .map(|c| cri::Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image_id.clone(),
                image_id: c.image_id.clone(),
                state: state_code(c.state),
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            })
            .collect()
    }

    /// Runs `cmd` in a container and collects its output, killing it after `timeout`.
    pub fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Vec<u8>, i32), CriError> {
        if cmd.is_empty() {
            return Err(CriError::Invalid("exec needs a command".into()));
        }
        let (running, process) = self.exec_target(id, cmd, None)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let pid = running.exec(id, process, [dev_null()?, out_w, err_w])?;
        let read_all = |fd: OwnedFd| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut v);
                v
            })
        };
        let (out_t, err_t) = (read_all(out_r), read_all(err_r));
        let waiter = {
            let r = running.clone();
            std::thread::spawn(move || r.wait(pid))
        };
        let deadline = timeout.filter(|t| !t.is_zero()).map(|t| Instant::now() + t);
        while !waiter.is_finished() {
            if deadline.is_some_and(|d| Instant::now() > d) {
                let _ = running.signal(pid, 9);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let code =
            waiter.join().map_err(|_| CriError::Sandbox("exec waiter panicked".into()))??.code;
        let out = out_t.join().unwrap_or_default();
        let err = err_t.join().unwrap_or_default();
        Ok((out, err, code))
    }

    /// The ready pod sandbox port forwarding goes through.
    pub fn forward_target(&self, sandbox_id: &str) -> Result<Arc<dyn RunningSandbox>, CriError> {
        self.running(sandbox_id)
    }

    /// Resizes the terminal of container `id`'s main process (created with `tty`).
    pub fn resize_container(&self, id: &str, size: TerminalSize) -> Result<(), CriError> {
        let (sandbox_id, pid) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            match (c.pid, c.config.tty) {
                (Some(pid), true) => (c.sandbox_id.clone(), pid),
                _ => return Err(CriError::Invalid(format!("container {id} has no terminal"))),
            }
        };
        self.running(&sandbox_id)?.resize(pid, size)
    }

    /// What `kubectl attach` connects to: a running container's output and input.
    pub fn attach_target(&self, id: &str) -> Result<Arc<Attachable>, CriError> {
        let st = self.lock();
        let c = st
            .containers
            .get(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        match (&c.attach, c.state) {
            (Some(a), ContainerState::Running) => Ok(a.clone()),
            _ => Err(CriError::Invalid(format!("container {id} is not running"))),
        }
    }

    /// The sandbox and process description for running `cmd` in container `id` (on a
    /// terminal of the sandbox of that size when `terminal` is given).
    pub fn exec_target(
        &self,
        id: &str,
        cmd: Vec<String>,
        terminal: Option<TerminalSize>,
    ) -> Result<(Arc<dyn RunningSandbox>, ProcessSpec), CriError> {
        let (sandbox_id, base, state) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            (c.sandbox_id.clone(), c.process.clone(), c.state)
        };
        if state != ContainerState::Running {
            return Err(CriError::Invalid(format!("container {id} is not running")));
        }
        let running = self.running(&sandbox_id)?;
        let mut env = base.env.clone();
        if terminal.is_some() {
            terminal::default_term(&mut env);
        }
        Ok((running, ProcessSpec { argv: cmd, env, terminal, ..base }))
    }

    pub fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, CriError> {
        let (sandbox_id, meta, labels, annotations) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            let cfg = &c.config;
            (
                c.sandbox_id.clone(),
                cfg.metadata.clone(),
                cfg.labels.clone(),
                cfg.annotations.clone(),
            )
        };
        let usage = self.running(&sandbox_id).and_then(|r| r.stats(id)).unwrap_or_default();
        let (cpu_us, mem) = (usage.cpu_us, usage.memory_bytes);
        let ts = now_ns();
        Ok(cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: id.into(),
                metadata: meta,
                labels,
                annotations,
            }),
            cpu: Some(cri::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: Some(cri::UInt64Value { value: cpu_us * 1000 }),
                ..Default::default()
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: ts,
                working_set_bytes: Some(cri::UInt64Value { value: mem }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn container_ids(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    /// The log file of a container (for ReopenContainerLog and the node's log reader).
    /// Applies new resources to a running container. A sandbox's limits are its pod's: a CPU
    /// limit can change when the container is the sandbox's only one; guest memory is fixed
    /// when the sandbox boots.
    pub fn update_resources(
        &self,
        id: &str,
        r: &cri::LinuxContainerResources,
    ) -> Result<(), CriError> {
        let mut st = self.lock();
        let sandbox_id = st
            .containers
            .get(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?
            .sandbox_id
            .clone();
        if r.memory_limit_in_bytes > 0 {
            return Err(CriError::Invalid(
                "the memory of a running sandbox cannot change (it is fixed at boot)".into(),
            ));
        }
        let Some(limit) = CpuLimit::from_cri(r.cpu_quota, r.cpu_period) else {
            return Ok(());
        };
        let live = st
            .containers
            .values()
            .filter(|c| c.sandbox_id == sandbox_id && c.state != ContainerState::Exited)
            .count();
        if live != 1 {
            return Err(CriError::Invalid(
                "containers of one sandbox share its CPU limit; change the pod's instead".into(),
            ));
        }
        let sb = st
            .sandboxes
            .get_mut(&sandbox_id)
            .ok_or_else(|| CriError::NotFound(format!("pod sandbox {sandbox_id} not found")))?;
        match (&sb.cgroup, sb.running.as_ref().and_then(|r| r.pid())) {
            (Some(g), _) => g.set(limit),
            (None, Some(pid)) => {
                sb.cgroup = Some(SandboxCgroup::create(&sandbox_id, limit, pid)?);
                Ok(())
            }
            (None, None) => {
                Err(CriError::Invalid(format!("pod sandbox {sandbox_id} is not running")))
            }
        }
    }

    /// Makes a running container's output go to a fresh file at its log path (after the
    /// node rotated the old one away).
    pub fn reopen_log(&self, id: &str) -> Result<(), CriError> {
        let (path, log, state) = {
            let st = self.lock();
            let c = st
                .containers
                .get(id)
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            (c.log_path.clone(), c.log.clone(), c.state)
        };
        let Some(log) = log.filter(|_| state == ContainerState::Running) else {
            return Err(CriError::Invalid(format!("container {id} is not running")));
        };
        let fresh = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        *log.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    pub fn log_path(&self, id: &str) -> Result<PathBuf, CriError> {
        self.lock()
            .containers
            .get(id)
            .map(|c| c.log_path.clone())
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))
    }

    /// Stops every sandbox (shutdown of the runtime).
    pub fn shutdown(&self) {
        let ids: Vec<String> = self.lock().sandboxes.keys().cloned().collect();
        for id in ids {
            let _ = self.stop_pod_sandbox(&id);
        }
        if let Some(n) = &self.network {
            n.remove_bridge();
        }
    }
}

/// The CRI's mounts as the sandbox takes them: existing host directories at absolute paths.
fn host_mounts(mounts: &[cri::Mount]) -> Result<Vec<MountSpec>, CriError> {
    mounts
        .iter()
        .map(|m| {
            if !m.container_path.starts_with('/') || m.container_path.split('/').any(|c| c == "..")
            {
                return Err(CriError::Invalid(format!(
                    "mount destination {:?} must be an absolute path without '..'",
                    m.container_path
                )));
            }
            let host = PathBuf::from(&m.host_path);
            if !host.is_absolute() || !host.is_dir() {
                return Err(CriError::Invalid(format!(
                    "mount source {:?} is not a directory (only directories can be mounted)",
                    m.host_path
                )));
            }
            // Volumes are served through a Gofer, which shows the directory's own files: mounts
            // made on the node under it later never appear, so only private propagation is
            // what the container gets.
            if m.propagation != cri::MountPropagation::PropagationPrivate as i32 {
                let what = if m.propagation == cri::MountPropagation::PropagationHostToContainer as i32 {
                    "HostToContainer (rslave)"
                } else {
                    "Bidirectional (rshared)"
                };
                return Err(CriError::Invalid(format!(
                    "mount {:?}: propagation {what} is not supported by sandboxed pods; only None (rprivate)",
                    m.container_path
                )));
            }
            Ok(MountSpec { host, destination: m.container_path.clone(), read_only: m.readonly })
        })
        .collect()
}

fn state_code(s: ContainerState) -> i32 {
    match s {
        ContainerState::Created => cri::ContainerState::ContainerCreated as i32,
        ContainerState::Running => cri::ContainerState::ContainerRunning as i32,
        ContainerState::Exited => cri::ContainerState::ContainerExited as i32,
    }
}
