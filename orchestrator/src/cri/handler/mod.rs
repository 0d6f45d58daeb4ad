//! Runtime handlers: what isolates a pod sandbox, behind one seam that speaks the CRI layer's
//! own types (processes, files, mounts), never a handler's protocol. Each handler translates.
//!
//! - [`sentry`]: every pod in one Sentry (a KVM guest with a user-space kernel); each
//!   container on its own root filesystem through its own Gofer.
//! - [`microvm`]: a Linux guest per pod, its containers run by the guest agent.
//! - [`launcher`]: how a handler starts the programs it needs, given by the binary that
//!   embeds the runtime (the library never names a program itself).

pub mod launcher;
pub mod microvm;
pub mod sentry;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::CriError;
pub use super::pid_namespace::PidNamespace;
pub use super::security::{ProcessSecurity, RootfsPolicy};

pub use launcher::Launcher;

/// What a handler needs to start a sandbox.
pub struct SandboxSetup<'a> {
    pub id: &'a str,
    /// A directory of the sandbox's own (control socket, state).
    pub dir: &'a Path,
    pub hostname: &'a str,
    /// The pod's network: its namespace and address, when the runtime gives it one.
    pub network: Option<&'a super::network::PodNet>,
    /// The pod's memory limit, when it has one (each handler sizes its sandbox from it).
    pub memory_limit_mib: Option<u64>,
    /// The pod's CPU limit, when it has one.
    pub cpu: Option<super::cgroup::CpuLimit>,
    /// The pod's network sysctls, for a handler that [sets them itself](SandboxHandler::sets_sysctls).
    pub sysctls: &'a [super::pod_options::NetworkSysctl],
    /// The pod's IPC sysctls, already checked.
    pub ipc_sysctls: &'a [sentry_kvm::kernel::ipc::limits::IpcSetting],
}

impl SandboxSetup<'_> {
    /// CPUs that cover the CPU limit (one without a limit).
    pub fn cpus(&self) -> Option<u32> {
        self.cpu.map(|c| c.cpus())
    }
}

/// A process to run in a container.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    /// `NAME=VALUE`.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Capabilities, no_new_privs and seccomp.
    pub security: ProcessSecurity,
    /// Runs on a pseudo-terminal of the sandbox of this initial size (CRI `tty`): the passed
    /// stdin is typed into it, its output comes out of the passed stdout; stderr is not used.
    pub terminal: Option<TerminalSize>,
}

/// A terminal's window size in characters (0 x 0: not known yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

/// A file the runtime places in a container's writable layer (hostname, hosts, resolver).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

/// A host directory mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub host: PathBuf,
    /// Absolute path inside the container, without `..`.
    pub destination: String,
    pub read_only: bool,
}

/// A container to start: its image's root filesystem (unpacked, shared with every container
/// of that image and never written), its main process, files and mounts.
pub struct ContainerSpec<'a> {
    pub id: &'a str,
    pub image_id: &'a str,
    pub rootfs: &'a Path,
    pub process: ProcessSpec,
    pub files: Vec<FileSpec>,
    pub mounts: &'a [MountSpec],
    pub rootfs_policy: RootfsPolicy,
    /// The container's own memory limit, where a handler can hold it to one (the pod's limit
    /// bounds the whole sandbox either way).
    pub memory_limit_bytes: Option<u64>,
    /// The PID namespace its process starts in.
    pub pid_namespace: PidNamespace,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessExit {
    /// The exit code as a shell reports it (128 + signal when killed).
    pub code: i32,
    pub signal: Option<u32>,
    /// Killed because its sandbox ran out of memory.
    pub oom_killed: bool,
}

impl ProcessExit {
    /// What is reported when the sandbox went away under a process: SIGKILL.
    pub const KILLED: ProcessExit = ProcessExit { code: 137, signal: Some(9), oom_killed: false };
}

/// Resource use of a container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub cpu_us: u64,
    pub memory_bytes: u64,
    pub processes: u32,
}

/// A connection to a port on a pod's loopback (port forwarding): a TCP socket opened inside
/// the pod's network namespace, or a stream into a guest.
pub enum PodStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

pub trait SandboxHandler: Send + Sync {
    fn name(&self) -> &'static str;
    fn start(&self, setup: &SandboxSetup) -> Result<Box<dyn RunningSandbox>, CriError>;
    /// Whether the sandbox has a kernel of its own where the pod's sysctls go (given in
    /// [`SandboxSetup::sysctls`]); otherwise the runtime sets them in the pod's network
    /// namespace on the node.
    fn sets_sysctls(&self) -> bool {
        false
    }
}

/// A started pod sandbox. Processes are named by handles the sandbox gives out.
pub trait RunningSandbox: Send + Sync {
    /// Starts a container; returns the handle of its main process.
    fn start_container(
        &self,
        spec: ContainerSpec<'_>,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError>;
    /// Runs `process` in container `container`'s filesystem; returns its handle.
    fn exec(
        &self,
        container: &str,
        process: ProcessSpec,
        stdio: [OwnedFd; 3],
    ) -> Result<i32, CriError>;
    fn signal(&self, pid: i32, signal: u32) -> Result<(), CriError>;
    /// Resizes the terminal of `pid`, a process started with `terminal`.
    fn resize(&self, pid: i32, size: TerminalSize) -> Result<(), CriError>;
    /// Blocks until `pid` exits.
    fn wait(&self, pid: i32) -> Result<ProcessExit, CriError>;
    fn stats(&self, container: &str) -> Result<ContainerUsage, CriError>;
    /// Pauses (`true`) or resumes every process of a container.
    fn pause(&self, _container: &str, _paused: bool) -> Result<(), CriError> {
        Err(CriError::Invalid("this runtime handler cannot pause containers".into()))
    }
    /// Ends a container's remaining processes and releases what it holds in the sandbox.
    fn remove_container(&self, _container: &str) -> Result<(), CriError> {
        Ok(())
    }
    /// Connects to `port` on the pod's loopback (blocking).
    fn forward(&self, port: u16) -> std::io::Result<PodStream>;
    /// The host process that is the sandbox, when the runtime is to put it in a CPU cgroup.
    fn pid(&self) -> Option<u32>;
    /// Ends the sandbox and everything in it.
    fn stop(&self);
    /// Whether the sandbox process still runs.
    fn alive(&self) -> bool;
}
