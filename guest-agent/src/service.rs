//! The agent API (proto/agent.proto) over the guest's containers and processes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::container::{self, Container, ContainerError};
use crate::exit::Exit;
use crate::network::{self, InterfaceConfig};
use crate::process::{self, Process, Processes, SpawnError, Spec};
use crate::proto::{self, agent_server::Agent, exec_event::Event};
use crate::reaper::Reaper;
use crate::refresh::{self, RefreshConfig, RefreshError};
use crate::security::Security;
use crate::steps;
use crate::sysctl::Sysctl;
use crate::terminal;

/// How much output one stream message carries at most.
const CHUNK: usize = 64 * 1024;

pub struct AgentService {
    reaper: Arc<Reaper>,
    processes: Processes,
    containers: Mutex<HashMap<String, Container>>,
    next_exec: AtomicU64,
    /// The generation of the last successful Refresh (0: never refreshed).
    generation: AtomicU64,
    /// One Refresh at a time.
    refreshing: Mutex<()>,
    /// Becomes true when the host asks for a shutdown.
    pub shutdown: watch::Sender<bool>,
}

impl AgentService {
    pub fn new(reaper: Arc<Reaper>) -> AgentService {
        AgentService {
            reaper,
            processes: Processes::default(),
            containers: Mutex::new(HashMap::new()),
            next_exec: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            refreshing: Mutex::new(()),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Tears every container down (kills their processes, unmounts); used on shutdown.
    pub async fn remove_all_containers(&self) {
        let all: Vec<Container> = self.containers.lock().await.drain().map(|(_, c)| c).collect();
        let _ = tokio::task::spawn_blocking(move || all.iter().for_each(container::remove)).await;
    }

    fn process(&self, exec_id: &str) -> Result<Arc<Process>, Status> {
        self.processes
            .get(exec_id)
            .ok_or_else(|| Status::not_found(format!("no process {exec_id:?}")))
    }
}

/// The PID namespace a new process of container `c` starts in: the container's once it has
/// one; else a new one, or its target's, for its first process.
fn pid_ns_for(
    containers: &HashMap<String, Container>,
    c: &Container,
) -> Result<process::PidNs, Status> {
    if let Some(ns) = &c.pid_ns {
        return Ok(process::PidNs::Join(ns.clone()));
    }
    Ok(match &c.pid_mode {
        container::PidMode::Pod => process::PidNs::Agent,
        container::PidMode::Container => process::PidNs::New,
        container::PidMode::Target(t) => {
            let ns = containers.get(t).and_then(|t| t.pid_ns.clone()).ok_or_else(|| {
                Status::failed_precondition(format!("container {t:?} has no process running"))
            })?;
            process::PidNs::Join(ns)
        }
    })
}

fn container_status(e: ContainerError) -> Status {
    match e {
        ContainerError::Io { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

fn refresh_status(e: RefreshError) -> Status {
    match &e {
        _ if e.is_bad_request() => Status::invalid_argument(e.to_string()),
        RefreshError::ShareBusy { .. } | RefreshError::Share(ContainerError::Io { .. }) => {
            Status::failed_precondition(e.to_string())
        }
        RefreshError::Share(_) => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn spawn_status(e: SpawnError) -> Status {
    match &e {
        SpawnError::Start { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(e.to_string())
        }
        SpawnError::Start { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Status::permission_denied(e.to_string())
        }
        SpawnError::Start { .. } => Status::internal(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

/// Copies a pipe into the event stream; once the receiver is gone the output is still read
/// (and dropped) so that the process never blocks on a full pipe.
async fn forward(
    mut from: process::Output,
    to: mpsc::Sender<Result<proto::ExecEvent, Status>>,
    wrap: fn(Vec<u8>) -> Event,
) {
    let mut open = true;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if open => {
                let ev =
                    proto::ExecEvent { event: Some(wrap(buf[..n].to_vec())), steps: Vec::new() };
                open = to.send(Ok(ev)).await.is_ok();
            }
            Ok(_) => {}
        }
    }
}

fn uname_release() -> String {
    // SAFETY: utsname is plain data filled by the kernel.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname to write.
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let bytes: Vec<u8> = u.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn health(
        &self,
        _: Request<proto::HealthRequest>,
    ) -> Result<Response<proto::HealthResponse>, Status> {
        Ok(Response::new(proto::HealthResponse {
            version: crate::VERSION.to_owned(),
            kernel_release: uname_release(),
            uptime_ms: uptime_ms(),
            containers: self.containers.lock().await.len() as u32,
            processes: self.processes.running() as u32,
            generation: self.generation.load(Ordering::SeqCst),
        }))
    }

    async fn refresh(
        &self,
        req: Request<proto::RefreshRequest>,
    ) -> Result<Response<proto::RefreshResponse>, Status> {
        let cfg = RefreshConfig::parse(req.into_inner()).map_err(refresh_status)?;
        let _one = self.refreshing.lock().await;
        let generation = cfg.generation;
        tracing::info!(?cfg, "refreshing");
        let (boot_id, steps) = tokio::task::spawn_blocking(move || {
            let boot_id = refresh::boot_id()?;
            Ok::<_, RefreshError>((boot_id, refresh::apply(&cfg)?))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(refresh_status)?;
        self.generation.store(generation, Ordering::SeqCst);
        tracing::info!(generation, boot_id, "refreshed");
        let steps = steps::to_proto(&steps.done);
        Ok(Response::new(proto::RefreshResponse { boot_id, generation, steps }))
    }

    async fn create_container(
        &self,
        req: Request<proto::CreateContainerRequest>,
    ) -> Result<Response<proto::CreateContainerResponse>, Status> {
        let r = req.into_inner();
        let mut containers = self.containers.lock().await;
        if containers.contains_key(&r.id) {
            return Err(Status::already_exists(format!("container {:?} exists", r.id)));
        }
        let image = match (r.device.is_empty(), r.image_dir.is_empty()) {
            (false, true) => container::Image::Device { device: r.device, fstype: r.fstype },
            (true, false) => container::Image::Shared(r.image_dir),
            _ => {
                return Err(Status::invalid_argument(
                    "give the image as either a device or a shared directory",
                ));
            }
        };
        let files: Vec<container::File> = r
            .files
            .into_iter()
            .map(|f| container::File { path: f.path, contents: f.contents, mode: f.mode })
            .collect();
        let mounts: Vec<container::Mount> = r
            .mounts
            .into_iter()
            .map(|m| container::Mount {
                source: m.source,
                destination: m.destination,
                read_only: m.read_only,
            })
            .collect();
        let pid_mode = match proto::PidNamespace::try_from(r.pid_namespace) {
            Ok(proto::PidNamespace::Pod) => container::PidMode::Pod,
            Ok(proto::PidNamespace::Container) => container::PidMode::Container,
            Ok(proto::PidNamespace::Target) if containers.contains_key(&r.pid_target) => {
                container::PidMode::Target(r.pid_target.clone())
            }
            Ok(proto::PidNamespace::Target) => {
                return Err(Status::not_found(format!("no container {:?}", r.pid_target)));
            }
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "PID namespace {} is none of POD, CONTAINER and TARGET",
                    r.pid_namespace
                )));
            }
        };
        let policy = container::Policy {
            readonly_rootfs: r.readonly_rootfs,
            masked_paths: r.masked_paths,
            readonly_paths: r.readonly_paths,
            memory_limit_bytes: (r.memory_limit_bytes > 0).then_some(r.memory_limit_bytes),
            own_proc: pid_mode == container::PidMode::Container,
        };
        let id = r.id.clone();
        let c = tokio::task::spawn_blocking(move || {
            container::create(&id, &image, &files, &mounts, &policy)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(container_status)?;
        let mut c = c;
        c.pid_mode = pid_mode;
        let rootfs = c.rootfs().display().to_string();
        let steps = steps::to_proto(&c.steps.done);
        tracing::info!(id = r.id, rootfs, "container created");
        containers.insert(r.id, c);
        Ok(Response::new(proto::CreateContainerResponse { rootfs, steps }))
    }

    async fn remove_container(
        &self,
        req: Request<proto::RemoveContainerRequest>,
    ) -> Result<Response<proto::RemoveContainerResponse>, Status> {
        let id = req.into_inner().id;
        let c = self
            .containers
            .lock()
            .await
            .remove(&id)
            .ok_or_else(|| Status::not_found(format!("no container {id:?}")))?;
        tokio::task::spawn_blocking(move || container::remove(&c))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        self.processes.forget_container(&id);
        Ok(Response::new(proto::RemoveContainerResponse {}))
    }

    type ExecStream = ReceiverStream<Result<proto::ExecEvent, Status>>;

    async fn exec(
        &self,
        req: Request<proto::ExecRequest>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let r = req.into_inner();
        let mut spec =
            Spec::new(r.args, &r.env, &r.cwd, r.stdin, r.console).map_err(spawn_status)?;
        (spec.uid, spec.gid, spec.groups) = (r.uid, r.gid, r.groups);
        if r.terminal && r.console {
            return Err(Status::invalid_argument("a process is on the console or on a terminal"));
        }
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        spec.terminal = r.terminal.then(|| (clamp(r.rows), clamp(r.cols)));
        spec.security = r
            .security
            .as_ref()
            .map(Security::parse)
            .transpose()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The container's OOM kills before this process starts are not its own.
        let mut container = None;
        // The containers stay locked across the spawn: a container's first process decides
        // its namespace.
        let mut containers = self.containers.lock().await;
        if !r.container_id.is_empty() {
            let c = containers
                .get(&r.container_id)
                .ok_or_else(|| Status::not_found(format!("no container {:?}", r.container_id)))?;
            spec.root = Some(c.rootfs());
            spec.cgroup = Some(c.cgroup());
            spec.pid_ns = pid_ns_for(&containers, c)?;
            let under_proc = |paths: &[String]| -> Vec<String> {
                paths.iter().filter(|p| p.starts_with("/proc/")).cloned().collect()
            };
            spec.proc_masked = under_proc(&c.policy.masked_paths);
            spec.proc_readonly = under_proc(&c.policy.readonly_paths);
            container = Some((c.clone(), c.oom_kills()));
        }
        let exec_id = match r.exec_id {
            id if id.is_empty() => {
                format!("exec-{}", self.next_exec.fetch_add(1, Ordering::Relaxed))
            }
            id => id,
        };
        if self.processes.contains(&exec_id) {
            return Err(Status::already_exists(format!("process {exec_id:?} exists")));
        }
        let process::Started { pid, pipes, exit: exited, steps } =
            process::spawn(&spec, &self.reaper).map_err(spawn_status)?;
        if let Some(c) = containers.get_mut(&r.container_id)
            && c.pid_ns.is_none()
            && c.pid_mode != container::PidMode::Pod
        {
            // Kept while the container is: its execs join it.
            match process::pid_namespace_of(pid) {
                Ok(ns) => c.pid_ns = Some(ns),
                Err(e) => tracing::warn!(pid, "the PID namespace of {:?}: {e}", c.id),
            }
        }
        drop(containers);
        let (exit_tx, exit_rx) = watch::channel(None);
        let entry = Arc::new(Process {
            pid,
            container_id: r.container_id,
            stdin: Mutex::new(pipes.stdin),
            terminal: pipes.terminal,
            exit: exit_rx,
        });
        if !self.processes.insert(&exec_id, entry) {
            // SAFETY: kill has no memory effects; the process is ours and not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Err(Status::already_exists(format!("process {exec_id:?} exists")));
        }
        tracing::info!(exec_id, pid, args = ?spec.args, "started");
        let (tx, rx) = mpsc::channel(16);
        let steps = steps::to_proto(&steps);
        let _ = tx.send(Ok(proto::ExecEvent { event: Some(Event::Started(pid)), steps })).await;
        tokio::spawn(async move {
            let out = pipes.stdout.map(|p| tokio::spawn(forward(p, tx.clone(), Event::Stdout)));
            let err = pipes.stderr.map(|p| tokio::spawn(forward(p, tx.clone(), Event::Stderr)));
            for t in [out, err].into_iter().flatten() {
                let _ = t.await;
            }
            // The reaper only goes away with the agent.
            let mut exit = exited.await.unwrap_or(Exit::Signal(libc::SIGKILL));
            if exit == Exit::Signal(libc::SIGKILL)
                && container.is_some_and(|(c, before)| c.oom_kills() > before)
            {
                exit = Exit::OutOfMemory;
            }
            tracing::info!(exec_id, pid, %exit, "ended");
            let _ = exit_tx.send(Some(exit));
            let ended =
                proto::ExecEvent { event: Some(Event::Exited(exit.into())), steps: Vec::new() };
            let _ = tx.send(Ok(ended)).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn write_stdin(
        &self,
        req: Request<proto::WriteStdinRequest>,
    ) -> Result<Response<proto::WriteStdinResponse>, Status> {
        let r = req.into_inner();
        let p = self.process(&r.exec_id)?;
        let mut stdin = p.stdin.lock().await;
        let pipe = stdin.as_mut().ok_or_else(|| {
            Status::failed_precondition(format!(
                "stdin of {:?} is closed or was not asked for",
                r.exec_id
            ))
        })?;
        if !r.data.is_empty() {
            // Flushed: a terminal's master is written from the blocking pool.
            let written = match pipe.write_all(&r.data).await {
                Ok(()) => pipe.flush().await,
                Err(e) => Err(e),
            };
            written.map_err(|e| Status::failed_precondition(format!("writing stdin: {e}")))?;
        }
        if r.close {
            *stdin = None;
        }
        Ok(Response::new(proto::WriteStdinResponse {}))
    }

    async fn signal(
        &self,
        req: Request<proto::SignalRequest>,
    ) -> Result<Response<proto::SignalResponse>, Status> {
        let r = req.into_inner();
        let p = self.process(&r.exec_id)?;
        if !(1..=64).contains(&r.signal) {
            return Err(Status::invalid_argument(format!("signal {} is not 1-64", r.signal)));
        }
        if p.exit.borrow().is_some() {
            return Err(Status::failed_precondition(format!("{:?} has ended", r.exec_id)));
        }
        // SAFETY: kill has no memory effects; the pid is a child not yet reaped.
        if unsafe { libc::kill(p.pid as i32, r.signal) } != 0 {
            return Err(Status::internal(std::io::Error::last_os_error().to_string()));
        }
        Ok(Response::new(proto::SignalResponse {}))
    }

    async fn resize(
        &self,
        req: Request<proto::ResizeRequest>,
    ) -> Result<Response<proto::ResizeResponse>, Status> {
        let r = req.into_inner();
        let p = self.process(&r.exec_id)?;
        let master = p.terminal.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!("{:?} has no terminal", r.exec_id))
        })?;
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        terminal::resize(master, clamp(r.rows), clamp(r.cols))
            .map_err(|e| Status::internal(format!("resizing the terminal: {e}")))?;
        Ok(Response::new(proto::ResizeResponse {}))
    }

    async fn wait(
        &self,
        req: Request<proto::WaitRequest>,
    ) -> Result<Response<proto::WaitResponse>, Status> {
        let r = req.into_inner();
        let mut rx = self.process(&r.exec_id)?.exit.clone();
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::aborted("the process was forgotten"))?
            .ok_or_else(|| Status::internal("no exit"))?;
        Ok(Response::new(proto::WaitResponse { status: Some(exit.into()) }))
    }

    async fn stats(
        &self,
        req: Request<proto::StatsRequest>,
    ) -> Result<Response<proto::StatsResponse>, Status> {
        let id = req.into_inner().container_id;
        if id.is_empty() {
            return Ok(Response::new(crate::stats::guest()));
        }
        let dir = self
            .containers
            .lock()
            .await
            .get(&id)
            .map(Container::cgroup)
            .ok_or_else(|| Status::not_found(format!("no container {id:?}")))?;
        crate::stats::cgroup(&dir).map(Response::new).map_err(|e| Status::internal(e.to_string()))
    }

    async fn set_sysctls(
        &self,
        req: Request<proto::SetSysctlsRequest>,
    ) -> Result<Response<proto::SetSysctlsResponse>, Status> {
        let all = req
            .into_inner()
            .sysctls
            .iter()
            .map(Sysctl::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        for s in &all {
            s.apply().map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        tracing::info!(count = all.len(), "sysctls set");
        Ok(Response::new(proto::SetSysctlsResponse {}))
    }

    async fn configure_interface(
        &self,
        req: Request<proto::ConfigureInterfaceRequest>,
    ) -> Result<Response<proto::ConfigureInterfaceResponse>, Status> {
        let r = req.into_inner();
        let cfg = InterfaceConfig::parse(&r.name, &r.address, &r.gateway, r.mtu)
            .and_then(|c| c.with_mac(&r.mac))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let steps =
            network::configure(&cfg).map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(proto::ConfigureInterfaceResponse { steps: steps::to_proto(&steps.done) }))
    }

    async fn shutdown(
        &self,
        _: Request<proto::ShutdownRequest>,
    ) -> Result<Response<proto::ShutdownResponse>, Status> {
        tracing::info!("shutdown requested");
        self.shutdown.send_replace(true);
        Ok(Response::new(proto::ShutdownResponse {}))
    }
}
