//! `ringfence sentry ...`: the Sentry runtime.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sentry_kvm::sandbox::{Network, Sandbox, SandboxConfig};

#[derive(Subcommand)]
pub enum SentryCommand {
    /// Runs a program from a root filesystem directory inside a new sandbox, like `runsc do`.
    Run(RunArgs),
    /// Checks that this host can run Sentry sandboxes and measures a syscall round trip.
    Check,
    /// The Gofer process of a sandbox (started by the Sentry itself).
    #[command(hide = true)]
    Gofer {
        #[arg(long)]
        root: PathBuf,
    },
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
    /// Hostname inside the sandbox.
    #[arg(long, default_value = "sandbox")]
    pub hostname: String,
    /// Network for AF_INET sockets: `sandbox` (own namespace, loopback only), `host`, or the
    /// path of a network namespace to join.
    #[arg(long, default_value = "sandbox")]
    pub network: String,
    /// The program (absolute path inside the rootfs, or a name searched in PATH) and its
    /// arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(cmd: SentryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SentryCommand::Run(args) => run_sandbox(args),
        SentryCommand::Check => {
            let report = sentry_kvm::platform::kvm::selftest::run()
                .context("the KVM platform self-test failed")?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        SentryCommand::Gofer { root } => {
            // SAFETY: descriptor 3 is the channel the Sentry passed us; we take ownership.
            let sock = unsafe { OwnedFd::from_raw_fd(sentry_kvm::gofer::client::GOFER_FD) };
            sentry_kvm::gofer::server::serve(&root, sock).context("gofer")?;
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
    // Signals the user sends to ringfence go to the sandbox's init instead.
    let forwarded =
        [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
    // SAFETY: building and applying a signal mask for this (still single-threaded) process;
    // threads started later inherit it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in forwarded {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let exe = std::env::current_exe().context("locating the ringfence binary for the gofer")?;
    let config = SandboxConfig {
        rootfs,
        argv: args.command,
        env: args.env,
        cwd: args.cwd,
        memory: args.memory << 20,
        hostname: args.hostname,
        gofer_command: (exe, vec!["sentry".into(), "gofer".into()]),
        stdio: [dup(0)?, dup(1)?, dup(2)?],
        network: match args.network.as_str() {
            "sandbox" => Network::Isolated,
            "host" => Network::Host,
            path => Network::Namespace(PathBuf::from(path)),
        },
    };
    let sandbox = Arc::new(Sandbox::start(config)?);
    let s2 = sandbox.clone();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: waiting on the set blocked above.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                s2.signal(sig as u32);
            }
        }
    })?;
    let status = sandbox.wait();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // The sandbox's threads may still be unwinding; the process exit ends them.
    std::process::exit(status.shell_code());
}
