//! One stream connection between a guest port and a host Unix socket: its state, the credit
//! each side has given the other, and the bytes still owed to the host.

use std::num::Wrapping;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

use vm_memory::VolatileSlice;

use super::proto::CONN_BUF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The host connected and asked for a guest port; waiting for the guest's RESPONSE.
    HostInit,
    Established,
}

/// What reading the host side gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Data(usize),
    WouldBlock,
    Eof,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("the guest sent more than the credit it was given")]
    Overflow,
    #[error("the host side: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Connection {
    pub stream: UnixStream,
    pub state: State,
    /// The guest's receive buffer and how much of what we sent it has consumed.
    pub peer_buf_alloc: u32,
    pub peer_fwd_cnt: Wrapping<u32>,
    /// Bytes sent to the guest.
    pub rx_cnt: Wrapping<u32>,
    /// Bytes from the guest passed on to the host, and the count the guest last heard.
    pub fwd_cnt: Wrapping<u32>,
    pub fwd_cnt_sent: Wrapping<u32>,
    /// Bytes from the guest the host socket has not taken yet.
    pending: Vec<u8>,
    /// The host side may have data (edge-triggered: true until a read would block).
    pub readable: bool,
    /// In the muxer's queue of connections to read.
    pub queued: bool,
    /// The guest will receive (RCV) / send (SEND) no more.
    pub peer_shutdown: u32,
    /// The host side reached end of file; the guest was told.
    pub host_eof: bool,
}

impl Connection {
    pub fn new(stream: UnixStream, state: State) -> Connection {
        Connection {
            stream,
            state,
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            rx_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            fwd_cnt_sent: Wrapping(0),
            pending: Vec::new(),
            readable: false,
            queued: false,
            peer_shutdown: 0,
            host_eof: false,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// What the guest can still take from us.
    pub fn credit(&self) -> u32 {
        let in_flight = (self.rx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    pub fn update_peer_credit(&mut self, buf_alloc: u32, fwd_cnt: u32) {
        self.peer_buf_alloc = buf_alloc;
        self.peer_fwd_cnt = Wrapping(fwd_cnt);
    }

    /// Whether the guest should hear our forward count now (it may be waiting for credit).
    pub fn owes_credit_update(&self) -> bool {
        (self.fwd_cnt - self.fwd_cnt_sent).0 >= CONN_BUF / 4
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn send(&self, data: &[u8]) -> std::io::Result<usize> {
        // SAFETY: sending from a valid buffer; MSG_NOSIGNAL so a closed peer is an error,
        // not SIGPIPE.
        let n =
            unsafe { libc::send(self.fd(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Passes guest data on to the host, keeping what the socket does not take now.
    pub fn send_to_host(&mut self, data: &VolatileSlice) -> Result<(), ConnError> {
        let len = data.len();
        if self.pending.len() + len > CONN_BUF as usize {
            return Err(ConnError::Overflow);
        }
        let mut written = 0;
        if self.pending.is_empty() {
            let guard = data.ptr_guard();
            // SAFETY: the slice is mapped guest memory of `len` bytes for the guard's life.
            let bytes = unsafe { std::slice::from_raw_parts(guard.as_ptr(), len) };
            match self.send(bytes) {
                Ok(n) => written = n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            self.fwd_cnt += written as u32;
            if written < len {
                self.pending.extend_from_slice(&bytes[written..]);
            }
        } else {
            let start = self.pending.len();
            self.pending.resize(start + len, 0);
            data.copy_to(&mut self.pending[start..]);
        }
        Ok(())
    }

    /// Writes what is pending; true when nothing is left.
    pub fn flush(&mut self) -> Result<bool, ConnError> {
        while !self.pending.is_empty() {
            match self.send(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                    self.fwd_cnt += n as u32;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Reads host data straight into `dst`.
    pub fn read_from_host(&mut self, dst: &VolatileSlice) -> Read {
        loop {
            let guard = dst.ptr_guard_mut();
            // SAFETY: reading into mapped guest memory of `dst.len()` bytes.
            let n = unsafe { libc::read(self.fd(), guard.as_ptr().cast(), dst.len()) };
            if n > 0 {
                return Read::Data(n as usize);
            }
            if n == 0 {
                return Read::Eof;
            }
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Read::WouldBlock,
                // A reset host side reads as the end of the stream.
                _ => return Read::Eof,
            }
        }
    }
}
