//! PID 1 reaps every process that ends in the guest; the exits of the processes the agent
//! started go to whoever waits for them, the rest (orphans adopted by PID 1) are dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::exit::Exit;

#[derive(Default)]
pub struct Reaper {
    waiting: Mutex<HashMap<i32, oneshot::Sender<Exit>>>,
}

impl Reaper {
    pub fn new() -> Arc<Reaper> {
        Arc::new(Reaper::default())
    }

    /// Starts a process through `spawn` and watches it. The table stays locked across the
    /// spawn so that a process ending at once is not reaped before it is known.
    pub fn spawn<T>(
        &self,
        spawn: impl FnOnce() -> std::io::Result<(i32, T)>,
    ) -> std::io::Result<(T, oneshot::Receiver<Exit>)> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let (pid, value) = spawn()?;
        let (tx, rx) = oneshot::channel();
        waiting.insert(pid, tx);
        Ok((value, rx))
    }

    /// Collects every ended child without blocking. The table is held meanwhile: a spawn in
    /// progress whose program fails to start is reaped by std's own wait, never by this one
    /// (std panics when its child was reaped under it).
    pub fn reap(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let mut status = 0;
            // SAFETY: waitpid writes only the status integer we own.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            let exit = Exit::from_wait_status(status);
            match waiting.remove(&pid) {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => tracing::debug!(pid, %exit, "reaped an orphan"),
            }
        }
    }

    /// Reaps on every SIGCHLD, for the life of the agent.
    pub fn run(self: Arc<Self>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        Ok(tokio::spawn(async move {
            loop {
                self.reap();
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        }))
    }
}
