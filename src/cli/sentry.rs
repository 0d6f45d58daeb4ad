//! `ringfence sentry ...`: the Sentry runtime.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::sentry_security::SecurityArgs;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use orchestrator::cri::handler::Launcher;
use sentry_kvm::control::protocol::{MountSpec, PidNamespaceMode, Request};
use sentry_kvm::control::{ControlClient, ControlServer};
use sentry_kvm::gofer::GoferClient;
use sentry_kvm::kernel::ipc::limits::{IpcLimits, IpcSetting};
use sentry_kvm::platform::PlatformKind;
use sentry_kvm::sandbox::{ContainerSpec, Network, Sandbox, SandboxConfig, Volume};

#[derive(Subcommand)]
pub enum SentryCommand {
    /// Runs a program from a root filesystem directory inside a new sandbox, like `runsc do`.
    Run(RunArgs),
    /// Runs a pod sandbox: an empty sandbox whose containers are started through its control
    /// socket (`ringfence sentry exec`, or the node's CRI runtime).
    Sandbox(SandboxArgs),
    /// Starts a container in a pod sandbox (or runs a process in one of its containers), streams
    /// its stdio and exits with its status.
    Exec(ExecArgs),
    /// Checks that this host can run Sentry sandboxes and measures a syscall round trip.
    Check,
    /// The Gofer process of a sandbox (started by the Sentry itself).
    #[command(hide = true)]
    Gofer {
        #[arg(long)]
        root: PathBuf,
        /// Serve changes too (a read-write volume).
        #[arg(long)]
        writable: bool,
    },
}

/// `HOST:DEST[:ro]`: a host directory mounted into the sandbox.
#[derive(Clone, Debug)]
pub struct VolumeArg {
    host: PathBuf,
    spec: MountSpec,
}

fn parse_pid_namespace(s: &str) -> Result<PidNamespaceMode, String> {
    match s {
        "pod" => Ok(PidNamespaceMode::Pod),
        "container" => Ok(PidNamespaceMode::Container),
        _ => match s.strip_prefix("target:") {
            Some(id) if !id.is_empty() => Ok(PidNamespaceMode::Target(id.to_owned())),
            _ => Err(format!("{s:?}: expected pod, container or target:ID")),
        },
    }
}

fn parse_volume(s: &str) -> Result<VolumeArg, String> {
    let mut parts = s.splitn(3, ':');
    let (host, dest) = match (parts.next(), parts.next()) {
        (Some(h), Some(d)) if !h.is_empty() && d.starts_with('/') => (h, d),
        _ => return Err(format!("{s:?}: expected HOST:DEST[:ro] with an absolute DEST")),
    };
    let read_only = match parts.next() {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(format!("{s:?}: unknown option {other:?} (ro or rw)")),
    };
    let host =
        PathBuf::from(host).canonicalize().map_err(|e| format!("volume source {host}: {e}"))?;
    if !host.is_dir() {
        return Err(format!("volume source {} is not a directory", host.display()));
    }
    Ok(VolumeArg { host, spec: MountSpec { destination: dest.to_owned(), read_only } })
}

/// Starts a Gofer for each volume; returns their channels (and the processes, reaped when the
/// sandbox lets go).
fn volume_gofers(volumes: &[VolumeArg]) -> anyhow::Result<Vec<(OwnedFd, std::process::Child)>> {
    let gofer = gofer_launcher(&std::env::current_exe()?);
    volumes
        .iter()
        .map(|v| {
            let mut cmd = gofer.command();
            if !v.spec.read_only {
                cmd.arg("--writable");
            }
            sentry_kvm::gofer::client::launch(cmd, &v.host)
                .with_context(|| format!("starting the gofer for {}", v.host.display()))
        })
        .collect()
}

/// What starts a Gofer: the small `ringfence-gofer` beside `exe` where it is installed (a few
/// MiB, where the whole binary's start-up takes ~8 MiB of its code), else `exe sentry gofer`.
pub fn gofer_launcher(exe: &std::path::Path) -> Launcher {
    let small = exe.with_file_name("ringfence-gofer");
    if small.is_file() {
        Launcher::new(small, &[])
    } else {
        let args: Vec<&str> = super::SENTRY_COMMAND.iter().copied().chain(["gofer"]).collect();
        Launcher::new(exe, &args)
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// Host directory to use as the sandbox's root filesystem (never modified).
    #[arg(long)]
    pub rootfs: PathBuf,
    /// Environment variable for the program (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(long, default_value = "/")]
    pub cwd: String,
    /// Guest memory of the sandbox, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    /// Where application code runs: `kvm` (a VM of the Sentry's, CPL3), `systrap` (stub
    /// processes under seccomp; faster where KVM exits are slow, as on nested hosts) or `auto`
    /// (whichever has the shorter syscall round trip here, measured at start).
    #[arg(long, value_enum, env = "RINGFENCE_SENTRY_PLATFORM", default_value = "auto")]
    pub platform: PlatformArg,
    /// Hostname inside the sandbox.
    #[arg(long, default_value = "sandbox")]
    pub hostname: String,
    /// Network for AF_INET sockets: `sandbox` (own namespace, loopback only), `host`, or the
    /// path of a network namespace to join.
    #[arg(long, default_value = "sandbox")]
    pub network: String,
    /// Host directory to mount, HOST:DEST[:ro] (repeatable); changes reach the host.
    #[arg(long = "volume", value_name = "HOST:DEST[:ro]", value_parser = parse_volume)]
    pub volumes: Vec<VolumeArg>,
    /// Seconds the sandbox has to exit after a forwarded SIGTERM before it is killed (exit
    /// status 137); a second SIGTERM or SIGINT within that time (after a SIGTERM or a SIGINT)
    /// kills it at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// A System V IPC limit, `kernel.NAME=VALUE` (shmmax, shmall, shmmni, shm_rmid_forced,
    /// msgmax, msgmnb, msgmni, sem; repeatable).
    #[arg(long = "sysctl", value_name = "kernel.NAME=VALUE")]
    pub sysctls: Vec<IpcSetting>,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// The program (absolute path inside the rootfs, or a name searched in PATH) and its
    /// arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args)]
pub struct SandboxArgs {
    /// Control socket to create.
    #[arg(long)]
    pub control: PathBuf,
    /// Guest memory of the sandbox, in MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory: u64,
    /// Where application code runs: `kvm` (a VM of the Sentry's, CPL3), `systrap` (stub
    /// processes under seccomp; faster where KVM exits are slow, as on nested hosts) or `auto`
    /// (whichever has the shorter syscall round trip here, measured at start).
    #[arg(long, value_enum, env = "RINGFENCE_SENTRY_PLATFORM", default_value = "auto")]
    pub platform: PlatformArg,
    #[arg(long, default_value = "sandbox")]
    pub hostname: String,
    /// `sandbox` (own namespace, loopback only), `host`, or a network namespace path.
    #[arg(long, default_value = "sandbox")]
    pub network: String,
    /// A System V IPC limit, `kernel.NAME=VALUE` (repeatable).
    #[arg(long = "sysctl", value_name = "kernel.NAME=VALUE")]
    pub sysctls: Vec<IpcSetting>,
}

#[derive(Args)]
pub struct ExecArgs {
    /// Control socket of the pod sandbox.
    #[arg(long)]
    pub control: PathBuf,
    /// Start a new container with this root filesystem...
    #[arg(long, requires = "id", conflicts_with = "container")]
    pub rootfs: Option<PathBuf>,
    /// ...named this.
    #[arg(long)]
    pub id: Option<String>,
    /// Or run the command in this existing container.
    #[arg(long = "in", value_name = "CONTAINER")]
    pub container: Option<String>,
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[arg(long, default_value = "/")]
    pub cwd: String,
    /// The new container's PID namespace: `pod` (the sandbox's, shared), `container` (its
    /// own) or `target:ID` (container ID's).
    #[arg(long, value_name = "MODE", default_value = "pod", value_parser = parse_pid_namespace, requires = "rootfs")]
    pub pid_namespace: PidNamespaceMode,
    /// Host directory to mount into the new container, HOST:DEST[:ro] (repeatable).
    #[arg(long = "volume", value_name = "HOST:DEST[:ro]", value_parser = parse_volume, requires = "rootfs")]
    pub volumes: Vec<VolumeArg>,
    /// Identity and confinement of the process (filesystem options apply to a new container).
    #[command(flatten)]
    pub security: SecurityArgs,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PlatformArg {
    Auto,
    Kvm,
    Systrap,
}

/// Round trips each platform is measured with for `auto`.
const AUTO_ROUND_TRIPS: u32 = 64;

impl PlatformArg {
    fn resolve(self) -> PlatformKind {
        match self {
            PlatformArg::Kvm => PlatformKind::Kvm,
            PlatformArg::Systrap => PlatformKind::Systrap,
            PlatformArg::Auto => {
                if let Some(p) = remembered_choice() {
                    return p;
                }
                let c = sentry_kvm::platform::choice::choose(AUTO_ROUND_TRIPS);
                tracing::info!(platform = ?c.chosen, kvm = ?c.kvm, systrap = ?c.systrap, "platform chosen");
                remember_choice(c.chosen);
                c.chosen
            }
        }
    }
}

/// Where `auto` keeps its choice, with the boot it was measured in: measuring both platforms
/// takes tens of milliseconds, once per boot of the host.
const CHOICE_FILE: &str = "/run/ringfence/sentry-platform";

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_owned())
}

fn remembered_choice() -> Option<PlatformKind> {
    let text = std::fs::read_to_string(CHOICE_FILE).ok()?;
    let (boot, platform) = text.trim().split_once(' ')?;
    if Some(boot) != boot_id().as_deref() {
        return None;
    }
    PlatformKind::from_name(platform)
}

/// Best effort: without the file, the next start measures again.
fn remember_choice(p: PlatformKind) {
    let Some(boot) = boot_id() else { return };
    let name = p.name();
    let path = std::path::Path::new(CHOICE_FILE);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = path.parent().is_some_and(|d| std::fs::create_dir_all(d).is_ok())
        && std::fs::write(&tmp, format!("{boot} {name}\n")).is_ok()
        && std::fs::rename(&tmp, path).is_ok();
    if !written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("could not keep the platform choice in {CHOICE_FILE}");
    }
}

fn network(spec: &str) -> Network {
    match spec {
        "sandbox" => Network::Isolated,
        "host" => Network::Host,
        path => Network::Namespace(PathBuf::from(path)),
    }
}

pub fn run(cmd: SentryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SentryCommand::Sandbox(args) => {
            let dump_signal = super::sentry_stop::block_signals(&[]);
            let config = SandboxConfig {
                memory: args.memory << 20,
                hostname: args.hostname,
                network: network(&args.network),
                ipc: IpcLimits::with(&args.sysctls)?,
                platform: args.platform.resolve(),
            };
            let sandbox = Sandbox::boot(&config)?;
            let server = ControlServer::bind(&args.control, sandbox.clone())
                .with_context(|| format!("control socket {}", args.control.display()))?;
            sandbox.run_pause_init()?;
            super::sentry_stop::serve_task_dumps(sandbox.clone(), dump_signal)?;
            sandbox.confine()?;
            server.serve()?;
            Ok(ExitCode::SUCCESS)
        }
        SentryCommand::Exec(args) => exec(args),
        SentryCommand::Run(args) => run_sandbox(args),
        SentryCommand::Check => {
            let kvm = sentry_kvm::platform::kvm::selftest::run();
            match &kvm {
                Ok(report) => println!("{report}"),
                Err(e) => println!("KVM platform: not usable here: {e}"),
            }
            let c = sentry_kvm::platform::choice::choose(1000);
            let show = |r: &Result<Duration, sentry_kvm::platform::PlatformError>| match r {
                Ok(d) => format!("{:.1} µs", d.as_secs_f64() * 1e6),
                Err(e) => format!("not usable ({e})"),
            };
            println!("systrap platform: syscall round trip {} (mean of 1000)", show(&c.systrap));
            println!(
                "auto chooses: {} (KVM {}, systrap {})",
                c.chosen.name(),
                show(&c.kvm),
                show(&c.systrap)
            );
            if kvm.is_err() && c.systrap.is_err() {
                anyhow::bail!("neither platform can run here");
            }
            remember_choice(c.chosen);
            Ok(ExitCode::SUCCESS)
        }
        SentryCommand::Gofer { root, writable } => {
            // SAFETY: descriptor 3 is the channel the Sentry passed us; we take ownership.
            let sock = unsafe { OwnedFd::from_raw_fd(sentry_kvm::gofer::client::GOFER_FD) };
            sentry_kvm::gofer::server::serve(&root, sock, writable).context("gofer")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Duplicates a host descriptor for the sandbox's use.
fn dup(fd: i32) -> anyhow::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on one of our standard descriptors; checked below.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        bail!("duplicating descriptor {fd}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

fn run_sandbox(args: RunArgs) -> anyhow::Result<ExitCode> {
    let rootfs =
        args.rootfs.canonicalize().with_context(|| format!("rootfs {}", args.rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    // Signals the user sends to ringfence go to the sandbox's init instead (termination ones
    // escalate to a kill after --stop-timeout, see sentry_stop).
    let forwarded =
        [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
    // This process is still single-threaded: threads started later inherit the mask.
    let set = super::sentry_stop::block_signals(&forwarded);
    let exe = std::env::current_exe().context("locating the ringfence binary for the gofer")?;
    let gofer = GoferClient::spawn(gofer_launcher(&exe).command(), &rootfs)
        .with_context(|| format!("starting the gofer for {}", rootfs.display()))?;
    let config = SandboxConfig {
        memory: args.memory << 20,
        hostname: args.hostname,
        network: network(&args.network),
        ipc: IpcLimits::with(&args.sysctls)?,
        platform: args.platform.resolve(),
    };
    let mut volumes = Vec::new();
    for (v, (chan, child)) in args.volumes.iter().zip(volume_gofers(&args.volumes)?) {
        // Reaped when the sandbox drops the channel (the process exits then).
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let gofer = GoferClient::from_channel(chan)
            .with_context(|| format!("the gofer for {}", v.host.display()))?;
        volumes.push(Volume {
            gofer,
            destination: v.spec.destination.clone(),
            read_only: v.spec.read_only,
        });
    }
    let spec = ContainerSpec {
        gofer,
        process: args.security.process(args.command, args.env, args.cwd)?,
        files: Vec::new(),
        volumes,
        stdio: [dup(0)?, dup(1)?, dup(2)?],
        rootfs: args.security.rootfs_policy(),
        pidns: None,
    };
    let sandbox = Sandbox::boot(&config)?;
    sandbox.confine()?;
    sandbox.run_as_init(spec)?;
    super::sentry_stop::start(
        sandbox.clone(),
        set,
        std::time::Duration::from_secs(args.stop_timeout),
    )
    .context("starting the signal threads")?;
    let status = sandbox.wait();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // The sandbox's threads may still be unwinding; the process exit ends them.
    std::process::exit(status.shell_code());
}

fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    use std::os::fd::AsRawFd;
    let process = args.security.process(args.command, args.env, args.cwd)?;
    let policy = args.security.rootfs_policy();
    let mut client = ControlClient::connect(&args.control)
        .with_context(|| format!("connecting to {}", args.control.display()))?;
    let pid = match (args.rootfs, args.id, args.container) {
        (Some(rootfs), Some(id), None) => {
            let rootfs =
                rootfs.canonicalize().with_context(|| format!("rootfs {}", rootfs.display()))?;
            let gofer = gofer_launcher(&std::env::current_exe()?).command();
            // The Gofer exits once the sandbox lets go of the container's filesystem.
            let (channel, _gofer) = sentry_kvm::gofer::client::launch(gofer, &rootfs)?;
            let gofers = volume_gofers(&args.volumes)?;
            let mut fds = vec![channel.as_raw_fd(), 0, 1, 2];
            fds.extend(gofers.iter().map(|(c, _)| c.as_raw_fd()));
            let mounts = args.volumes.iter().map(|v| v.spec.clone()).collect();
            let req = Request::StartContainer {
                id,
                process,
                files: Vec::new(),
                mounts,
                readonly_rootfs: policy.read_only,
                masked_paths: policy.masked_paths,
                readonly_paths: policy.readonly_paths,
                pid_namespace: args.pid_namespace,
            };
            client.start(&req, &fds)?
        }
        (None, None, Some(container)) => {
            if policy.read_only
                || !policy.masked_paths.is_empty()
                || !policy.readonly_paths.is_empty()
            {
                bail!(
                    "--read-only, --masked-path and --readonly-path apply to a new container, not --in"
                );
            }
            client.start(&Request::Exec { container, process }, &[0, 1, 2])?
        }
        _ => bail!("give either --rootfs and --id (a new container) or --in CONTAINER"),
    };
    let code = client.wait(pid)?.code;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
