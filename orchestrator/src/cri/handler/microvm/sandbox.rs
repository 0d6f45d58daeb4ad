//! A running microVM pod sandbox: its containers are made and run by the guest agent. The
//! CRI layer hands every process host descriptors for its stdio; here a thread per process
//! carries the agent's output stream into them and their input into the agent, and the exit
//! is kept for whoever waits. Process handles are this sandbox's own numbers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use guest_agent::client::AgentClient;
use guest_agent::exit::Exit;
use guest_agent::proto::{self, exec_event::Event};
use tokio::sync::watch;

use super::guest::GuestVm;
use super::share::Share;
use crate::cri::CriError;

use crate::cri::handler::{
    ContainerSpec, ContainerUsage, PodStream, ProcessExit, ProcessSecurity, ProcessSpec,
    RunningSandbox, TerminalSize,
};
use crate::cri::mounts;
use crate::cri::pid_namespace::PidNamespace;

/// How long the guest may take to go down once asked, before its VMM is killed.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

type ExitCell = watch::Receiver<Option<ProcessExit>>;

struct Proc {
    exec_id: String,
    container: String,
    exit: ExitCell,
}

pub struct MicrovmSandbox {
    pub(super) rt: tokio::runtime::Handle,
    pub(super) agent: AgentClient,
    pub(super) guest: Mutex<GuestVm>,
    pub(super) share: Mutex<Share>,
    procs: Mutex<HashMap<i32, Proc>>,
    next: AtomicI32,
}

fn agent_err(what: &str, s: tonic::Status) -> CriError {
    match s.code() {
        tonic::Code::NotFound => CriError::NotFound(format!("{what}: {}", s.message())),
        tonic::Code::InvalidArgument => CriError::Invalid(format!("{what}: {}", s.message())),
        _ => CriError::Sandbox(format!("{what}: {}", s.message())),
    }
}

/// The share's place for a container's binds.
fn container_dir(id: &str) -> String {
    format!("containers/{id}")
}

impl MicrovmSandbox {
    pub(super) fn new(
        rt: tokio::runtime::Handle,
        agent: AgentClient,
        guest: GuestVm,
        share: Share,
    ) -> MicrovmSandbox {
        MicrovmSandbox {
            rt,
            agent,
            guest: Mutex::new(guest),
            share: Mutex::new(share),
            procs: Mutex::new(HashMap::new()),
            next: AtomicI32::new(1),
        }
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Proc>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn proc_of(&self, pid: i32) -> Result<(String, ExitCell), CriError> {
        self.procs()
            .get(&pid)
            .map(|p| (p.exec_id.clone(), p.exit.clone()))
            .ok_or_else(|| CriError::NotFound(format!("no process {pid} in this sandbox")))
    }

    /// Binds the image and the volumes under the share; the agent's request for them.
    /// Starts a process in a container through the agent; also answers how long its start
    /// took in the guest, step by step.
    fn start_process(
        &self,
        container: &str,
        process: ProcessSpec,
        stdio: [OwnedFd; 3],
    ) -> Result<(i32, Vec<proto::StepTime>), CriError> {
        let security = guest_security(&process.security)?;
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        let exec_id = format!("p{handle}");
        let request = proto::ExecRequest {
            container_id: container.to_owned(),
            exec_id: exec_id.clone(),
            args: process.argv,
            env: process.env,
            cwd: process.cwd,
            stdin: true,
            uid: process.uid,
            gid: process.gid,
            groups: process.groups,
            terminal: process.terminal.is_some(),
            rows: process.terminal.map_or(0, |s| s.rows.into()),
            cols: process.terminal.map_or(0, |s| s.cols.into()),
            security: Some(security),
            ..Default::default()
        };
        let mut agent = self.agent.clone();
        let mut events = self
            .rt
            .block_on(agent.exec(request))
            .map_err(|s| agent_err("starting the process in the guest", s))?
            .into_inner();
        // The agent answers Started first, once the program is exec'd.
        let steps = match self.rt.block_on(events.message()) {
            Ok(Some(proto::ExecEvent { event: Some(Event::Started(_)), steps })) => steps,
            Ok(_) => {
                return Err(CriError::Sandbox("the guest agent did not start the process".into()));
            }
            Err(s) => return Err(agent_err("starting the process in the guest", s)),
        };
        let (tx, rx) = watch::channel(None);
        self.procs().insert(
            handle,
            Proc { exec_id: exec_id.clone(), container: container.to_owned(), exit: rx },
        );
        let [stdin, stdout, stderr] = stdio;
        let rt = self.rt.clone();
        std::thread::Builder::new()
            .name("microvm-output".into())
            .spawn(move || pump_output(rt, events, stdout, stderr, tx))?;
        let (rt, agent) = (self.rt.clone(), self.agent.clone());
        std::thread::Builder::new()
            .name("microvm-input".into())
            .spawn(move || pump_input(rt, agent, exec_id, stdin))?;
        Ok((handle, steps))
    }

    fn prepare(&self, spec: &ContainerSpec<'_>) -> Result<proto::CreateContainerRequest, CriError> {
        let share = self.share.lock().unwrap_or_else(|e| e.into_inner());
        let rel = container_dir(spec.id);
        let bound = |what: &str, e: std::io::Error| {
            CriError::Sandbox(format!("sharing {what} with the guest: {e}"))
        };
        let (host, guest_image) = share.place(&format!("{rel}/rootfs"));
        mounts::bind(spec.rootfs, &host, true).map_err(|e| bound("the image", e))?;
        let mut mounts = Vec::new();
        for (i, m) in spec.mounts.iter().enumerate() {
            let (host, guest) = share.place(&format!("{rel}/mounts/{i}"));
            mounts::bind(&m.host, &host, m.read_only)
                .map_err(|e| bound(&m.host.display().to_string(), e))?;
            mounts.push(proto::Mount {
                source: guest,
                destination: m.destination.clone(),
                read_only: m.read_only,
            });
        }
        let files = spec
            .files
            .iter()
            .map(|f| proto::File {
                path: f.path.clone(),
                contents: f.contents.clone().into_bytes(),
                mode: f.mode,
            })
            .collect();
        let policy = &spec.rootfs_policy;
        let (pid_namespace, pid_target) = match &spec.pid_namespace {
            PidNamespace::Pod => (proto::PidNamespace::Pod, String::new()),
            PidNamespace::Container => (proto::PidNamespace::Container, String::new()),
            PidNamespace::Target(t) => (proto::PidNamespace::Target, t.clone()),
        };
        Ok(proto::CreateContainerRequest {
            id: spec.id.to_owned(),
            image_dir: guest_image,
            files,
            mounts,
            readonly_rootfs: policy.readonly_rootfs,
            masked_paths: policy.masked_paths.clone(),
            readonly_paths: policy.readonly_paths.clone(),
            memory_limit_bytes: spec.memory_limit_bytes.unwrap_or(0),
            pid_namespace: pid_namespace.into(),
            pid_target,
            ..Default::default()
        })
    }

    fn release(&self, container: &str) {
        self.share.lock().unwrap_or_else(|e| e.into_inner()).release(&container_dir(container));
    }
}

/// The process's security for the guest agent, which has the guest kernel enforce it: the
/// capabilities kept (all for a privileged container), no_new_privs, and the seccomp profile
/// compiled here, by the same compiler the Sentry uses.
fn guest_security(security: &ProcessSecurity) -> Result<proto::Security, CriError> {
    let seccomp_filter = match &security.seccomp {
        Some(profile) => profile
            .compile()
            .map_err(|e| CriError::Invalid(format!("seccomp profile: {e}")))?
            .to_bytes(),
        None => Vec::new(),
    };
    Ok(proto::Security {
        capabilities: security.capabilities.map_or(u64::MAX, |c| c.bits()),
        no_new_privs: security.no_new_privs,
        seccomp_filter,
    })
}

/// Carries one process's output events into its stdout and stderr until it exits.
fn pump_output(
    rt: tokio::runtime::Handle,
    mut events: tonic::Streaming<proto::ExecEvent>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    exit: watch::Sender<Option<ProcessExit>>,
) {
    let (mut out, mut err) = (std::fs::File::from(stdout), std::fs::File::from(stderr));
    let ended = loop {
        match rt.block_on(events.message()) {
            Ok(Some(proto::ExecEvent { event: Some(Event::Stdout(b)), .. })) => {
                let _ = out.write_all(&b);
            }
            Ok(Some(proto::ExecEvent { event: Some(Event::Stderr(b)), .. })) => {
                let _ = err.write_all(&b);
            }
            Ok(Some(proto::ExecEvent { event: Some(Event::Exited(s)), .. })) => {
                break Exit::try_from(&s).ok();
            }
            Ok(Some(_)) => {}
            // The stream broke: the guest (or its agent) is gone.
            Ok(None) | Err(_) => break None,
        }
    };
    let status = match ended {
        Some(Exit::Code(code)) => ProcessExit { code, signal: None, oom_killed: false },
        Some(Exit::Signal(s)) => {
            ProcessExit { code: 128 + s, signal: Some(s as u32), oom_killed: false }
        }
        Some(Exit::OutOfMemory) => ProcessExit { oom_killed: true, ..ProcessExit::KILLED },
        None => ProcessExit::KILLED,
    };
    let _ = exit.send(Some(status));
}

/// Carries a process's stdin from the host descriptor to the agent, closing it at the end.
fn pump_input(rt: tokio::runtime::Handle, mut agent: AgentClient, exec_id: String, stdin: OwnedFd) {
    let mut input = std::fs::File::from(stdin);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let (data, close) = match input.read(&mut buf) {
            Ok(0) | Err(_) => (Vec::new(), true),
            Ok(n) => (buf[..n].to_vec(), false),
        };
        let req = proto::WriteStdinRequest { exec_id: exec_id.clone(), data, close };
        if rt.block_on(agent.write_stdin(req)).is_err() || close {
            return;
        }
    }
}

impl RunningSandbox for MicrovmSandbox {
    fn start_container(
        &self,
        spec: ContainerSpec<'_>,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        let began = std::time::Instant::now();
        let request = match self.prepare(&spec) {
            Ok(r) => r,
            Err(e) => {
                self.release(spec.id);
                return Err(e);
            }
        };
        let shared_ms = began.elapsed().as_millis() as u64;
        let mut agent = self.agent.clone();
        let created = match self.rt.block_on(agent.create_container(request)) {
            Ok(r) => r.into_inner(),
            Err(s) => {
                self.release(spec.id);
                return Err(agent_err("creating the container in the guest", s));
            }
        };
        let created_ms = began.elapsed().as_millis() as u64;
        let (handle, exec_steps) = self.start_process(spec.id, spec.process, stdio)?;
        // Where a pod's start goes on hosts whose KVM emulates guest kernel code.
        tracing::info!(
            container = spec.id,
            shared_ms,
            create_ms = created_ms - shared_ms,
            exec_ms = began.elapsed().as_millis() as u64 - created_ms,
            guest_steps_ms = super::step_list(&created.steps),
            exec_steps_ms = super::step_list(&exec_steps),
            "container started in the guest"
        );
        Ok(handle)
    }

    fn exec(
        &self,
        container: &str,
        process: ProcessSpec,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        self.start_process(container, process, stdio).map(|(handle, _)| handle)
    }

    fn signal(&self, pid: i32, signal: u32) -> Result<(), CriError> {
        let (exec_id, _) = self.proc_of(pid)?;
        let req = proto::SignalRequest { exec_id, signal: signal as i32 };
        let mut agent = self.agent.clone();
        self.rt.block_on(agent.signal(req)).map(|_| ()).map_err(|s| agent_err("signal", s))
    }

    fn resize(&self, pid: i32, size: TerminalSize) -> Result<(), CriError> {
        let (exec_id, _) = self.proc_of(pid)?;
        let req = proto::ResizeRequest { exec_id, rows: size.rows.into(), cols: size.cols.into() };
        let mut agent = self.agent.clone();
        self.rt.block_on(agent.resize(req)).map(|_| ()).map_err(|s| agent_err("resize", s))
    }

    fn wait(&self, pid: i32) -> Result<ProcessExit, CriError> {
        let (_, mut exit) = self.proc_of(pid)?;
        let done =
            self.rt.block_on(async move { exit.wait_for(Option::is_some).await.map(|v| *v) });
        match done {
            Ok(Some(status)) => Ok(status),
            _ => Ok(ProcessExit::KILLED),
        }
    }

    fn stats(&self, container: &str) -> Result<ContainerUsage, CriError> {
        let mut agent = self.agent.clone();
        let s = self
            .rt
            .block_on(agent.stats(proto::StatsRequest { container_id: container.to_owned() }))
            .map_err(|s| agent_err("stats", s))?
            .into_inner();
        Ok(ContainerUsage {
            cpu_us: s.cpu_usage_usec,
            memory_bytes: s.memory_bytes,
            processes: s.processes,
        })
    }

    fn remove_container(&self, container: &str) -> Result<(), CriError> {
        let mut agent = self.agent.clone();
        let req = proto::RemoveContainerRequest { id: container.to_owned() };
        let removed = self.rt.block_on(agent.remove_container(req));
        self.procs().retain(|_, p| p.container != container);
        self.release(container);
        match removed {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(agent_err("removing the container from the guest", s)),
        }
    }

    fn forward(&self, port: u16) -> std::io::Result<PodStream> {
        let vsock = self.guest.lock().unwrap_or_else(|e| e.into_inner()).vsock().to_owned();
        forward(&vsock, port).map(PodStream::Unix)
    }

    fn pid(&self) -> Option<u32> {
        // CPU limits are the jail's cgroup, set before the guest ran.
        None
    }

    fn stop(&self) {
        let mut guest = self.guest.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(guest.try_wait(), Ok(None)) {
            let mut agent = self.agent.clone();
            let _ = self.rt.block_on(guest.shutdown(Some(&mut agent), SHUTDOWN_DEADLINE));
        } else {
            guest.kill();
        }
        self.share.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }

    fn alive(&self) -> bool {
        matches!(self.guest.lock().unwrap_or_else(|e| e.into_inner()).try_wait(), Ok(None))
    }
}

impl Drop for MicrovmSandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one `\n`-ended line byte by byte (what follows it belongs to the stream).
fn read_line(s: &mut std::os::unix::net::UnixStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 256 {
        if s.read(&mut b)? == 0 {
            break;
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// A stream to `port` on the guest's loopback, through the agent's forwarder on vsock.
pub fn forward(
    vsock: &std::path::Path,
    port: u16,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, why);
    let mut s = std::os::unix::net::UnixStream::connect(vsock)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "CONNECT {}", guest_agent::FORWARD_PORT)?;
    let hello = read_line(&mut s)?;
    if !hello.starts_with("OK ") {
        return Err(refused(format!("the guest's forwarder did not answer ({hello:?})")));
    }
    writeln!(s, "{port}")?;
    let answer = read_line(&mut s)?;
    if answer != "OK" {
        return Err(refused(answer.strip_prefix("ERR ").unwrap_or(&answer).to_owned()));
    }
    s.set_read_timeout(None)?;
    Ok(s)
}

/// Where the guest's vsock device listens on the host, for a jail rooted at `jail`.
pub fn vsock_path(jail: &std::path::Path) -> PathBuf {
    jail.join("v.sock")
}
