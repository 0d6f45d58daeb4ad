//! AF_UNIX sockets (stream, datagram, seqpacket), entirely inside the Sentry. Path addresses
//! are socket inodes of the sandbox's own VFS: binding never creates anything on the host.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use super::*;
use crate::abi::stat::{FileType, S_IFSOCK, Stat, Timespec};
use crate::kernel::signal::send::sigpipe_current;
use crate::vfs::inode::Owner;
use crate::vfs::path::Resolver;
use crate::waiter::{Events, WaitQueue};

/// Bytes a connection buffers in each direction (Linux's default socket buffer).
const BUFFER: usize = 212_992;
const MAX_DGRAM_QUEUE: usize = 512;
const UNIX_PATH_MAX: usize = 108;

struct Record {
    data: Vec<u8>,
    files: Vec<Arc<File>>,
    creds: Option<Ucred>,
    from: Option<Vec<u8>>,
}

#[derive(Default)]
struct ChanState {
    records: VecDeque<Record>,
    bytes: usize,
    writer_closed: bool,
    reader_closed: bool,
}

/// One direction of a connection, or a datagram socket's receive queue.
#[derive(Default)]
struct Channel {
    st: Mutex<ChanState>,
}

impl Channel {
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, ChanState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Role {
    Idle,
    Listening {
        backlog: VecDeque<Arc<UnixSocket>>,
        max: usize,
    },
    Connected {
        rx: Arc<Channel>,
        tx: Arc<Channel>,
        peer_queue: Arc<WaitQueue>,
        peer_addr: Vec<u8>,
        peer_cred: Ucred,
    },
}

struct State {
    bound: Option<Vec<u8>>,
    role: Role,
    /// Datagram sockets: where received messages queue, and the default destination.
    rx: Arc<Channel>,
    dgram_peer: Option<Weak<UnixSocket>>,
    shut_rd: bool,
    shut_wr: bool,
    passcred: bool,
}

pub struct UnixSocket {
    me: Weak<UnixSocket>,
    kind: i32,
    state: Mutex<State>,
    queue: Arc<WaitQueue>,
    cred: Ucred,
    ino: u64,
}

/// Binding of a path-named socket inode (its attachment) or an abstract name.
struct Binding {
    socket: Weak<UnixSocket>,
}

static ABSTRACT: Mutex<Option<HashMap<Vec<u8>, Weak<UnixSocket>>>> = Mutex::new(None);

fn family_only() -> Vec<u8> {
    (AF_UNIX as u16).to_le_bytes().to_vec()
}

/// The name part of a sockaddr_un (bytes after the family), validated.
fn parse_addr(addr: &[u8]) -> Result<&[u8], Errno> {
    if addr.len() < 2 || u16::from_le_bytes([addr[0], addr[1]]) != AF_UNIX as u16 {
        return Err(Errno::EINVAL);
    }
    let name = &addr[2..];
    if name.is_empty() || name.len() > UNIX_PATH_MAX {
        return Err(Errno::EINVAL);
    }
    if name[0] == 0 {
        return Ok(name);
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(&name[..end])
}

fn addr_bytes(name: &[u8]) -> Vec<u8> {
    let mut v = family_only();
    v.extend_from_slice(name);
    if name.first() != Some(&0) {
        v.push(0);
    }
    v
}

impl UnixSocket {
    pub fn new(kind: i32, cred: Ucred) -> Arc<UnixSocket> {
        Arc::new_cyclic(|me| UnixSocket {
            me: me.clone(),
            kind,
            state: Mutex::new(State {
                bound: None,
                role: Role::Idle,
                rx: Arc::new(Channel::default()),
                dgram_peer: None,
                shut_rd: false,
                shut_wr: false,
                passcred: false,
            }),
            queue: Arc::new(WaitQueue::new()),
            cred,
            ino: crate::vfs::fs::synthetic::alloc_ino(),
        })
    }

    /// A connected pair (socketpair).
    pub fn pair(kind: i32, cred: Ucred) -> (Arc<UnixSocket>, Arc<UnixSocket>) {
        let a = UnixSocket::new(kind, cred);
        let b = UnixSocket::new(kind, cred);
        Self::join(&a, &b, family_only(), family_only());
        (a, b)
    }

    fn join(a: &Arc<UnixSocket>, b: &Arc<UnixSocket>, a_peer_addr: Vec<u8>, b_peer_addr: Vec<u8>) {
        let (ab, ba) = (Arc::new(Channel::default()), Arc::new(Channel::default()));
        if a.kind == SOCK_DGRAM {
            a.lock().dgram_peer = Some(Arc::downgrade(b));
            b.lock().dgram_peer = Some(Arc::downgrade(a));
            return;
        }
        a.lock().role = Role::Connected {
            rx: ba.clone(),
            tx: ab.clone(),
            peer_queue: b.queue.clone(),
            peer_addr: a_peer_addr,
            peer_cred: b.cred,
        };
        b.lock().role = Role::Connected {
            rx: ab,
            tx: ba,
            peer_queue: a.queue.clone(),
            peer_addr: b_peer_addr,
            peer_cred: a.cred,
        };
    }

    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The receive and send channels of a connection and the peer's wait queue.
    #[allow(clippy::type_complexity)]
    fn connected(&self) -> Result<(Arc<Channel>, Arc<Channel>, Arc<WaitQueue>), Errno> {
        match &self.lock().role {
            Role::Connected { rx, tx, peer_queue, .. } => {
                Ok((rx.clone(), tx.clone(), peer_queue.clone()))
            }
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// Finds the socket bound to `addr`.
    fn lookup(task: &Task, addr: &[u8]) -> Result<Arc<UnixSocket>, Errno> {
        let name = parse_addr(addr)?;
        if name[0] == 0 {
            let map = ABSTRACT.lock().unwrap_or_else(|e| e.into_inner());
            return map
                .as_ref()
                .and_then(|m| m.get(name))
                .and_then(|w| w.upgrade())
                .ok_or(Errno::ECONNREFUSED);
        }
        let fs = task.fs();
        let r = Resolver { ctx: task, root: fs.root(), start: fs.cwd() };
        let loc = r.resolve(name, crate::vfs::path::Last::Follow)?;
        if loc.inode.file_type() != FileType::Socket {
            return Err(Errno::ECONNREFUSED);
        }
        let cr = task.creds();
        if !cr.may_access(&loc.inode.stat()?, 2) {
            return Err(Errno::EACCES);
        }
        let slot = loc.inode.attachment().ok_or(Errno::ECONNREFUSED)?;
        let a =
            slot.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Errno::ECONNREFUSED)?;
        let b = a.downcast::<Binding>().map_err(|_| Errno::ECONNREFUSED)?;
        b.socket.upgrade().ok_or(Errno::ECONNREFUSED)
    }

    fn send_dgram(&self, task: &Task, msg: SendMsg) -> Result<usize, Errno> {
        let target = match &msg.addr {
            Some(a) => UnixSocket::lookup(task, a)?,
            None => {
                self.lock().dgram_peer.as_ref().and_then(|w| w.upgrade()).ok_or(Errno::ENOTCONN)?
            }
        };
        if target.kind != self.kind {
            return Err(Errno::EPROTOTYPE);
        }
        let from = self.lock().bound.clone();
        let n = msg.data.len();
        if n > BUFFER {
            return Err(Errno::EMSGSIZE);
        }
        let rx = target.lock().rx.clone();
        {
            let mut st = rx.lock();
            if st.records.len() >= MAX_DGRAM_QUEUE {
                return Err(Errno::EAGAIN);
            }
            st.bytes += n;
            st.records.push_back(Record {
                data: msg.data,
                files: msg.files,
                creds: msg.creds,
                from,
            });
        }
        target.queue.notify(Events::IN);
        Ok(n)
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Role::Connected { rx, tx, peer_queue, .. } = &st.role {
            rx.lock().reader_closed = true;
            tx.lock().writer_closed = true;
            peer_queue.notify_all();
        }
        if let Some(b) = &st.bound
            && b.get(2) == Some(&0)
            && let Some(m) = ABSTRACT.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
        {
            m.remove(&b[2..]);
        }
    }
}

impl FileOps for UnixSocket {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        let m = self.recv(task_of(ctx)?, buf.len(), 0, nonblock)?;
        buf[..m.data.len()].copy_from_slice(&m.data);
        Ok(m.data.len())
    }

    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        let msg =
            SendMsg { data: data.to_vec(), addr: None, files: Vec::new(), creds: None, flags: 0 };
        self.send(task_of(ctx)?, msg, nonblock)
    }

    fn readiness(&self) -> Events {
        let st = self.lock();
        let mut ev = Events::default();
        match &st.role {
            Role::Listening { backlog, .. } => {
                if !backlog.is_empty() {
                    ev = ev | Events::IN;
                }
            }
            Role::Connected { rx, tx, .. } => {
                let r = rx.lock();
                if !r.records.is_empty() || r.writer_closed || st.shut_rd {
                    ev = ev | Events::IN | Events::RDNORM;
                }
                if r.writer_closed {
                    ev = ev | Events::RDHUP;
                }
                drop(r);
                let t = tx.lock();
                if t.reader_closed || st.shut_wr {
                    if st.shut_rd || rx.lock().writer_closed {
                        ev = ev | Events::HUP;
                    }
                } else if t.bytes < BUFFER {
                    ev = ev | Events::OUT | Events::WRNORM;
                }
            }
            Role::Idle => {
                if self.kind == SOCK_DGRAM {
                    if !st.rx.lock().records.is_empty() {
                        ev = ev | Events::IN;
                    }
                    ev = ev | Events::OUT;
                } else {
                    ev = ev | Events::OUT | Events::HUP;
                }
            }
        }
        ev
    }

    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.queue.clone())
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let now = Timespec::now();
        Ok(Stat {
            dev: crate::abi::stat::makedev(0, 8),
            ino: self.ino,
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
        if cmd != FIONREAD {
            return Err(Errno::ENOTTY);
        }
        // One guard at a time: the state's, then a channel's.
        let connected = match &self.lock().role {
            Role::Connected { rx, .. } => Some(rx.clone()),
            _ => None,
        };
        let n = match connected {
            Some(rx) => rx.lock().bytes,
            None => self.lock_rx_bytes(),
        } as u32;
        ctx.copy_out(arg, &n.to_le_bytes())?;
        Ok(0)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl UnixSocket {
    fn lock_rx_bytes(&self) -> usize {
        let rx = self.lock().rx.clone();
        rx.lock().records.front().map(|r| r.data.len()).unwrap_or(0)
    }
}

impl Socket for UnixSocket {
    fn bind(&self, task: &Task, addr: &[u8]) -> Result<(), Errno> {
        let name = parse_addr(addr)?.to_vec();
        if self.lock().bound.is_some() {
            return Err(Errno::EINVAL);
        }
        let me = self.me.upgrade().ok_or(Errno::EBADF)?;
        if name[0] == 0 {
            let mut map = ABSTRACT.lock().unwrap_or_else(|e| e.into_inner());
            let m = map.get_or_insert_with(HashMap::new);
            if m.get(&name).is_some_and(|w| w.upgrade().is_some()) {
                return Err(Errno::EADDRINUSE);
            }
            m.insert(name.clone(), Arc::downgrade(&me));
        } else {
            let fs = task.fs();
            let r = Resolver { ctx: task, root: fs.root(), start: fs.cwd() };
            let (dir, last, _) = r.resolve_parent(&name)?;
            let last = last.ok_or(Errno::EADDRINUSE)?;
            if dir.inode.lookup(&last).is_ok() {
                return Err(Errno::EADDRINUSE);
            }
            let cr = task.creds();
            if dir.mount.read_only || dir.inode.read_only() {
                return Err(Errno::EROFS);
            }
            if !cr.may_access(&dir.inode.stat()?, 3) {
                return Err(Errno::EACCES);
            }
            let umask = fs.umask();
            let inode = dir.inode.create(
                &last,
                FileType::Socket,
                0o777 & !umask,
                0,
                Owner { uid: cr.fsuid, gid: cr.fsgid },
            )?;
            task.kernel.notify.on_created(&*dir.inode, &last, &*inode);
            let slot = inode.attachment().ok_or(Errno::EPERM)?;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Arc::new(Binding { socket: Arc::downgrade(&me) }));
        }
        self.lock().bound = Some(addr_bytes(&name));
        Ok(())
    }

    fn connect(&self, task: &Task, addr: &[u8], _nonblock: bool) -> Result<(), Errno> {
        let target = UnixSocket::lookup(task, addr)?;
        if target.kind != self.kind {
            return Err(Errno::EPROTOTYPE);
        }
        let me = self.me.upgrade().ok_or(Errno::EBADF)?;
        if self.kind == SOCK_DGRAM {
            self.lock().dgram_peer = Some(Arc::downgrade(&target));
            return Ok(());
        }
        if matches!(self.lock().role, Role::Connected { .. }) {
            return Err(Errno::EISCONN);
        }
        let server_side = UnixSocket::new(self.kind, target.cred);
        {
            let mut ts = target.lock();
            let target_addr = ts.bound.clone().unwrap_or_else(family_only);
            let Role::Listening { backlog, max } = &mut ts.role else {
                return Err(Errno::ECONNREFUSED);
            };
            if backlog.len() >= *max {
                return Err(Errno::EAGAIN);
            }
            let my_addr = self.lock().bound.clone().unwrap_or_else(family_only);
            UnixSocket::join(&me, &server_side, target_addr.clone(), my_addr);
            server_side.lock().bound = Some(target_addr);
            backlog.push_back(server_side);
        }
        target.queue.notify(Events::IN);
        Ok(())
    }

    fn listen(&self, backlog: i32) -> Result<(), Errno> {
        if self.kind == SOCK_DGRAM {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut st = self.lock();
        if st.bound.is_none() {
            return Err(Errno::EINVAL);
        }
        let max = backlog.clamp(1, 4096) as usize;
        match &mut st.role {
            Role::Idle => st.role = Role::Listening { backlog: VecDeque::new(), max },
            Role::Listening { max: m, .. } => *m = max,
            Role::Connected { .. } => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    fn accept(&self, task: &Task, nonblock: bool) -> Result<(Arc<dyn Socket>, Vec<u8>), Errno> {
        loop {
            let _r = self.queue.register(&task.waker, Events::IN);
            {
                let mut st = self.lock();
                let Role::Listening { backlog, .. } = &mut st.role else {
                    return Err(Errno::EINVAL);
                };
                if let Some(s) = backlog.pop_front() {
                    let peer = match &s.lock().role {
                        Role::Connected { peer_addr, .. } => peer_addr.clone(),
                        _ => family_only(),
                    };
                    return Ok((s as Arc<dyn Socket>, peer));
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            task.block(None)?;
        }
    }

    fn send(&self, task: &Task, msg: SendMsg, nonblock: bool) -> Result<usize, Errno> {
        if self.lock().shut_wr {
            if msg.flags & MSG_NOSIGNAL == 0 {
                sigpipe_current();
            }
            return Err(Errno::EPIPE);
        }
        if self.kind == SOCK_DGRAM {
            return self.send_dgram(task, msg);
        }
        if msg.addr.is_some() && !matches!(self.lock().role, Role::Connected { .. }) {
            return Err(Errno::EOPNOTSUPP);
        }
        let (_rx, tx, peer_queue) = self.connected()?;
        let total = msg.data.len();
        if self.kind == SOCK_SEQPACKET && total > BUFFER {
            return Err(Errno::EMSGSIZE);
        }
        let mut files = Some(msg.files);
        let mut creds = msg.creds;
        let mut sent = 0;
        loop {
            let _r = self.queue.register(&task.waker, Events::OUT);
            {
                let mut st = tx.lock();
                if st.reader_closed {
                    drop(st);
                    if msg.flags & MSG_NOSIGNAL == 0 {
                        sigpipe_current();
                    }
                    return if sent > 0 { Ok(sent) } else { Err(Errno::EPIPE) };
                }
                let free = BUFFER.saturating_sub(st.bytes);
                let need = if self.kind == SOCK_SEQPACKET {
                    total
                } else {
                    (total - sent).min(free).max(usize::from(total == 0))
                };
                if free >= need && (need > 0 || total == 0) {
                    let chunk = msg.data[sent..sent + need.min(total - sent)].to_vec();
                    let n = chunk.len();
                    st.bytes += n;
                    st.records.push_back(Record {
                        data: chunk,
                        files: files.take().unwrap_or_default(),
                        creds: creds.take(),
                        from: None,
                    });
                    sent += n;
                    drop(st);
                    peer_queue.notify(Events::IN);
                    if sent >= total {
                        return Ok(sent);
                    }
                    continue;
                }
            }
            if nonblock || msg.flags & MSG_DONTWAIT != 0 {
                return if sent > 0 { Ok(sent) } else { Err(Errno::EAGAIN) };
            }
            if let Err(e) = task.block(None) {
                return if sent > 0 { Ok(sent) } else { Err(e) };
            }
        }
    }

    fn recv(&self, task: &Task, len: usize, flags: u32, nonblock: bool) -> Result<RecvMsg, Errno> {
        let nonblock = nonblock || flags & MSG_DONTWAIT != 0;
        let peek = flags & MSG_PEEK != 0;
        // The state's guard must be gone before `lock_rx` takes it again: a guard kept alive
        // by the match scrutinee deadlocked unconnected datagram sockets on their own lock.
        let connected = match &self.lock().role {
            Role::Connected { rx, peer_queue, .. } => {
                Some((rx.clone(), Some(peer_queue.clone()), self.kind == SOCK_STREAM))
            }
            Role::Idle if self.kind == SOCK_DGRAM => None,
            Role::Idle | Role::Listening { .. } => {
                return if self.kind == SOCK_STREAM {
                    Err(Errno::EINVAL)
                } else {
                    Err(Errno::ENOTCONN)
                };
            }
        };
        let (rx, peer_queue, stream) = match connected {
            Some(c) => c,
            None => (self.lock_rx(), None, false),
        };
        let mut out = RecvMsg::default();
        loop {
            let _r = self.queue.register(&task.waker, Events::IN);
            {
                let mut st = rx.lock();
                if !st.records.is_empty() {
                    if stream {
                        // Gather across records, stopping before one that carries descriptors.
                        while out.data.len() < len {
                            let st = &mut *st;
                            let Some(rec) = st.records.front_mut() else { break };
                            if !out.data.is_empty()
                                && (!rec.files.is_empty() || rec.creds.is_some())
                            {
                                break;
                            }
                            let take = (len - out.data.len()).min(rec.data.len());
                            out.data.extend_from_slice(&rec.data[..take]);
                            if out.files.is_empty() && !peek {
                                out.files = std::mem::take(&mut rec.files);
                            }
                            out.creds = out.creds.or(rec.creds);
                            if peek {
                                break;
                            }
                            rec.data.drain(..take);
                            st.bytes -= take;
                            if rec.data.is_empty() {
                                st.records.pop_front();
                            }
                        }
                        out.full_len = out.data.len();
                    } else {
                        let rec = if peek {
                            let r = st.records.front().ok_or(Errno::EAGAIN)?;
                            Record {
                                data: r.data.clone(),
                                files: Vec::new(),
                                creds: r.creds,
                                from: r.from.clone(),
                            }
                        } else {
                            let r = st.records.pop_front().ok_or(Errno::EAGAIN)?;
                            st.bytes -= r.data.len();
                            r
                        };
                        out.full_len = rec.data.len();
                        if rec.data.len() > len {
                            out.flags |= MSG_TRUNC;
                        }
                        out.data = rec.data[..rec.data.len().min(len)].to_vec();
                        out.files = rec.files;
                        out.creds = rec.creds;
                        out.addr = rec.from;
                    }
                    drop(st);
                    if let Some(q) = &peer_queue {
                        q.notify(Events::OUT);
                    }
                    if stream && flags & MSG_WAITALL != 0 && out.data.len() < len && !peek {
                        continue;
                    }
                    return Ok(out);
                }
                if st.writer_closed || self.lock().shut_rd || len == 0 {
                    return Ok(out);
                }
            }
            if nonblock {
                return if out.data.is_empty() { Err(Errno::EAGAIN) } else { Ok(out) };
            }
            if let Err(e) = task.block(None) {
                return if out.data.is_empty() { Err(e) } else { Ok(out) };
            }
        }
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        if !(SHUT_RD..=SHUT_RDWR).contains(&how) {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        let Role::Connected { rx, tx, peer_queue, .. } = &st.role else {
            return Err(Errno::ENOTCONN);
        };
        let (rx, tx, q) = (rx.clone(), tx.clone(), peer_queue.clone());
        if how != SHUT_WR {
            st.shut_rd = true;
            rx.lock().reader_closed = true;
        }
        if how != SHUT_RD {
            st.shut_wr = true;
            tx.lock().writer_closed = true;
        }
        drop(st);
        q.notify_all();
        self.queue.notify_all();
        Ok(())
    }

    fn local_addr(&self) -> Result<Vec<u8>, Errno> {
        Ok(self.lock().bound.clone().unwrap_or_else(family_only))
    }

    fn peer_addr(&self) -> Result<Vec<u8>, Errno> {
        // Read under one guard, act after it is gone: the peer's address takes the peer's lock.
        let peer = {
            let st = self.lock();
            match &st.role {
                Role::Connected { peer_addr, .. } => return Ok(peer_addr.clone()),
                _ => st.dgram_peer.as_ref().and_then(|w| w.upgrade()),
            }
        };
        match peer {
            Some(p) => p.local_addr(),
            None => Err(Errno::ENOTCONN),
        }
    }

    fn setsockopt(&self, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
        if level != SOL_SOCKET {
            return Err(Errno::ENOPROTOOPT);
        }
        if name == SO_PASSCRED {
            let on = value
                .get(..4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 0)
                .unwrap_or(false);
            self.lock().passcred = on;
        }
        Ok(())
    }

    fn getsockopt(
        &self,
        _task: &Task,
        level: i32,
        name: i32,
        _len: usize,
    ) -> Result<Vec<u8>, Errno> {
        if level != SOL_SOCKET {
            return Err(Errno::ENOPROTOOPT);
        }
        Ok(match name {
            SO_TYPE => int_opt(self.kind),
            SO_DOMAIN => int_opt(AF_UNIX),
            SO_PROTOCOL | SO_ERROR => int_opt(0),
            SO_ACCEPTCONN => int_opt(i32::from(matches!(self.lock().role, Role::Listening { .. }))),
            SO_SNDBUF | SO_RCVBUF => int_opt(BUFFER as i32),
            SO_PASSCRED => int_opt(i32::from(self.lock().passcred)),
            SO_PEERCRED => {
                let c = match &self.lock().role {
                    Role::Connected { peer_cred, .. } => *peer_cred,
                    _ => return Err(Errno::ENOTCONN),
                };
                // The peer's id as the reader's PID namespace names it (0 from outside).
                let pid = crate::kernel::task::current().map_or(c.pid, |t| t.pid_seen(c.pid));
                let mut v = pid.to_le_bytes().to_vec();
                v.extend(c.uid.to_le_bytes());
                v.extend(c.gid.to_le_bytes());
                v
            }
            _ => int_opt(0),
        })
    }

    fn into_ops(self: Arc<Self>) -> Arc<dyn FileOps> {
        self
    }
}

impl UnixSocket {
    fn lock_rx(&self) -> Arc<Channel> {
        self.lock().rx.clone()
    }
}
