//! One VMM process whose guest runs the guest agent as PID 1: started, watched while the
//! guest boots, reached over vsock, shut down within a deadline, its console kept for errors.
//! `ringfence vm run -- CMD` and the `microvm` runtime handler both run guests through this.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use guest_agent::client::{self, AgentClient};
use guest_agent::proto;

/// Why a guest could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("starting the VMM {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("the VMM ended ({status}) before the guest agent answered{console}")]
    Exited { status: ExitStatus, console: String },
    #[error("the guest agent did not answer within {timeout:?} (last error: {last}){console}")]
    NoAgent { timeout: Duration, last: String, console: String },
    #[error("watching the VMM: {0}")]
    Io(#[from] io::Error),
}

/// How a guest went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The VMM exited by itself (the guest reset after the agent synced) with this status.
    Exited(ExitStatus),
    /// It was still running at the deadline and was killed.
    Killed,
}

pub struct GuestVm {
    child: Child,
    vsock: PathBuf,
    console: Option<PathBuf>,
    started: Instant,
}

/// The last `lines` lines of a console file, introduced for an error message (empty when
/// there is nothing to show).
pub fn console_tail(path: Option<&Path>, lines: usize) -> String {
    let Some(text) = path.and_then(|p| std::fs::read(p).ok()) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return String::new();
    }
    format!(
        "\nlast lines of the guest console:\n{}",
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}

impl GuestVm {
    /// Starts the VMM `command` (its stdin closed); `vsock` is the host side of its vsock
    /// device, `console` where its serial console goes, if a file.
    pub fn spawn(
        mut command: Command,
        vsock: PathBuf,
        console: Option<PathBuf>,
    ) -> Result<GuestVm, GuestError> {
        let child = command.stdin(Stdio::null()).spawn().map_err(|source| GuestError::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        Ok(GuestVm { child, vsock, console, started: Instant::now() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn vsock(&self) -> &Path {
        &self.vsock
    }

    /// Time since the VMM started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn console_tail(&self, lines: usize) -> String {
        console_tail(self.console.as_deref(), lines)
    }

    /// The VMM's exit status, if it has ended.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits for the agent's first Health answer while watching the VMM: a VMM that ends
    /// first, or a guest silent for `timeout`, is an error with the console's last lines.
    pub async fn wait_agent(
        &mut self,
        timeout: Duration,
    ) -> Result<(AgentClient, proto::HealthResponse), GuestError> {
        let ready = client::wait_ready(&self.vsock, guest_agent::AGENT_PORT, timeout);
        tokio::pin!(ready);
        loop {
            tokio::select! {
                r = &mut ready => {
                    return r.map_err(|e| match e {
                        client::ClientError::Timeout(timeout, last) => GuestError::NoAgent {
                            timeout,
                            last,
                            console: self.console_tail(20),
                        },
                        other => GuestError::NoAgent {
                            timeout,
                            last: other.to_string(),
                            console: self.console_tail(20),
                        },
                    });
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(status) = self.child.try_wait()? {
                        return Err(GuestError::Exited { status, console: self.console_tail(20) });
                    }
                }
            }
        }
    }

    /// Asks the agent (when there is one) to shut the guest down, then waits up to
    /// `deadline` for the VMM to exit before killing it.
    pub async fn shutdown(
        &mut self,
        agent: Option<&mut AgentClient>,
        deadline: Duration,
    ) -> Shutdown {
        if let Some(agent) = agent
            && let Err(e) = agent.shutdown(proto::ShutdownRequest {}).await
        {
            tracing::warn!("asking the guest to shut down: {}", e.message());
        }
        let until = Instant::now() + deadline;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Shutdown::Exited(status),
                Ok(None) if Instant::now() < until => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                _ => {
                    self.kill();
                    return Shutdown::Killed;
                }
            }
        }
    }

    /// Ends the VMM at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
