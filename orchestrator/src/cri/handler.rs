//! Runtime handlers: what isolates a pod sandbox. `sentry` runs every pod in one Sentry (a KVM
//! guest with a user-space kernel); each container gets its own root filesystem through its
//! own Gofer.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sentry_kvm::control::ControlClient;
use sentry_kvm::control::protocol::{FileSpec, MountSpec, Process, Request, Response};

use super::CriError;

/// What a handler needs to start a sandbox.
pub struct SandboxSetup<'a> {
    pub id: &'a str,
    /// A directory of the sandbox's own (control socket, state).
    pub dir: &'a Path,
    pub hostname: &'a str,
    pub netns: Option<&'a Path>,
    pub memory_mib: u64,
}

pub trait SandboxHandler: Send + Sync {
    fn name(&self) -> &'static str;
    fn start(&self, setup: &SandboxSetup) -> Result<Box<dyn RunningSandbox>, CriError>;
}

/// A host directory to mount into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMount {
    pub host: PathBuf,
    pub spec: MountSpec,
}

/// A started pod sandbox.
pub trait RunningSandbox: Send + Sync {
    /// Starts container `id` over `rootfs`, with `files` placed in its writable layer and
    /// `mounts` mounted; returns its main process.
    fn start_container(
        &self,
        id: &str,
        rootfs: &Path,
        process: Process,
        files: Vec<FileSpec>,
        mounts: &[HostMount],
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError>;
    /// Runs `process` in container `container`'s filesystem.
    fn exec(&self, container: &str, process: Process, stdio: [OwnedFd; 3])
    -> Result<i32, CriError>;
    fn signal(&self, pid: i32, signal: u32) -> Result<(), CriError>;
    /// Blocks until `pid` exits: (exit code, killing signal).
    fn wait(&self, pid: i32) -> Result<(i32, Option<u32>), CriError>;
    /// (CPU µs, memory bytes, processes) of a container.
    fn stats(&self, container: &str) -> Result<(u64, u64, u32), CriError>;
    /// The host process that is the sandbox (for its cgroup).
    fn pid(&self) -> Option<u32>;
    /// Ends the sandbox and everything in it.
    fn stop(&self);
    /// Whether the sandbox process still runs.
    fn alive(&self) -> bool;
}

pub struct SentryHandler {
    /// The `ringfence` binary (for `sentry sandbox` and `sentry gofer`).
    pub exe: PathBuf,
}

pub struct SentrySandbox {
    exe: PathBuf,
    control: PathBuf,
    process: Mutex<Option<Child>>,
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
        let mut cmd = Command::new(&self.exe);
        cmd.args(["sentry", "sandbox", "--control"])
            .arg(&control)
            .args(["--hostname", s.hostname, "--memory", &s.memory_mib.to_string(), "--network"])
            .arg(s.netns.map(|p| p.as_os_str().to_owned()).unwrap_or_else(|| "sandbox".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(s.dir.join("sentry.log"))?);
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
            exe: self.exe.clone(),
            control,
            process: Mutex::new(Some(child)),
        }))
    }
}

impl SentrySandbox {
    /// Starts a Gofer serving `dir` (changes allowed when `writable`); returns the channel.
    fn gofer(&self, dir: &Path, writable: bool) -> Result<OwnedFd, CriError> {
        let args: &[&str] =
            if writable { &["sentry", "gofer", "--writable"] } else { &["sentry", "gofer"] };
        let (channel, gofer) = sentry_kvm::gofer::client::launch(&self.exe, args, dir)?;
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
        id: &str,
        rootfs: &Path,
        process: Process,
        files: Vec<FileSpec>,
        mounts: &[HostMount],
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        let channel = self.gofer(rootfs, false)?;
        let volumes = mounts
            .iter()
            .map(|m| self.gofer(&m.host, !m.spec.read_only))
            .collect::<Result<Vec<_>, _>>()?;
        let mut fds = vec![
            channel.as_raw_fd(),
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ];
        fds.extend(volumes.iter().map(|v| v.as_raw_fd()));
        let mounts = mounts.iter().map(|m| m.spec.clone()).collect();
        self.client()?
            .start(&Request::StartContainer { id: id.into(), process, files, mounts }, &fds)
            .map_err(sandbox_err)
    }

    fn exec(
        &self,
        container: &str,
        process: Process,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError> {
        let fds = [stdio[0].as_raw_fd(), stdio[1].as_raw_fd(), stdio[2].as_raw_fd()];
        self.client()?
            .start(&Request::Exec { container: container.into(), process }, &fds)
            .map_err(sandbox_err)
    }

    fn signal(&self, pid: i32, signal: u32) -> Result<(), CriError> {
        self.client()?.call(&Request::Signal { pid, signal }, &[]).map(|_| ()).map_err(sandbox_err)
    }

    fn wait(&self, pid: i32) -> Result<(i32, Option<u32>), CriError> {
        self.client()?.wait(pid).map_err(sandbox_err)
    }

    fn stats(&self, container: &str) -> Result<(u64, u64, u32), CriError> {
        match self
            .client()?
            .call(&Request::Stats { container: container.into() }, &[])
            .map_err(sandbox_err)?
        {
            Response::Stats { cpu_us, memory_bytes, processes } => {
                Ok((cpu_us, memory_bytes, processes))
            }
            other => Err(CriError::Sandbox(format!("unexpected answer {other:?}"))),
        }
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
