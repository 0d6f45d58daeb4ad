//! Sockets: creation, addressing, connections, messages (with SCM_RIGHTS), options.

use std::sync::Arc;

use super::Call;
use super::sys_file::{gather, read_iovecs, scatter};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::{O_NONBLOCK, O_RDWR};
use crate::kernel::socket::inet::InetSocket;
use crate::kernel::socket::unix::UnixSocket;
use crate::kernel::socket::*;
use crate::vfs::file::File;

fn ucred(c: &Call) -> Ucred {
    let cr = c.task.creds();
    Ucred { pid: c.task.tgid(), uid: cr.uid, gid: cr.gid }
}

fn install(c: &Call, sock: Arc<dyn Socket>, flags: i32) -> Result<i32, Errno> {
    let name = format!("socket:[{}]", sock.stat().map(|s| s.ino).unwrap_or(0)).into_bytes();
    let status = if flags & SOCK_NONBLOCK != 0 { O_NONBLOCK } else { 0 };
    let file = File::new(sock.into_ops(), O_RDWR | status, None, name);
    c.task.files().install(file, flags & SOCK_CLOEXEC != 0, 0, c.nofile_limit())
}

fn new_socket(c: &Call, family: i32, kind: i32, protocol: i32) -> Result<Arc<dyn Socket>, Errno> {
    match family {
        AF_UNIX => {
            if !matches!(kind, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) {
                return Err(Errno::ESOCKTNOSUPPORT);
            }
            if protocol != 0 {
                return Err(Errno::EPROTONOSUPPORT);
            }
            Ok(UnixSocket::new(kind, ucred(c)))
        }
        AF_INET | AF_INET6 => Ok(InetSocket::new(family, kind, protocol)?),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

pub fn socket(c: &mut Call) -> SysResult {
    let (family, ty, protocol) = (c.arg_i32(0), c.arg_i32(1), c.arg_i32(2));
    let kind = ty & 0xf;
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let s = new_socket(c, family, kind, protocol)?;
    install(c, s, ty).map(|fd| fd as u64)
}

pub fn socketpair(c: &mut Call) -> SysResult {
    let (family, ty, protocol) = (c.arg_i32(0), c.arg_i32(1), c.arg_i32(2));
    if family != AF_UNIX {
        return Err(Errno::EOPNOTSUPP);
    }
    let kind = ty & 0xf;
    if !matches!(kind, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) || protocol != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let (a, b) = UnixSocket::pair(kind, ucred(c));
    let fa = install(c, a, ty)?;
    let fb = match install(c, b, ty) {
        Ok(fd) => fd,
        Err(e) => {
            drop(c.task.files().remove(fa));
            return Err(e);
        }
    };
    let mut v = fa.to_le_bytes().to_vec();
    v.extend(fb.to_le_bytes());
    if let Err(e) = c.write_bytes(c.args[3], &v) {
        drop(c.task.files().remove(fa));
        drop(c.task.files().remove(fb));
        return Err(e);
    }
    Ok(0)
}

fn sock_file(c: &Call, fd: i32) -> Result<Arc<File>, Errno> {
    let f = c.file(fd)?;
    socket_of(&f)?;
    Ok(f)
}

fn read_addr(c: &Call, addr: u64, len: u64) -> Result<Vec<u8>, Errno> {
    if len > 128 {
        return Err(Errno::EINVAL);
    }
    c.read_bytes(addr, len as usize)
}

/// Writes an address back with the value-result length protocol.
fn write_addr(c: &Call, addr: u64, len_ptr: u64, value: &[u8]) -> Result<(), Errno> {
    if addr == 0 || len_ptr == 0 {
        return Ok(());
    }
    let cap = c.read_u32(len_ptr)? as i32;
    if cap < 0 {
        return Err(Errno::EINVAL);
    }
    let n = value.len().min(cap as usize);
    c.write_bytes(addr, &value[..n])?;
    c.write_bytes(len_ptr, &(value.len() as u32).to_le_bytes())
}

pub fn bind(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let addr = read_addr(c, c.args[1], c.args[2])?;
    socket_of(&f)?.bind(c.task, &addr)?;
    Ok(0)
}

pub fn connect(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let addr = read_addr(c, c.args[1], c.args[2])?;
    socket_of(&f)?.connect(c.task, &addr, f.nonblocking())?;
    Ok(0)
}

pub fn listen(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    socket_of(&f)?.listen(c.arg_i32(1))?;
    Ok(0)
}

fn do_accept(c: &mut Call, flags: i32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let f = sock_file(c, c.arg_i32(0))?;
    let (s, peer) = socket_of(&f)?.accept(c.task, f.nonblocking())?;
    let fd = install(c, s, flags)?;
    if let Err(e) = write_addr(c, c.args[1], c.args[2], &peer) {
        drop(c.task.files().remove(fd));
        return Err(e);
    }
    Ok(fd as u64)
}

pub fn accept(c: &mut Call) -> SysResult {
    do_accept(c, 0)
}

pub fn accept4(c: &mut Call) -> SysResult {
    do_accept(c, c.arg_i32(3))
}

pub fn sendto(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let data = c.read_bytes(c.args[1], (c.args[2] as usize).min(16 << 20))?;
    let addr = if c.args[4] != 0 { Some(read_addr(c, c.args[4], c.args[5])?) } else { None };
    let msg = SendMsg { data, addr, files: Vec::new(), creds: None, flags: c.arg_u32(3) };
    socket_of(&f)?.send(c.task, msg, f.nonblocking()).map(|n| n as u64)
}

pub fn recvfrom(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let flags = c.arg_u32(3);
    let m = socket_of(&f)?.recv(c.task, c.args[2] as usize, flags, f.nonblocking())?;
    c.write_bytes(c.args[1], &m.data)?;
    if let Some(a) = &m.addr {
        write_addr(c, c.args[4], c.args[5], a)?;
    } else if c.args[5] != 0 {
        c.write_bytes(c.args[5], &0u32.to_le_bytes())?;
    }
    Ok(if flags & MSG_TRUNC != 0 { m.full_len } else { m.data.len() } as u64)
}

struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
}

fn read_msghdr(c: &Call, addr: u64) -> Result<MsgHdr, Errno> {
    let b = c.read_bytes(addr, 56)?;
    let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok(MsgHdr {
        name: q(0),
        namelen: q(8) as u32,
        iov: q(16),
        iovlen: q(24),
        control: q(32),
        controllen: q(40),
    })
}

pub fn sendmsg(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let (hdr, flags, nonblocking) = (c.args[1], c.arg_u32(2), f.nonblocking());
    send_one(c, &f, hdr, flags, nonblocking).map(|n| n as u64)
}

/// The size of a `struct mmsghdr`: a msghdr and the length the call fills in, padded.
const MMSGHDR: u64 = 64;
/// The most messages one sendmmsg/recvmmsg call takes (Linux's UIO_MAXIOV).
const MMSG_MAX: u64 = 1024;

/// sendmmsg(2): each message in turn; the count sent, or the first message's error.
pub fn sendmmsg(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let (vec, vlen, flags) = (c.args[1], c.args[2].min(MMSG_MAX), c.arg_u32(3));
    let mut sent = 0;
    while sent < vlen {
        let at = vec + sent * MMSGHDR;
        match send_one(c, &f, at, flags, f.nonblocking()) {
            Ok(n) => c.write_bytes(at + 56, &(n as u32).to_le_bytes())?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(sent)
}

/// recvmmsg(2): messages in turn (after the first, only those already there with
/// MSG_WAITFORONE); the count received, or the first message's error. The timeout is not
/// applied: each receive blocks as recvmsg would.
pub fn recvmmsg(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let (vec, vlen, flags) = (c.args[1], c.args[2].min(MMSG_MAX), c.arg_u32(3));
    let mut got = 0;
    while got < vlen {
        let at = vec + got * MMSGHDR;
        let nonblocking = f.nonblocking()
            || flags & MSG_DONTWAIT != 0
            || (got > 0 && flags & MSG_WAITFORONE != 0);
        match recv_one(c, &f, at, flags & !MSG_WAITFORONE, nonblocking) {
            Ok(n) => c.write_bytes(at + 56, &(n as u32).to_le_bytes())?,
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
        got += 1;
    }
    Ok(got)
}

fn send_one(
    c: &mut Call,
    f: &Arc<File>,
    hdr: u64,
    flags: u32,
    nonblocking: bool,
) -> Result<usize, Errno> {
    let h = read_msghdr(c, hdr)?;
    let iov = read_iovecs(c, h.iov, h.iovlen)?;
    let data = gather(c, &iov)?;
    let addr = if h.name != 0 && h.namelen > 0 {
        Some(read_addr(c, h.name, u64::from(h.namelen))?)
    } else {
        None
    };
    let mut files = Vec::new();
    let mut creds = None;
    if h.control != 0 && h.controllen > 0 {
        if h.controllen > 64 * 1024 {
            return Err(Errno::ENOBUFS);
        }
        let ctl = c.read_bytes(h.control, h.controllen as usize)?;
        let mut off = 0;
        while off + 16 <= ctl.len() {
            let len = u64::from_le_bytes(ctl[off..off + 8].try_into().unwrap_or([0; 8])) as usize;
            let level = i32::from_le_bytes(ctl[off + 8..off + 12].try_into().unwrap_or([0; 4]));
            let ty = i32::from_le_bytes(ctl[off + 12..off + 16].try_into().unwrap_or([0; 4]));
            if len < 16 || off + len > ctl.len() {
                return Err(Errno::EINVAL);
            }
            let payload = &ctl[off + 16..off + len];
            match (level, ty) {
                (SOL_SOCKET, SCM_RIGHTS) => {
                    if payload.len() / 4 > 253 {
                        return Err(Errno::EINVAL);
                    }
                    for ch in payload.chunks_exact(4) {
                        files.push(c.file(i32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]))?);
                    }
                }
                (SOL_SOCKET, SCM_CREDENTIALS) => {
                    // Credentials are always the sender's own, as for an unprivileged caller.
                    creds = Some(ucred(c));
                }
                _ => return Err(Errno::EINVAL),
            }
            off += len.div_ceil(8) * 8;
        }
    }
    let msg = SendMsg { data, addr, files, creds, flags };
    socket_of(f)?.send(c.task, msg, nonblocking)
}

pub fn recvmsg(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let (hdr, flags, nonblocking) = (c.args[1], c.arg_u32(2), f.nonblocking());
    recv_one(c, &f, hdr, flags, nonblocking).map(|n| n as u64)
}

fn recv_one(
    c: &mut Call,
    f: &Arc<File>,
    hdr: u64,
    flags: u32,
    nonblocking: bool,
) -> Result<usize, Errno> {
    let h = read_msghdr(c, hdr)?;
    let iov = read_iovecs(c, h.iov, h.iovlen)?;
    let want: usize = iov.iter().map(|x| x.1).sum();
    let m = socket_of(f)?.recv(c.task, want, flags, nonblocking)?;
    scatter(c, &iov, &m.data)?;
    let mut out_flags = m.flags;
    // Address.
    let namelen = match (&m.addr, h.name) {
        (Some(a), n) if n != 0 => {
            let k = a.len().min(h.namelen as usize);
            c.write_bytes(n, &a[..k])?;
            a.len() as u32
        }
        _ => 0,
    };
    // Control messages.
    let mut ctl = Vec::new();
    if let Some(cr) = m.creds {
        let mut payload = c.task.pid_seen(cr.pid).to_le_bytes().to_vec();
        payload.extend(cr.uid.to_le_bytes());
        payload.extend(cr.gid.to_le_bytes());
        push_cmsg(&mut ctl, SCM_CREDENTIALS, &payload);
    }
    let mut installed = Vec::new();
    if !m.files.is_empty() {
        let room = (h.controllen as usize).saturating_sub(ctl.len() + 16) / 4;
        let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
        for (i, file) in m.files.into_iter().enumerate() {
            if i >= room {
                out_flags |= MSG_CTRUNC;
                break;
            }
            match c.task.files().install(file, cloexec, 0, c.nofile_limit()) {
                Ok(fd) => installed.push(fd),
                Err(_) => {
                    out_flags |= MSG_CTRUNC;
                    break;
                }
            }
        }
        if !installed.is_empty() {
            let payload: Vec<u8> = installed.iter().flat_map(|fd| fd.to_le_bytes()).collect();
            push_cmsg(&mut ctl, SCM_RIGHTS, &payload);
        }
    }
    let ctl_len = if ctl.len() > h.controllen as usize {
        out_flags |= MSG_CTRUNC;
        h.controllen as usize
    } else {
        ctl.len()
    };
    if ctl_len > 0 {
        c.write_bytes(h.control, &ctl[..ctl_len])?;
    }
    let mut out = c.read_bytes(hdr, 56)?;
    out[8..12].copy_from_slice(&namelen.to_le_bytes());
    out[40..48].copy_from_slice(&(ctl_len as u64).to_le_bytes());
    out[48..52].copy_from_slice(&out_flags.to_le_bytes());
    c.write_bytes(hdr, &out)?;
    Ok(if flags & MSG_TRUNC != 0 { m.full_len } else { m.data.len() })
}

fn push_cmsg(out: &mut Vec<u8>, ty: i32, payload: &[u8]) {
    let len = 16 + payload.len();
    out.extend((len as u64).to_le_bytes());
    out.extend(SOL_SOCKET.to_le_bytes());
    out.extend(ty.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (len.div_ceil(8) * 8 - len), 0);
}

pub fn shutdown(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    socket_of(&f)?.shutdown(c.arg_i32(1))?;
    Ok(0)
}

pub fn getsockname(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let a = socket_of(&f)?.local_addr()?;
    write_addr(c, c.args[1], c.args[2], &a)?;
    Ok(0)
}

pub fn getpeername(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let a = socket_of(&f)?.peer_addr()?;
    write_addr(c, c.args[1], c.args[2], &a)?;
    Ok(0)
}

pub fn setsockopt(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let len = c.args[4] as usize;
    if len > 256 {
        return Err(Errno::EINVAL);
    }
    let v = c.read_bytes(c.args[3], len)?;
    socket_of(&f)?.setsockopt(c.arg_i32(1), c.arg_i32(2), &v)?;
    Ok(0)
}

pub fn getsockopt(c: &mut Call) -> SysResult {
    let f = sock_file(c, c.arg_i32(0))?;
    let cap = c.read_u32(c.args[4])? as i32;
    if cap < 0 {
        return Err(Errno::EINVAL);
    }
    let v = socket_of(&f)?.getsockopt(c.task, c.arg_i32(1), c.arg_i32(2), cap as usize)?;
    let n = v.len().min(cap as usize);
    c.write_bytes(c.args[3], &v[..n])?;
    c.write_bytes(c.args[4], &(n as u32).to_le_bytes())?;
    Ok(0)
}
