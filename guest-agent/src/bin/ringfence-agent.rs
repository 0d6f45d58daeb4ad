//! PID 1 of a Ringfence microVM: sets the guest up, then serves the agent API on vsock port
//! 1024 until the host asks for a shutdown. `--unix PATH` serves on a Unix socket instead and
//! skips the set-up (for running it as an ordinary process).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use guest_agent::cmdline::Cmdline;
use guest_agent::proto::agent_server::AgentServer;
use guest_agent::reaper::Reaper;
use guest_agent::service::AgentService;
use guest_agent::{AGENT_PORT, console_shell, init};

enum Listen {
    Vsock(u32),
    Unix(PathBuf),
}

fn parse_args() -> anyhow::Result<Listen> {
    let mut args = std::env::args().skip(1);
    let mut listen = Listen::Vsock(AGENT_PORT);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--unix" => listen = Listen::Unix(args.next().context("--unix needs a path")?.into()),
            "--vsock-port" => {
                listen = Listen::Vsock(args.next().context("--vsock-port needs a port")?.parse()?)
            }
            // The kernel passes unknown command-line words to init; they are not ours.
            _ if std::process::id() == 1 => {}
            other => {
                anyhow::bail!("unknown argument {other:?} (use --unix PATH or --vsock-port N)")
            }
        }
    }
    Ok(listen)
}

fn main() {
    let pid1 = std::process::id() == 1;
    let proc = if pid1 { init::mount_proc() } else { Ok(()) };
    let cmdline = Cmdline::of_this_kernel();
    let level = cmdline.value("ringfence.log").unwrap_or("info");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let result = proc.context("mounting /proc").and_then(|()| run(pid1, &cmdline));
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    if pid1 {
        // PID 1 must not exit (the kernel would panic): take the machine down instead.
        power_off();
    }
    std::process::exit(if result.is_ok() { 0 } else { 1 });
}

fn run(pid1: bool, cmdline: &Cmdline) -> anyhow::Result<()> {
    let listen = parse_args()?;
    if pid1 {
        init::mount_filesystems()?;
        init::own_session();
        init::hostname(cmdline);
        init::network(cmdline);
        init::shared_directory(cmdline)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // Only PID 1 owns the console a shell could run on.
    let shell =
        if pid1 { cmdline.value(console_shell::CMDLINE_KEY).map(str::to_owned) } else { None };
    rt.block_on(serve(listen, pid1, shell))
}

async fn serve(listen: Listen, pid1: bool, shell: Option<String>) -> anyhow::Result<()> {
    let reaper = Reaper::new();
    reaper.clone().run()?;
    let service = Arc::new(AgentService::new(reaper));
    let mut stop_rx = service.shutdown.subscribe();
    let mut done_rx = service.shutdown.subscribe();
    let router =
        tonic::transport::Server::builder().add_service(AgentServer::from_arc(service.clone()));
    let stop = async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    };
    if let Some(device) = shell {
        tokio::spawn(console_shell::run(service.clone(), device));
    }
    let server = match listen {
        Listen::Vsock(port) => {
            let l = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(
                libc::VMADDR_CID_ANY,
                port,
            ))
            .with_context(|| format!("listening on vsock port {port}"))?;
            tracing::info!(port, "agent ready on vsock");
            tokio::spawn(async {
                if let Err(e) = guest_agent::forward::serve(guest_agent::FORWARD_PORT).await {
                    tracing::warn!("port forwarding: {e}");
                }
            });
            tokio::spawn(router.serve_with_incoming_shutdown(l.incoming(), stop))
        }
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path)
                .with_context(|| format!("listening on {}", path.display()))?;
            tracing::info!(path = %path.display(), "agent ready");
            tokio::spawn(
                router.serve_with_incoming_shutdown(guest_agent::unix_grpc::incoming(l), stop),
            )
        }
    };
    // After a shutdown request the server finishes the requests in flight (the answer to
    // Shutdown among them); streams still open get a moment, not forever.
    let mut server = server;
    tokio::select! {
        r = &mut server => r??,
        _ = done_rx.wait_for(|s| *s) => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), &mut server).await;
    service.remove_all_containers().await;
    if pid1 {
        // SAFETY: as PID 1, kill(-1) signals every other process; no memory effects.
        unsafe { libc::kill(-1, libc::SIGKILL) };
    }
    Ok(())
}

fn power_off() -> ! {
    // What is still queued for the serial console (a shell's last words) goes out first.
    if let Ok(console) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        use std::os::fd::AsRawFd;
        // SAFETY: tcdrain only waits on the descriptor, which lives across the call.
        unsafe { libc::tcdrain(console.as_raw_fd()) };
    }
    // SAFETY: sync and reboot have no memory effects; reboot does not return on success.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    loop {
        std::thread::park();
    }
}
