//! Joins a pty's master to host descriptors: what the runtime passed as a process's stdin is
//! typed into the terminal, and the terminal's output goes to its stdout. Two host threads,
//! both blocking (never spinning); the relay ends once the process has exited and the
//! terminal's output has drained, and then lets go of the master (which hangs the pty up).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::pty::PtyMaster;
use crate::abi::Errno;
use crate::kernel::thread_group::ThreadGroup;

/// How often a relay thread blocked on nothing to do looks whether it should end (the
/// usual end, the process closing the terminal, wakes the output side at once).
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Starts relaying `input` into `master` and `master`'s output to `output` for `process`.
pub fn spawn(
    master: Arc<PtyMaster>,
    input: OwnedFd,
    output: OwnedFd,
    process: Arc<ThreadGroup>,
) -> io::Result<()> {
    let done = Arc::new(AtomicBool::new(false));
    {
        let (master, done) = (master.clone(), done.clone());
        std::thread::Builder::new()
            .name("tty-out".into())
            .spawn(move || relay_output(&master, output, &process, &done))?;
    }
    std::thread::Builder::new()
        .name("tty-in".into())
        .spawn(move || relay_input(&master, input, &done))?;
    Ok(())
}

fn relay_output(master: &PtyMaster, output: OwnedFd, process: &ThreadGroup, done: &AtomicBool) {
    let mut out = Some(std::fs::File::from(output));
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match master.read_from_host(&mut buf, CHECK_EVERY) {
            Ok(n) => n,
            // A descendant may hold the terminal after the process ended: stop once what is
            // already there has been taken.
            Err(Errno::EAGAIN) if process.has_exited() => {
                if master.read_from_host(&mut buf, Duration::ZERO).is_err() {
                    break;
                }
                continue;
            }
            Err(Errno::EAGAIN) => continue,
            // Every slave descriptor closed and nothing left.
            Err(_) => break,
        };
        // A reader that went away still leaves the terminal drained, so that the process
        // never blocks on output nobody reads.
        if let Some(f) = out.as_mut()
            && f.write_all(&buf[..n]).is_err()
        {
            out = None;
        }
    }
    done.store(true, Ordering::Release);
}

fn relay_input(master: &PtyMaster, input: OwnedFd, done: &AtomicBool) {
    let fd = input.as_raw_fd();
    let mut input = std::fs::File::from(input);
    let mut buf = vec![0u8; 4096];
    while !done.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for a descriptor this thread owns.
        let r = unsafe { libc::poll(&mut pfd, 1, CHECK_EVERY.as_millis() as libc::c_int) };
        if r == 0 || (r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted) {
            continue;
        }
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut typed = &buf[..n];
        while !typed.is_empty() {
            match master.write_from_host_within(typed, CHECK_EVERY) {
                Ok(k) => typed = &typed[k..],
                Err(Errno::EAGAIN) if !done.load(Ordering::Acquire) => {}
                Err(_) => return,
            }
        }
    }
}
