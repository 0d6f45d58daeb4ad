//! The `sentry` handler: every pod in one Sentry (a KVM guest with a user-space kernel), each
//! container on its own root filesystem through its own Gofer. Translates the CRI layer's
//! specs into the Sentry's control protocol.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sentry_kvm::control::ControlClient;
use sentry_kvm::control::protocol::{self, Request, Response};
use sentry_kvm::creds::caps::Capabilities;

use super::{
    ContainerSpec, ContainerUsage, Launcher, PidNamespace, PodStream, ProcessExit, ProcessSpec,
    RunningSandbox, SandboxHandler, SandboxSetup, TerminalSize,
};
use crate::cri::CriError;

/// Guest memory of a sandbox when the pod states no limit, MiB.
const DEFAULT_SANDBOX_MIB: u64 = 1024;
/// What the Sentry adds to a pod's memory limit, MiB.
const SENTRY_MIB: u64 = 256;

pub struct SentryHandler {
    /// Starts an empty sandbox (`ringfence sentry sandbox`); given `--control PATH` and the
    /// sandbox's options.
    pub sandbox: Launcher,
    /// Starts a Gofer (`ringfence sentry gofer`); given `--writable` for read-write volumes
    /// and `--root DIR`.
    pub gofer: Launcher,
}

pub struct SentrySandbox {
    gofer: Launcher,
    control: PathBuf,
    /// The pod's network namespace (where port forwarding connects).
    netns: Option<PathBuf>,
    process: Mutex<Option<Child>>,
}

/// Connects to `port` on the loopback of network namespace `netns` (a thread enters it just
/// for the connect; the socket stays in that namespace).
fn connect_in(netns: PathBuf, port: u16) -> std::io::Result<std::net::TcpStream> {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns)?;
        // SAFETY: setns on this (short-lived, dedicated) thread with a namespace descriptor.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        std::net::TcpStream::connect(("127.0.0.1", port))
    })
    .join()
    .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
}

fn process(p: ProcessSpec) -> protocol::Process {
    let capabilities = p.security.capabilities.map(|set| Capabilities {
        effective: set,
        permitted: set,
        bounding: set,
        ..Default::default()
    });
    protocol::Process {
        argv: p.argv,
        env: p.env,
        cwd: p.cwd,
        uid: p.uid,
        gid: p.gid,
        groups: p.groups,
        capabilities,
        no_new_privs: p.security.no_new_privs,
        seccomp: p.security.seccomp,
        terminal: p.terminal.map(|s| protocol::TerminalSize { rows: s.rows, cols: s.cols }),
    }
}

fn sandbox_err(e: impl std::fmt::Display) -> CriError {
    CriError::Sandbox(e.to_string())
}

impl SandboxHandler for SentryHandler {
    fn name(&self) -> &'static str {
        "sentry"
    }

    fn start(&self, s: &SandboxSetup) -> Result<Box<dyn RunningSandbox>, CriError> {
        std::fs::create_dir_all(s.dir)?;
        let control = s.dir.join("control.sock");
        // The Sentry itself needs room beside the pod's own memory.
        let memory = s.memory_limit_mib.map(|m| m + SENTRY_MIB).unwrap_or(DEFAULT_SANDBOX_MIB);
        let mut cmd = self.sandbox.command();
        cmd.arg("--control")
            .arg(&control)
            .args(["--hostname", s.hostname, "--memory", &memory.to_string(), "--network"])
            .arg(
                s.network
                    .map(|n| n.netns_path.as_os_str().to_owned())
                    .unwrap_or_else(|| "sandbox".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(s.dir.join("sentry.log"))?);
        // The pod's IPC sysctls become the limits of the sandbox's IPC namespace.
        for setting in s.ipc_sysctls {
            cmd.arg("--sysctl").arg(setting.to_string());
        }
        let mut child = cmd.spawn()?;
        let start = Instant::now();
        while !control.exists() {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(s.dir.join("sentry.log")).unwrap_or_default();
                return Err(CriError::Sandbox(format!(
                    "the Sentry exited ({status}): {}",
                    log.trim()
                )));
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                return Err(CriError::Sandbox("the Sentry did not come up within 30 s".into()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Box::new(SentrySandbox {
            gofer: self.gofer.clone(),
            control,
            netns: s.network.map(|n| n.netns_path.clone()),
            process: Mutex::new(Some(child)),
        }))
    }
}

impl SentrySandbox {
    /// Starts a Gofer serving `dir` (changes allowed when `writable`); returns the channel.
    fn gofer(&self, dir: &Path, writable: bool) -> Result<OwnedFd, CriError> {
        let mut cmd = self.gofer.command();
        if writable {
            cmd.arg("--writable");
        }
        let (channel, gofer) = sentry_kvm::gofer::client::launch(cmd, dir)?;
        // The Gofer exits when the sandbox lets go of the filesystem; reap it then.
        std::thread::Builder::new().name("gofer-reaper".into()).spawn(move || {
            let mut g = gofer;
            let _ = g.wait();
        })?;
        Ok(channel)
    }

    fn client(&self) -> Result<ControlClient, CriError> {
        ControlClient::connect(&self.control).map_err(sandbox_err)
    }
}

impl RunningSandbox for SentrySandbox {
    fn start_container(
        &self,
        spec: ContainerSpec<'_>,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        let channel = self.gofer(spec.rootfs, false)?;
        let volumes = spec
            .mounts
            .iter()
            .map(|m| self.gofer(&m.host, !m.read_only))
            .collect::<Result<Vec<_>, _>>()?;
        let mut fds = vec![
            channel.as_raw_fd(),
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ];
        fds.extend(volumes.iter().map(|v| v.as_raw_fd()));
        let mounts = spec
            .mounts
            .iter()
            .map(|m| protocol::MountSpec {
                destination: m.destination.clone(),
                read_only: m.read_only,
            })
            .collect();
        let files = spec
            .files
            .into_iter()
            .map(|f| protocol::FileSpec { path: f.path, contents: f.contents, mode: f.mode })
            .collect();
        let request = Request::StartContainer {
            id: spec.id.into(),
            process: process(spec.process),
            files,
            mounts,
            readonly_rootfs: spec.rootfs_policy.readonly_rootfs,
            masked_paths: spec.rootfs_policy.masked_paths,
            readonly_paths: spec.rootfs_policy.readonly_paths,
            pid_namespace: match spec.pid_namespace {
                PidNamespace::Container => protocol::PidNamespaceMode::Container,
                PidNamespace::Pod => protocol::PidNamespaceMode::Pod,
                PidNamespace::Target(id) => protocol::PidNamespaceMode::Target(id),
            },
        };
        self.client()?.start(&request, &fds).map_err(sandbox_err)
    }

    fn exec(
        &self,
        container: &str,
        spec: ProcessSpec,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        let fds = [stdio[0].as_raw_fd(), stdio[1].as_raw_fd(), stdio[2].as_raw_fd()];
        let request = Request::Exec { container: container.into(), process: process(spec) };
        self.client()?.start(&request, &fds).map_err(sandbox_err)
    }

    fn signal(&self, pid: i32, signal: u32) -> Result<(), CriError> {
        self.client()?.call(&Request::Signal { pid, signal }, &[]).map(|_| ()).map_err(sandbox_err)
    }

    fn resize(&self, pid: i32, size: TerminalSize) -> Result<(), CriError> {
        let request = Request::Resize { pid, rows: size.rows, cols: size.cols };
        self.client()?.call(&request, &[]).map(|_| ()).map_err(sandbox_err)
    }

    fn wait(&self, pid: i32) -> Result<ProcessExit, CriError> {
        let e = self.client()?.wait(pid).map_err(sandbox_err)?;
        Ok(ProcessExit { code: e.code, signal: e.signal, oom_killed: e.oom_killed })
    }

    fn stats(&self, container: &str) -> Result<ContainerUsage, CriError> {
        match self
            .client()?
            .call(&Request::Stats { container: container.into() }, &[])
            .map_err(sandbox_err)?
        {
            Response::Stats { cpu_us, memory_bytes, processes } => {
                Ok(ContainerUsage { cpu_us, memory_bytes, processes })
            }
            other => Err(CriError::Sandbox(format!("unexpected answer {other:?}"))),
        }
    }

    fn pause(&self, container: &str, paused: bool) -> Result<(), CriError> {
        let container = container.to_owned();
        let request =
            if paused { Request::Pause { container } } else { Request::Resume { container } };
        self.client()?.call(&request, &[]).map(|_| ()).map_err(sandbox_err)
    }

    fn forward(&self, port: u16) -> std::io::Result<PodStream> {
        let netns = self.netns.clone().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the pod has no network")
        })?;
        connect_in(netns, port).map(PodStream::Tcp)
    }

    fn pid(&self) -> Option<u32> {
        self.process.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|c| c.id())
    }

    fn stop(&self) {
        if let Ok(mut c) = self.client() {
            let _ = c.call(&Request::Shutdown, &[]);
        }
        if let Some(mut child) = self.process.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn alive(&self) -> bool {
        match self.process.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for SentrySandbox {
    fn drop(&mut self) {
        self.stop();
    }
}
