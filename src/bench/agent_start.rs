//! `ringfence bench start-to-agent`: starts a VMM (left running) and times it, from this
//! process, to its vsock socket listening and to its guest agent's first answer. Timing here
//! rather than in a shell keeps a client program's own start-up (tens of milliseconds in the
//! lane) out of what is measured, for boots and restores alike.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long one VMM took, from spawning it.
pub struct AgentStart {
    pub pid: u32,
    /// Until its vsock Unix socket existed.
    pub listening: Duration,
    /// Until the guest first accepted a connection to the agent's port.
    pub accepting: Duration,
    /// Until the agent answered Health (on a connection of its own).
    pub answering: Duration,
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
    command: &[OsString],
) -> anyhow::Result<AgentStart> {
    let (program, args) = command.split_first().context("no VMM command")?;
    if vsock.exists() {
        bail!("{} exists already: it would be taken for the VMM's", vsock.display());
    }
    let port = guest_agent::AGENT_PORT;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(other) = warm_up {
        runtime
            .block_on(guest_agent::client::wait_ready(other, port, Duration::from_secs(10)))
            .with_context(|| format!("warming up with the agent behind {}", other.display()))?;
    }
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let timed = (|| {
        // The socket is a host file: polled finely, at no cost to the guest.
        while !vsock.exists() {
            if let Some(status) = child.try_wait()? {
                bail!("the VMM exited ({status}) before listening on {}", vsock.display());
            }
            if start.elapsed() > timeout {
                bail!("{} did not appear within {timeout:?}", vsock.display());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let listening = start.elapsed();
        let accepting = runtime.block_on(async {
            while guest_agent::client::vsock_stream(vsock, port).await.is_err() {
                if start.elapsed() > timeout {
                    bail!("the guest accepted no connection to port {port} within {timeout:?}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(start.elapsed())
        })?;
        let left = timeout.saturating_sub(accepting);
        runtime
            .block_on(guest_agent::client::wait_ready(vsock, port, left))
            .context("waiting for the guest agent")?;
        Ok((listening, accepting, start.elapsed()))
    })();
    match timed {
        Ok((listening, accepting, answering)) => {
            Ok(AgentStart { pid: child.id(), listening, accepting, answering })
        }
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}
