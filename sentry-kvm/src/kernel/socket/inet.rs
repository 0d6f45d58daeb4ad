//! AF_INET and AF_INET6 sockets: host sockets created by the Sentry inside the sandbox's own
//! network namespace, kept non-blocking; blocking calls wait on them with signal checks.

use std::any::Any;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::abi::stat::{S_IFSOCK, Stat, Timespec};
use crate::kernel::host_notifier;
use crate::waiter::{Events, WaitQueue};

/// How often a blocked call re-checks for signals.
const SLICE: Duration = Duration::from_millis(20);

pub struct InetSocket {
    fd: OwnedFd,
    family: i32,
    kind: i32,
    /// Told of the host socket's readiness by the host notifier (None: waiters poll).
    queue: Option<Arc<WaitQueue>>,
}

fn check(r: isize) -> Result<usize, Errno> {
    if r < 0 { Err(Errno::last_host()) } else { Ok(r as usize) }
}

fn valid_addr(family: i32, addr: &[u8]) -> Result<(), Errno> {
    if addr.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let f = i32::from(u16::from_le_bytes([addr[0], addr[1]]));
    let min = if family == AF_INET { 16 } else { 24 };
    if f != family && !(f == 0 && family == AF_INET) {
        return Err(Errno::EAFNOSUPPORT);
    }
    if addr.len() < min || addr.len() > 128 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl InetSocket {
    pub fn new(family: i32, kind: i32, protocol: i32) -> Result<Arc<InetSocket>, Errno> {
        if kind != SOCK_STREAM && kind != SOCK_DGRAM {
            return Err(Errno::ESOCKTNOSUPPORT);
        }
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(family, kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, protocol)
        };
        if fd < 0 {
            return Err(Errno::last_host());
        }
        // SAFETY: just created.
        Ok(Arc::new(InetSocket::wrap(unsafe { OwnedFd::from_raw_fd(fd) }, family, kind)))
    }

    /// A socket around host descriptor `fd`, watched by the host notifier.
    fn wrap(fd: OwnedFd, family: i32, kind: i32) -> InetSocket {
        let queue = Arc::new(WaitQueue::new());
        let watched = host_notifier::watch(fd.as_raw_fd(), &queue);
        InetSocket { fd, family, kind, queue: watched.then_some(queue) }
    }

    fn poll(&self, events: i16, timeout: Duration) -> i16 {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
        if n > 0 { p.revents } else { 0 }
    }

    /// Retries `op` until it stops saying EAGAIN, waiting for `events` in between.
    fn blocking<T>(
        &self,
        task: &Task,
        events: i16,
        nonblock: bool,
        mut op: impl FnMut() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        loop {
            match op() {
                Err(Errno::EAGAIN) if !nonblock => {}
                r => return r,
            }
            loop {
                if self.poll(events, SLICE) != 0 {
                    break;
                }
                if task.waker.interrupted() {
                    return Err(Errno::ERESTARTSYS);
                }
            }
        }
    }

    fn name(&self, peer: bool) -> Result<Vec<u8>, Errno> {
        let mut buf = [0u8; 128];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: buffer and length describe `buf`.
        let r = unsafe {
            if peer {
                libc::getpeername(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), &mut len)
            } else {
                libc::getsockname(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), &mut len)
            }
        };
        check(r as isize)?;
        Ok(buf[..(len as usize).min(buf.len())].to_vec())
    }
}

impl FileOps for InetSocket {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        let m = self.recv(task_of(ctx)?, buf.len(), 0, nonblock)?;
        buf[..m.data.len()].copy_from_slice(&m.data);
        Ok(m.data.len())
    }

    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        self.send(
            task_of(ctx)?,
            SendMsg { data: data.to_vec(), addr: None, files: Vec::new(), creds: None, flags: 0 },
            nonblock,
        )
    }

    fn readiness(&self) -> Events {
        Events(
            self.poll(libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP, Duration::ZERO) as u16 as u32
        )
    }

    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        self.queue.clone()
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let now = Timespec::now();
        Ok(Stat {
            dev: crate::abi::stat::makedev(0, 8),
            ino: self.fd.as_raw_fd() as u64,
            nlink: 1,
            mode: S_IFSOCK | 0o777,
            blksize: 4096,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        })
    }

    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> SysResult {
        const FIONREAD: u32 = 0x541b;
        const SIOCOUTQ: u32 = 0x5411;
        if cmd != FIONREAD && cmd != SIOCOUTQ {
            return Err(Errno::ENOTTY);
        }
        let mut v: libc::c_int = 0;
        // SAFETY: both ioctls write one int.
        check(unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd as _, &mut v) } as isize)?;
        ctx.copy_out(arg, &v.to_le_bytes())?;
        Ok(0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Socket for InetSocket {
    fn bind(&self, task: &Task, addr: &[u8]) -> Result<(), Errno> {
        valid_addr(self.family, addr)?;
        // Privileged ports need CAP_NET_BIND_SERVICE (Linux's default port floor of 1024; the
        // Sentry itself may bind anything in its network namespace).
        let port = u16::from_be_bytes([addr[2], addr[3]]);
        if (1..1024).contains(&port)
            && !task.creds().has_cap(crate::creds::caps::Capability::NET_BIND_SERVICE)
        {
            return Err(Errno::EACCES);
        }
        // SAFETY: `addr` is a validated sockaddr of its length.
        check(unsafe { libc::bind(self.fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) }
            as isize)
        .map(|_| ())
    }

    fn connect(&self, task: &Task, addr: &[u8], nonblock: bool) -> Result<(), Errno> {
        if addr.len() >= 2 && u16::from_le_bytes([addr[0], addr[1]]) == 0 && self.kind == SOCK_DGRAM
        {
            // AF_UNSPEC dissolves a datagram association.
            // SAFETY: as for bind.
            return check(unsafe {
                libc::connect(self.fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32)
            } as isize)
            .map(|_| ());
        }
        valid_addr(self.family, addr)?;
        // SAFETY: validated sockaddr.
        let r =
            unsafe { libc::connect(self.fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) };
        match check(r as isize) {
            Ok(_) => Ok(()),
            Err(Errno::EINPROGRESS) if !nonblock => {
                loop {
                    if self.poll(libc::POLLOUT, SLICE) != 0 {
                        break;
                    }
                    if task.waker.interrupted() {
                        return Err(Errno::EINTR);
                    }
                }
                let e = self.getsockopt(task, SOL_SOCKET, SO_ERROR, 4)?;
                let code = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                if code != 0 { Err(Errno(code)) } else { Ok(()) }
            }
            Err(e) => Err(e),
        }
    }

    fn listen(&self, backlog: i32) -> Result<(), Errno> {
        // SAFETY: plain listen(2).
        check(unsafe { libc::listen(self.fd.as_raw_fd(), backlog) } as isize).map(|_| ())
    }

    fn accept(&self, task: &Task, nonblock: bool) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        self.blocking(task, libc::POLLIN, nonblock, || {
            let mut buf = [0u8; 128];
            let mut len = buf.len() as libc::socklen_t;
            // SAFETY: buffer and length describe `buf`.
            let fd = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            let fd = check(fd as isize)? as i32;
            // SAFETY: just accepted.
            let s = InetSocket::wrap(unsafe { OwnedFd::from_raw_fd(fd) }, self.family, self.kind);
            Ok((Arc::new(s) as Arc<dyn Socket>, buf[..(len as usize).min(128)].to_vec()))
        })
    }

    fn send(&self, task: &Task, msg: SendMsg, nonblock: bool) -> Result<usize, Errno> {
        if !msg.files.is_empty() {
            return Err(Errno::EINVAL);
        }
        if let Some(a) = &msg.addr {
            valid_addr(self.family, a)?;
        }
        let flags = (msg.flags & !(MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) as i32 | libc::MSG_NOSIGNAL;
        let nonblock = nonblock || msg.flags & MSG_DONTWAIT != 0;
        let r = self.blocking(task, libc::POLLOUT, nonblock, || {
            let (p, l) = msg
                .addr
                .as_ref()
                .map(|a| (a.as_ptr(), a.len() as u32))
                .unwrap_or((std::ptr::null(), 0));
            // SAFETY: data and optional address buffers are valid for the call.
            check(unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.data.as_ptr().cast(),
                    msg.data.len(),
                    flags,
                    p.cast(),
                    l,
                )
            })
        });
        if r == Err(Errno::EPIPE) && msg.flags & MSG_NOSIGNAL == 0 {
            crate::kernel::signal::send::sigpipe_current();
        }
        r
    }

    fn recv(&self, task: &Task, len: usize, flags: u32, nonblock: bool) -> Result<RecvMsg, Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        let hflags = (flags & (MSG_PEEK | MSG_TRUNC | MSG_WAITALL | MSG_OOB)) as i32;
        let len = len.min(16 << 20);
        self.blocking(task, libc::POLLIN, nonblock, || {
            let mut data = vec![0u8; len];
            let mut addr = [0u8; 128];
            let mut alen = addr.len() as libc::socklen_t;
            // SAFETY: buffers and lengths describe `data` and `addr`.
            let n = check(unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    data.as_mut_ptr().cast(),
                    len,
                    hflags,
                    addr.as_mut_ptr().cast(),
                    &mut alen,
                )
            })?;
            let full_len = n;
            data.truncate(n.min(len));
            let addr = (alen > 0).then(|| addr[..(alen as usize).min(128)].to_vec());
            Ok(RecvMsg { data, full_len, addr, ..Default::default() })
        })
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        // SAFETY: plain shutdown(2).
        check(unsafe { libc::shutdown(self.fd.as_raw_fd(), how) } as isize).map(|_| ())
    }

    fn local_addr(&self) -> Result<Vec<u8>, Errno> {
        self.name(false)
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        self.name(true)
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        if value.len() > 256 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: the value buffer is valid for its length; the host validates the option.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                value.as_ptr().cast(),
                value.len() as u32,
            )
        } as isize)
        .map(|_| ())
    }

    fn getsockopt(
        &self,
        _task: &Task,
        level: i32,
        name: i32,
        len: usize,
    ) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; len.clamp(4, 256)];
        let mut l = buf.len() as libc::socklen_t;
        // SAFETY: buffer and length describe `buf`.
        check(unsafe {
            libc::getsockopt(self.fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut l)
        } as isize)?;
        buf.truncate(l as usize);
        Ok(buf)
    }

    fn into_ops(self: Arc<Self>) -> Arc<dyn FileOps> {
        self
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        // Before the descriptor closes: its number may be reused at once.
        if self.queue.is_some() {
            host_notifier::unwatch(self.fd.as_raw_fd());
        }
    }
}
