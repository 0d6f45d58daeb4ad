//! A process's stdio: containerd's FIFOs on one side, pipes handed to the Sentry on the other,
//! copied by threads of the shim. The shim owns the copying so that it knows when a process's
//! output is complete (containerd's clients wait for EOF on the FIFOs before they delete a
//! task) and so that closing stdin (CloseIO) reaches the process as EOF.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// The FIFOs containerd named for a process (empty: none) and whether it has a terminal.
#[derive(Clone, Debug, Default)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The shim's side of a started process's stdio.
pub struct ProcessIo {
    stdin: String,
    outputs: usize,
    done: Receiver<()>,
}

fn pipe() -> std::io::Result<(File, File)> {
    let (r, w) = std::io::pipe()?;
    Ok((File::from(OwnedFd::from(r)), File::from(OwnedFd::from(w))))
}

fn dev_null(write: bool) -> std::io::Result<OwnedFd> {
    Ok(OpenOptions::new().read(!write).write(write).open("/dev/null")?.into())
}

/// Copies `from` into the FIFO at `path` until EOF, then closes it (containerd's reader then
/// sees EOF). Opening waits for containerd's reader, which it opened before asking.
fn copy_out(from: File, path: String, done: Sender<()>) -> std::io::Result<()> {
    std::thread::Builder::new().name("stdio-out".into()).spawn(move || {
        let mut from = from;
        match OpenOptions::new().write(true).open(&path) {
            Ok(mut fifo) => {
                if let Err(e) = std::io::copy(&mut from, &mut fifo) {
                    tracing::debug!("copying to {path}: {e}");
                }
                let _ = fifo.flush();
            }
            Err(e) => tracing::warn!("opening {path}: {e}"),
        }
        let _ = done.send(());
    })?;
    Ok(())
}

/// Copies the FIFO at `path` into `to` until the writer closes it; dropping `to` then gives
/// the process EOF.
fn copy_in(path: String, to: File) -> std::io::Result<()> {
    std::thread::Builder::new().name("stdio-in".into()).spawn(move || {
        let mut to = to;
        match File::open(&path) {
            Ok(mut fifo) => {
                if let Err(e) = std::io::copy(&mut fifo, &mut to) {
                    tracing::debug!("copying from {path}: {e}");
                }
            }
            Err(e) => tracing::warn!("opening {path}: {e}"),
        }
    })?;
    Ok(())
}

impl ProcessIo {
    /// Starts copying; returns the descriptors the process gets as its stdin, stdout, stderr.
    /// With a terminal, the Sentry's terminal writes everything to stdout.
    pub fn start(paths: &StdioPaths) -> std::io::Result<(ProcessIo, [OwnedFd; 3])> {
        let stdin = if paths.stdin.is_empty() {
            dev_null(false)?
        } else {
            let (r, w) = pipe()?;
            copy_in(paths.stdin.clone(), w)?;
            r.into()
        };
        let (tx, done) = channel();
        let mut outputs = 0;
        let mut output = |path: &str, used: bool| -> std::io::Result<OwnedFd> {
            if path.is_empty() || !used {
                return dev_null(true);
            }
            let (r, w) = pipe()?;
            copy_out(r, path.to_owned(), tx.clone())?;
            outputs += 1;
            Ok(w.into())
        };
        let stdout = output(&paths.stdout, true)?;
        let stderr = output(&paths.stderr, !paths.terminal)?;
        Ok((ProcessIo { stdin: paths.stdin.clone(), outputs, done }, [stdin, stdout, stderr]))
    }

    /// Waits (up to `timeout`) until everything the process wrote has reached the FIFOs:
    /// every writer of the pipes is gone. A process that left a child holding its output open
    /// keeps its FIFO open after that; the exit is reported regardless.
    pub fn drain(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.outputs > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                tracing::warn!("the output of a process was not complete after {timeout:?}");
                return;
            }
            self.outputs -= 1;
        }
    }

    /// Ends the process's stdin (CloseIO) where the client has not closed its writer itself:
    /// a writer that comes and goes wakes a copier still waiting for one.
    pub fn close_stdin(&self) {
        if self.stdin.is_empty() {
            return;
        }
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.stdin)
            .map(drop);
    }
}
