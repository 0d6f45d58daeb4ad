//! `ringfence bench start-to-agent`: starts a VMM (left running) and times it, from this
//! process, to its vsock socket listening and to its guest agent's first answer. Timing here
//! rather than in a shell keeps a client program's own start-up (tens of milliseconds in the
//! lane) out of what is measured, for boots and restores alike.
//!
//! With API requests, the VMM is started bare and the clock starts at the last request
//! (InstanceStart, or a snapshot load): Firecracker's own measure, which leaves out the
//! VMM's process start, the same for boots and restores and a cost of neither.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long one VMM took, from spawning it or from its timed API request.
pub struct AgentStart {
    pub pid: u32,
    /// Until its vsock Unix socket existed (zero if it did before the timed request).
    pub listening: Duration,
    /// Until the guest accepted the connection to the agent's port that answered.
    pub accepting: Duration,
    /// Until the agent answered Health on that connection.
    pub answering: Duration,
    /// From spawning the VMM until its agent answered.
    pub from_spawn: Duration,
}

/// Requests sent to a VMM started bare, in order; the clock starts at the last.
pub struct ApiStart {
    pub sock: PathBuf,
    /// (PUT uri, JSON body).
    pub requests: Vec<(String, Vec<u8>)>,
}

/// Spawns `command` (a VMM whose vsock socket is `vsock`; its output goes to this process's
/// stderr) and waits, at most `timeout`, for its agent. The VMM is not waited for: it goes on
/// running after this returns, and is stopped when `timeout` passes first.
///
/// With `warm_up`, the vsock socket of a VM already running, its agent is asked first: the
/// client's code then runs warm, as in a node agent that has started pods before. (Where the
/// host itself is emulated, the lane, first runs of code cost hundreds of milliseconds.)
pub fn start_to_agent(
    vsock: &Path,
    timeout: Duration,
    warm_up: Option<&Path>,
    api: Option<&ApiStart>,
    command: &[OsString],
) -> anyhow::Result<AgentStart> {
    let (program, args) = command.split_first().context("no VMM command")?;
    if vsock.exists() {
        bail!("{} exists already: it would be taken for the VMM's", vsock.display());
    }
    let port = guest_agent::AGENT_PORT;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(other) = warm_up {
        let deadline = Instant::now() + Duration::from_secs(10);
        runtime
            .block_on(ask_health(other, port, deadline))
            .with_context(|| format!("warming up with the agent behind {}", other.display()))?;
    }
    let spawned = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let timed = (|| {
        let start = match api {
            Some(api) => send_requests(api, &mut child, spawned + timeout)?,
            None => spawned,
        };
        wait_for_socket(vsock, &mut child, spawned + timeout)?;
        let listening = start.elapsed();
        let deadline = spawned + timeout;
        let accepted = runtime.block_on(ask_health(vsock, port, deadline))?;
        let answered = Instant::now();
        Ok(AgentStart {
            pid: child.id(),
            listening,
            accepting: accepted.saturating_duration_since(start),
            answering: answered - start,
            from_spawn: answered - spawned,
        })
    })();
    match timed {
        Ok(t) => Ok(t),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Waits for the VMM's Unix socket `sock` to exist, by `deadline`. The socket is a host file:
/// polled finely, at no cost to the guest.
fn wait_for_socket(
    sock: &Path,
    child: &mut std::process::Child,
    deadline: Instant,
) -> anyhow::Result<()> {
    while !sock.exists() {
        if let Some(status) = child.try_wait()? {
            bail!("the VMM exited ({status}) before listening on {}", sock.display());
        }
        if Instant::now() > deadline {
            bail!("{} did not appear in time", sock.display());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Waits for the API socket, sends every request but the last, then the last; returns when
/// that one was sent. Each must succeed.
fn send_requests(
    api: &ApiStart,
    child: &mut std::process::Child,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    wait_for_socket(&api.sock, child, deadline)?;
    let mut start = Instant::now();
    for (uri, body) in &api.requests {
        start = Instant::now();
        let left = deadline.saturating_duration_since(start);
        let (status, reply) = vmm::api::client::call(&api.sock, "PUT", uri, body, left)?;
        if !(200..300).contains(&status) {
            bail!("PUT {uri}: {status} {reply}");
        }
    }
    Ok(start)
}

/// Connects to the agent's `port` behind `vsock` and asks Health on that connection (as a
/// node agent does), trying again while the guest has no listener there or drops the
/// connection; by `deadline`. Returns when the guest accepted the connection that answered.
async fn ask_health(vsock: &Path, port: u32, deadline: Instant) -> anyhow::Result<Instant> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut last = String::from("none");
    loop {
        let asked = async {
            let stream = guest_agent::client::vsock_stream(vsock, port).await?;
            let accepted = Instant::now();
            let mut agent = guest_agent::client::over_stream(stream).await?;
            agent.health(guest_agent::proto::HealthRequest {}).await?;
            anyhow::Ok(accepted)
        };
        match tokio::time::timeout(left(), asked).await {
            Ok(Ok(accepted)) => return Ok(accepted),
            Ok(Err(e)) if Instant::now() >= deadline => {
                return Err(e.context("the guest agent did not answer"));
            }
            Ok(Err(e)) => {
                last = format!("{e:#}");
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(_) => {
                bail!("the guest agent did not answer on port {port} in time; last error: {last}")
            }
        }
    }
}
