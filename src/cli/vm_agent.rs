//! `ringfence vm run ... -- CMD`: boots a microVM whose initramfs holds the guest agent,
//! reaches the agent over vsock, runs CMD in a container made from the first disk, streams
//! its output and shuts the guest down — the microVM counterpart of `ringfence sentry run`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use guest_agent::client::{self, AgentClient};
use guest_agent::proto;
use orchestrator::cri::handler::microvm::guest::{GuestVm, Shutdown};

/// How long the guest may take to boot to its agent (a slow nested host takes minutes).
const AGENT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the guest may take to go down once asked.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// The value of `--name VALUE` or `--name=VALUE` among the VMM's arguments.
fn option(args: &[OsString], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        if a == name {
            args.get(i + 1)?.to_str().map(str::to_owned)
        } else {
            a.strip_prefix(&prefix).map(str::to_owned)
        }
    })
}

/// Without a command: the agent runs a shell from the first disk on the serial console
/// (`ringfence.shell=`), unless the command line already says otherwise.
pub fn with_console_shell(mut args: Vec<OsString>) -> Vec<OsString> {
    if option(&args, "--disk").is_none() {
        return args;
    }
    let cmdline = option(&args, "--cmdline");
    if cmdline.as_deref().is_some_and(|c| c.contains("ringfence.shell=")) {
        return args;
    }
    let base = cmdline.unwrap_or_else(|| vmm::linux_boot::DEFAULT_CMDLINE.to_owned());
    // The last --cmdline wins (clap), so a new one after the others replaces them.
    args.extend(["--cmdline".into(), format!("{base} ringfence.shell=/dev/vda").into()]);
    args
}

pub fn run_command(
    vmm: &Path,
    mut args: Vec<OsString>,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    if command.is_empty() {
        bail!("no command after `--`");
    }
    if option(&args, "--disk").is_none() {
        bail!(
            "the command runs from a root filesystem: give --disk ROOTFS.img (ext4, see `ringfence image rootfs`)"
        );
    }
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let uds = match option(&args, "--vsock") {
        Some(v) => PathBuf::from(v.split_once(',').map(|(_, p)| p).context("--vsock is CID,PATH")?),
        None => {
            let path = dir.path().join("vsock.sock");
            args.push("--vsock".into());
            args.push(format!("3,{}", path.display()).into());
            path
        }
    };
    // The guest's console goes to a file (shown if the guest fails) unless asked otherwise.
    let console = match option(&args, "--serial") {
        Some(s) if s != "stdout" => Some(PathBuf::from(s)),
        Some(_) => None,
        None => {
            let path = dir.path().join("console.log");
            args.push("--serial".into());
            args.push(path.clone().into_os_string());
            Some(path)
        }
    };
    if vmm::host::HostKvm::detect() == vmm::host::HostKvm::Pvm {
        eprintln!(
            "ringfence: this host's KVM (kvm_pvm) emulates guest kernel code: the guest takes \
             minutes to boot"
        );
    }
    let mut cmd = std::process::Command::new(vmm);
    cmd.args(&args);
    let mut guest = GuestVm::spawn(cmd, uds, console)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = runtime.block_on(drive(&mut guest, command));
    // Closes the connection to the agent now, so that it need not wait for it to go.
    drop(runtime);
    let status = match result {
        Ok(s) => s,
        Err(e) => {
            let tail = guest.console_tail(20);
            guest.kill();
            return Err(e.context(tail));
        }
    };
    tracing::info!(
        "the VMM exited {:.0} ms after it started",
        guest.elapsed().as_secs_f64() * 1000.0
    );
    Ok(ExitCode::from(status.clamp(0, 255) as u8))
}

/// Waits for the agent (or the VMM's early end), runs the command, shuts the guest down.
async fn drive(guest: &mut GuestVm, command: Vec<String>) -> anyhow::Result<i32> {
    let (mut agent, health) = guest.wait_agent(AGENT_TIMEOUT).await?;
    tracing::info!(
        "guest agent {} answered {:.0} ms after the VMM started (guest uptime {} ms, kernel {})",
        health.version,
        guest.elapsed().as_secs_f64() * 1000.0,
        health.uptime_ms,
        health.kernel_release
    );
    let status = run_in_container(&mut agent, command).await;
    // Down either way; a failed run is still reported first. The guest resets once the agent
    // has synced; the VMM then exits.
    match guest.shutdown(Some(&mut agent), SHUTDOWN_TIMEOUT).await {
        Shutdown::Exited(st) if !st.success() => {
            tracing::warn!("the VMM ended with {st} after the shutdown")
        }
        Shutdown::Exited(_) => {}
        Shutdown::Killed => {
            tracing::warn!("the guest did not go down within {SHUTDOWN_TIMEOUT:?}; killed the VMM")
        }
    }
    status
}

/// Makes a container as `request` says.
pub async fn create_container(
    agent: &mut AgentClient,
    request: proto::CreateContainerRequest,
) -> anyhow::Result<()> {
    let id = request.id.clone();
    let created = agent
        .create_container(request)
        .await
        .map_err(|s| anyhow::anyhow!("creating container {id}: {}", s.message()))?;
    tracing::debug!("container root {}", created.into_inner().rootfs);
    Ok(())
}

/// Runs `command` in container `id` with our stdout and stderr; returns its shell status.
pub async fn exec(agent: &mut AgentClient, id: &str, command: Vec<String>) -> anyhow::Result<i32> {
    let request = proto::ExecRequest {
        container_id: id.into(),
        args: command,
        env: vec!["HOME=/root".into(), "TERM=xterm".into()],
        ..Default::default()
    };
    let exit =
        client::run(agent, request, &mut tokio::io::stdout(), &mut tokio::io::stderr()).await?;
    tracing::info!("the command ended: {exit}");
    if let guest_agent::exit::Exit::Signal(n) = exit {
        eprintln!("ringfence: the command was killed by signal {n}");
    }
    Ok(exit.shell_status())
}

async fn run_in_container(agent: &mut AgentClient, command: Vec<String>) -> anyhow::Result<i32> {
    let request = proto::CreateContainerRequest {
        id: "main".into(),
        device: "/dev/vda".into(),
        fstype: "ext4".into(),
        ..Default::default()
    };
    create_container(agent, request).await?;
    exec(agent, "main", command).await
}
