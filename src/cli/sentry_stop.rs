//! Host signals to `ringfence sentry run`: forwarded to the sandbox's init, and termination
//! escalated like container runtimes do. After a SIGTERM the sandbox has a grace period to end
//! by itself; once it passes, or at a second SIGTERM or SIGINT within it, the Sentry process
//! exits at once with 137 (as if SIGKILLed), which ends every task however wedged and closes
//! the Gofer's channel, which ends the Gofer. A lone SIGINT (Ctrl-C at a program that handles
//! it) is only forwarded, but another SIGINT or SIGTERM within the grace period kills.
//!
//! One signal is the Sentry's own: [`task_dump_signal`] (SIGRTMIN+3) prints what every task
//! of the sandbox is doing to stderr, for finding a hang; it reaches no task.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use sentry_kvm::sandbox::Sandbox;

/// Exit status after escalation: 128 + SIGKILL, what a shell or a runtime reports for a
/// container killed at the end of its stop timeout.
pub const KILLED_EXIT: i32 = 128 + libc::SIGKILL;

/// Why the sandbox is being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escalation {
    GraceExpired { signal: i32 },
    SecondSignal { signal: i32 },
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "a termination signal",
    }
}

fn is_termination(sig: i32) -> bool {
    matches!(sig, libc::SIGTERM | libc::SIGINT)
}

/// The signal that asks for a task dump (`kill -s RTMIN+3 PID`).
pub fn task_dump_signal() -> i32 {
    libc::SIGRTMIN() + 3
}

/// Writes `text` to stderr with write(2): no Rust lock, which a wedged thread could hold.
fn write_stderr(text: &str) {
    // SAFETY: write(2) of a valid buffer to descriptor 2.
    unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
}

/// Starts the threads that wait for the signals of `set` (blocked in every thread) and act on
/// them. `grace` is how long a forwarded termination signal may take to end the sandbox.
pub fn start(sandbox: Arc<Sandbox>, set: libc::sigset_t, grace: Duration) -> std::io::Result<()> {
    // Forwarding takes the sandbox's locks; a wedged sandbox may never give them back, so it
    // runs on a thread of its own and the waiting below never depends on it.
    let dump_tx = dump_writer(sandbox.clone())?;
    let (fwd_tx, fwd_rx) = mpsc::channel::<i32>();
    std::thread::Builder::new().name("signal-forward".into()).spawn(move || {
        for sig in fwd_rx {
            sandbox.signal(sig as u32);
        }
    })?;
    let (stop_tx, stop_rx) = mpsc::channel::<i32>();
    std::thread::Builder::new().name("stop-timer".into()).spawn(move || {
        loop {
            let Ok(first) = stop_rx.recv() else { return };
            let why = match stop_rx.recv_timeout(grace) {
                Ok(second) => Escalation::SecondSignal { signal: second },
                Err(mpsc::RecvTimeoutError::Timeout) if first == libc::SIGTERM => {
                    Escalation::GraceExpired { signal: first }
                }
                // A SIGINT the program handled: it goes on.
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            kill_now(why, grace);
        }
    })?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: waiting on a valid, initialised set that every thread has blocked.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            if sig == task_dump_signal() {
                let _ = dump_tx.send(());
                continue;
            }
            let _ = fwd_tx.send(sig);
            if is_termination(sig) {
                let _ = stop_tx.send(sig);
            }
        }
    })?;
    Ok(())
}

/// A thread that writes a task dump to stderr for each message. Its own thread: the dump
/// tries the sandbox's locks, and the signal waiter must never wait on it.
fn dump_writer(sandbox: Arc<Sandbox>) -> std::io::Result<mpsc::Sender<()>> {
    let (dump_tx, dump_rx) = mpsc::channel::<()>();
    std::thread::Builder::new().name("task-dump".into()).spawn(move || {
        for () in dump_rx {
            write_stderr(&sandbox.task_dump());
        }
    })?;
    Ok(dump_tx)
}

/// Blocks `signals` and [`task_dump_signal`] in the calling thread and the threads it starts
/// from now on, for a thread to `sigwait` on the set returned; call before the sandbox starts
/// any (an unblocked thread would die of the task-dump signal).
pub fn block_signals(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: building a signal set on the stack and applying it to this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals.iter().chain([&task_dump_signal()]) {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// For a pod sandbox (`sentry sandbox`), which forwards no signals: task dumps only.
pub fn serve_task_dumps(sandbox: Arc<Sandbox>, set: libc::sigset_t) -> std::io::Result<()> {
    let dump_tx = dump_writer(sandbox)?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        loop {
            let mut sig = 0;
            // SAFETY: waiting on a valid, initialised set that every thread has blocked.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 && dump_tx.send(()).is_err() {
                return;
            }
        }
    })?;
    Ok(())
}

/// Ends the Sentry process now, saying why.
fn kill_now(why: Escalation, grace: Duration) -> ! {
    let msg = match why {
        Escalation::GraceExpired { signal } => format!(
            "ringfence: the sandbox did not exit within {:?} of {}; killing it",
            grace,
            signal_name(signal)
        ),
        Escalation::SecondSignal { signal } => {
            format!("ringfence: {} received again; killing the sandbox", signal_name(signal))
        }
    };
    write_stderr(&format!("{msg}\n"));
    // SAFETY: _exit ends every thread of the process at once without running destructors
    // or atexit handlers, which a wedged thread could block.
    unsafe { libc::_exit(KILLED_EXIT) }
}
