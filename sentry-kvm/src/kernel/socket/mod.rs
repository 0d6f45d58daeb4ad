//! Sockets: AF_UNIX implemented inside the Sentry; AF_INET/AF_INET6 backed by host sockets in
//! the sandbox's own network namespace.

pub mod inet;
pub mod unix;

use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::kernel::task::{Task, task_of};
use crate::vfs::context::Context;
use crate::vfs::file::{File, FileOps};

pub const AF_UNIX: i32 = 1;
pub const AF_INET: i32 = 2;
pub const AF_INET6: i32 = 10;
pub const AF_NETLINK: i32 = 16;
pub const SOCK_STREAM: i32 = 1;
pub const SOCK_DGRAM: i32 = 2;
pub const SOCK_RAW: i32 = 3;
pub const SOCK_SEQPACKET: i32 = 5;
pub const SOCK_NONBLOCK: i32 = 0o4000;
pub const SOCK_CLOEXEC: i32 = 0o2000000;

pub const SOL_SOCKET: i32 = 1;
pub const SO_REUSEADDR: i32 = 2;
pub const SO_TYPE: i32 = 3;
pub const SO_ERROR: i32 = 4;
pub const SO_SNDBUF: i32 = 7;
pub const SO_RCVBUF: i32 = 8;
pub const SO_KEEPALIVE: i32 = 9;
pub const SO_PASSCRED: i32 = 16;
pub const SO_PEERCRED: i32 = 17;
pub const SO_ACCEPTCONN: i32 = 30;
pub const SO_PROTOCOL: i32 = 38;
pub const SO_DOMAIN: i32 = 39;
pub const SCM_RIGHTS: i32 = 1;
pub const SCM_CREDENTIALS: i32 = 2;

pub const MSG_OOB: u32 = 1;
pub const MSG_PEEK: u32 = 2;
pub const MSG_DONTROUTE: u32 = 4;
pub const MSG_CTRUNC: u32 = 8;
pub const MSG_TRUNC: u32 = 0x20;
pub const MSG_DONTWAIT: u32 = 0x40;
pub const MSG_EOR: u32 = 0x80;
pub const MSG_WAITALL: u32 = 0x100;
pub const MSG_NOSIGNAL: u32 = 0x4000;
/// recvmmsg: block for the first message only.
pub const MSG_WAITFORONE: u32 = 0x1_0000;
pub const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;

pub const SHUT_RD: i32 = 0;
pub const SHUT_WR: i32 = 1;
pub const SHUT_RDWR: i32 = 2;

/// Credentials attached to a Unix socket message (SCM_CREDENTIALS) or a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// A message as the syscall layer hands it to a socket.
pub struct SendMsg {
    pub data: Vec<u8>,
    /// Destination address (sendto/sendmsg), raw sockaddr bytes.
    pub addr: Option<Vec<u8>>,
    pub files: Vec<Arc<File>>,
    pub creds: Option<Ucred>,
    pub flags: u32,
}

/// What a receive returns.
#[derive(Default)]
pub struct RecvMsg {
    pub data: Vec<u8>,
    /// Full length of the datagram (for MSG_TRUNC reporting).
    pub full_len: usize,
    pub addr: Option<Vec<u8>>,
    pub files: Vec<Arc<File>>,
    pub creds: Option<Ucred>,
    pub flags: u32,
}

/// Operations every socket family implements.
pub trait Socket: FileOps {
    fn bind(&self, task: &Task, addr: &[u8]) -> Result<(), Errno>;
    fn connect(&self, task: &Task, addr: &[u8], nonblock: bool) -> Result<(), Errno>;
    fn listen(&self, backlog: i32) -> Result<(), Errno>;
    /// A connected socket for the next pending connection and the peer's address.
    fn accept(&self, task: &Task, nonblock: bool) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno>;
    fn send(&self, task: &Task, msg: SendMsg, nonblock: bool) -> Result<usize, Errno>;
    fn recv(&self, task: &Task, len: usize, flags: u32, nonblock: bool) -> Result<RecvMsg, Errno>;
    fn shutdown(&self, how: i32) -> Result<(), Errno>;
    fn local_addr(&self) -> Result<Vec<u8>, Errno>;
    fn peer_addr(&self) -> Result<Vec<u8>, Errno>;
    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno>;
    fn getsockopt(&self, task: &Task, level: i32, name: i32, len: usize) -> Result<Vec<u8>, Errno>;
    fn into_ops(self: Arc<Self>) -> Arc<dyn FileOps>;
    fn ioctl_socket(&self, _task: &Task, _cmd: u32, _arg: u64) -> SysResult {
        Err(Errno::ENOTTY)
    }
}

/// Finds the socket behind an open file.
pub fn socket_of(file: &File) -> Result<&dyn Socket, Errno> {
    let any = file.ops.as_any();
    if let Some(s) = any.downcast_ref::<unix::UnixSocket>() {
        return Ok(s);
    }
    if let Some(s) = any.downcast_ref::<inet::InetSocket>() {
        return Ok(s);
    }
    Err(Errno::ENOTSOCK)
}

pub fn int_opt(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}
