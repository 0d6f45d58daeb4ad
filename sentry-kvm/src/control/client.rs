//! The runtime side of the control channel.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::protocol::{Exit, Request, Response};
use crate::gofer::wire;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    #[error("the sandbox answered: {0}")]
    Sandbox(String),
    #[error("unexpected answer from the sandbox: {0:?}")]
    Unexpected(Response),
}

/// One connection to a sandbox's control socket. Requests on one connection are sequential;
/// use several connections for concurrent waits.
pub struct ControlClient {
    sock: OwnedFd,
    buf: Vec<u8>,
}

/// How long the sandbox has to answer a request that does not wait for a process.
pub const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl ControlClient {
    pub fn connect(path: &Path) -> Result<ControlClient, ControlError> {
        // SAFETY: plain socket creation; checked.
        let fd =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: just created.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = super::address::SocketAddress::new(path)?;
        let len = super::address::SocketAddress::len();
        // SAFETY: connecting our socket to a valid address structure.
        if unsafe { libc::connect(sock.as_raw_fd(), (&raw const addr.addr).cast(), len) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(ControlClient { sock, buf: Vec::new() })
    }

    /// Bounds how long an answer may take (None: forever).
    fn answer_within(&self, limit: Option<std::time::Duration>) -> io::Result<()> {
        let tv = match limit {
            Some(d) => libc::timeval {
                tv_sec: d.as_secs() as libc::time_t,
                tv_usec: d.subsec_micros() as libc::suseconds_t,
            },
            None => libc::timeval { tv_sec: 0, tv_usec: 0 },
        };
        // SAFETY: setting a socket option on our socket from a local value of the right size.
        let r = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Sends `req` with `fds` and returns the answer; sandbox errors become `Err`. Every
    /// request but `Wait` must be answered within [`ANSWER_TIMEOUT`]: a stuck sandbox must not
    /// stall its runtime.
    pub fn call(&mut self, req: &Request, fds: &[RawFd]) -> Result<Response, ControlError> {
        let limit = (!matches!(req, Request::Wait { .. })).then_some(ANSWER_TIMEOUT);
        self.answer_within(limit)?;
        let bytes = serde_json::to_vec(req).map_err(io::Error::other)?;
        wire::send_fds(self.sock.as_raw_fd(), &bytes, fds)?;
        let (n, _) = wire::recv_fds(self.sock.as_raw_fd(), &mut self.buf)?;
        match serde_json::from_slice::<Response>(&self.buf[..n]).map_err(io::Error::other)? {
            Response::Error { message } => Err(ControlError::Sandbox(message)),
            r => Ok(r),
        }
    }

    /// Starts a request that returns a pid.
    pub fn start(&mut self, req: &Request, fds: &[RawFd]) -> Result<i32, ControlError> {
        match self.call(req, fds)? {
            Response::Started { pid } => Ok(pid),
            r => Err(ControlError::Unexpected(r)),
        }
    }

    /// Waits for `pid` to end.
    pub fn wait(&mut self, pid: i32) -> Result<Exit, ControlError> {
        match self.call(&Request::Wait { pid }, &[])? {
            Response::Exited { code, signal, oom_killed } => Ok(Exit { code, signal, oom_killed }),
            r => Err(ControlError::Unexpected(r)),
        }
    }
}
