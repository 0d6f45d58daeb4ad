//! I/O on file descriptors: read/write and vectors, seeking, descriptor management, fcntl (its
//! lock commands are in `sys_lock`), ioctl, fstat, getdents64, pipes, memfd.

use std::sync::Arc;

use super::Call;
use super::sys_lock::{
    F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETLK, F_SETLKW, fcntl_lock,
};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::{O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use crate::kernel::pipe::Pipe;
use crate::mm::mappable::MemObject;
use crate::vfs::file::File;

/// Largest transfer done in one read/write call.
const MAX_IO: usize = 16 << 20;

/// Allocates a transfer buffer, bounded by the size of what can be read when known.
fn io_buf(c: &Call, file: &File, count: usize) -> Vec<u8> {
    let mut n = count.min(MAX_IO);
    if file.ops.seekable()
        && let Ok(st) = file.ops.stat()
    {
        let pos = *file.offset.lock().unwrap_or_else(|e| e.into_inner());
        if st.size > 0 && st.mode & crate::abi::stat::S_IFMT == crate::abi::stat::S_IFREG {
            n = n.min((st.size as u64).saturating_sub(pos).max(1) as usize);
        }
    }
    let _ = c;
    vec![0u8; n]
}

pub fn read(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if file.ops.as_any().is::<crate::vfs::dir_file::DirFile>() {
        return Err(Errno::EISDIR);
    }
    let mut buf = io_buf(c, &file, c.args[2] as usize);
    let n = file.read(&**c.task, &mut buf)?;
    c.write_bytes(c.args[1], &buf[..n])?;
    Ok(n as u64)
}

pub fn write(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let count = (c.args[2] as usize).min(MAX_IO);
    let data = c.read_bytes(c.args[1], count)?;
    Ok(file.write(&**c.task, &data)? as u64)
}

pub fn pread64(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if (c.args[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; (c.args[2] as usize).min(MAX_IO)];
    let n = file.pread(&**c.task, &mut buf, c.args[3])?;
    c.write_bytes(c.args[1], &buf[..n])?;
    Ok(n as u64)
}

pub fn pwrite64(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if (c.args[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let data = c.read_bytes(c.args[1], (c.args[2] as usize).min(MAX_IO))?;
    Ok(file.pwrite(&**c.task, &data, c.args[3])? as u64)
}

/// Reads an iovec array: (base, len) pairs.
pub fn read_iovecs(c: &Call, addr: u64, count: u64) -> Result<Vec<(u64, usize)>, Errno> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let b = c.read_bytes(addr, count as usize * 16)?;
    let mut total: usize = 0;
    let mut v = Vec::with_capacity(count as usize);
    for ch in b.chunks_exact(16) {
        let base = u64::from_le_bytes(ch[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let len = u64::from_le_bytes(ch[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        total = total.checked_add(len as usize).ok_or(Errno::EINVAL)?;
        v.push((base, len as usize));
    }
    Ok(v)
}

/// Copies `data` out across `iov`; returns bytes placed.
pub fn scatter(c: &Call, iov: &[(u64, usize)], data: &[u8]) -> Result<usize, Errno> {
    let mut off = 0;
    for &(base, len) in iov {
        if off >= data.len() {
            break;
        }
        let n = len.min(data.len() - off);
        c.write_bytes(base, &data[off..off + n])?;
        off += n;
    }
    Ok(off)
}

pub fn gather(c: &Call, iov: &[(u64, usize)]) -> Result<Vec<u8>, Errno> {
    let total: usize = iov.iter().map(|x| x.1).sum::<usize>().min(MAX_IO);
    let mut out = Vec::with_capacity(total);
    for &(base, len) in iov {
        let n = len.min(total - out.len());
        if n == 0 {
            continue;
        }
        out.extend(c.read_bytes(base, n)?);
    }
    Ok(out)
}

fn vread(c: &mut Call, offset: Option<u64>) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let iov = read_iovecs(c, c.args[1], c.args[2])?;
    let total: usize = iov.iter().map(|x| x.1).sum::<usize>().min(MAX_IO);
    let mut buf = vec![0u8; total];
    let n = match offset {
        Some(o) => file.pread(&**c.task, &mut buf, o)?,
        None => file.read(&**c.task, &mut buf)?,
    };
    scatter(c, &iov, &buf[..n])?;
    Ok(n as u64)
}

fn vwrite(c: &mut Call, offset: Option<u64>) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let iov = read_iovecs(c, c.args[1], c.args[2])?;
    let data = gather(c, &iov)?;
    Ok(match offset {
        Some(o) => file.pwrite(&**c.task, &data, o)?,
        None => file.write(&**c.task, &data)?,
    } as u64)
}

pub fn readv(c: &mut Call) -> SysResult {
    vread(c, None)
}
pub fn writev(c: &mut Call) -> SysResult {
    vwrite(c, None)
}
pub fn preadv(c: &mut Call) -> SysResult {
    vread(c, Some(c.args[3]))
}
pub fn pwritev(c: &mut Call) -> SysResult {
    vwrite(c, Some(c.args[3]))
}
pub fn preadv2(c: &mut Call) -> SysResult {
    let off = c.args[3] as i64;
    vread(c, (off != -1).then_some(off as u64))
}
pub fn pwritev2(c: &mut Call) -> SysResult {
    let off = c.args[3] as i64;
    vwrite(c, (off != -1).then_some(off as u64))
}

pub fn lseek(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    file.seek(c.args[1] as i64, c.arg_u32(2))
}

pub fn close(c: &mut Call) -> SysResult {
    let entry = c.task.files().remove(c.arg_i32(0))?;
    drop(entry);
    Ok(0)
}

pub fn close_range(c: &mut Call) -> SysResult {
    const CLOSE_RANGE_CLOEXEC: u32 = 4;
    let (first, last, flags) = (c.arg_u32(0), c.arg_u32(1), c.arg_u32(2));
    if first > last || flags & !(CLOSE_RANGE_CLOEXEC | 2) != 0 {
        return Err(Errno::EINVAL);
    }
    drop(c.task.files().close_range(first, last, flags & CLOSE_RANGE_CLOEXEC != 0));
    Ok(0)
}

pub fn dup(c: &mut Call) -> SysResult {
    let f = c.file(c.arg_i32(0))?;
    c.install(f, false)
}

fn dup_to(c: &mut Call, old: i32, new: i32, cloexec: bool) -> SysResult {
    let f = c.file(old)?;
    let prev = c.task.files().install_at(new, f, cloexec, c.nofile_limit())?;
    drop(prev);
    Ok(new as u64)
}

pub fn dup2(c: &mut Call) -> SysResult {
    let (old, new) = (c.arg_i32(0), c.arg_i32(1));
    if old == new {
        c.file(old)?;
        return Ok(new as u64);
    }
    dup_to(c, old, new, false)
}

pub fn dup3(c: &mut Call) -> SysResult {
    let (old, new, flags) = (c.arg_i32(0), c.arg_i32(1), c.arg_u32(2));
    if old == new || flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    dup_to(c, old, new, flags & O_CLOEXEC != 0)
}

const F_DUPFD: u32 = 0;
const F_GETFD: u32 = 1;
const F_SETFD: u32 = 2;
const F_GETFL: u32 = 3;
const F_SETFL: u32 = 4;
const F_SETOWN: u32 = 8;
const F_GETOWN: u32 = 9;
const F_DUPFD_CLOEXEC: u32 = 1030;
const F_SETPIPE_SZ: u32 = 1031;
const F_GETPIPE_SZ: u32 = 1032;
const F_ADD_SEALS: u32 = 1033;
const F_GET_SEALS: u32 = 1034;
const FD_CLOEXEC: u64 = 1;

pub fn fcntl(c: &mut Call) -> SysResult {
    let fd = c.arg_i32(0);
    let files = c.task.files();
    let entry = files.get_entry(fd)?;
    match c.arg_u32(1) {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = c.arg_i32(2);
            if min < 0 || min as u64 >= c.nofile_limit() {
                return Err(Errno::EINVAL);
            }
            let cloexec = c.arg_u32(1) == F_DUPFD_CLOEXEC;
            files.install(entry.file, cloexec, min, c.nofile_limit()).map(|x| x as u64)
        }
        F_GETFD => Ok(if entry.cloexec { FD_CLOEXEC } else { 0 }),
        F_SETFD => {
            files.set_cloexec(fd, c.args[2] & FD_CLOEXEC != 0)?;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(entry.file.flags() & !O_CLOEXEC)),
        F_SETFL => {
            entry.file.set_status_flags(c.arg_u32(2));
            Ok(0)
        }
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            drop(files);
            fcntl_lock(c, entry.file, c.arg_u32(1))
        }
        F_SETOWN => Ok(0),
        F_GETOWN => Ok(0),
        F_GETPIPE_SZ => {
            if entry.file.ops.as_any().is::<crate::kernel::pipe::PipeEnd>() {
                Ok(crate::kernel::pipe::DEFAULT_CAPACITY as u64)
            } else {
                Err(Errno::EBADF)
            }
        }
        F_SETPIPE_SZ => {
            if entry.file.ops.as_any().is::<crate::kernel::pipe::PipeEnd>() {
                Ok(crate::kernel::pipe::DEFAULT_CAPACITY as u64)
            } else {
                Err(Errno::EBADF)
            }
        }
        F_ADD_SEALS | F_GET_SEALS => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

const FIONBIO: u32 = 0x5421;
const FIONCLEX: u32 = 0x5450;
const FIOCLEX: u32 = 0x5451;
const FIOASYNC: u32 = 0x5452;

pub fn ioctl(c: &mut Call) -> SysResult {
    let fd = c.arg_i32(0);
    let file = c.file(fd)?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    match c.arg_u32(1) {
        FIONBIO => {
            let on = c.read_u32(c.args[2])? != 0;
            let flags = if on { file.flags() | O_NONBLOCK } else { file.flags() & !O_NONBLOCK };
            file.set_status_flags(flags);
            Ok(0)
        }
        FIOCLEX => c.task.files().set_cloexec(fd, true).map(|_| 0),
        FIONCLEX => c.task.files().set_cloexec(fd, false).map(|_| 0),
        FIOASYNC => Ok(0),
        cmd => file.ops.ioctl(&**c.task, cmd, c.args[2]),
    }
}

pub fn fstat(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let st = match &file.location {
        Some(l) => l.inode.stat()?,
        None => file.ops.stat()?,
    };
    c.write_bytes(c.args[1], &st.to_bytes())?;
    Ok(0)
}

pub fn getdents64(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if file.is_path_only() {
        return Err(Errno::EBADF);
    }
    let cap = (c.args[2] as usize).min(1 << 20);
    let data = file.getdents(cap)?;
    c.write_bytes(c.args[1], &data)?;
    Ok(data.len() as u64)
}

pub fn ftruncate(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if (c.args[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    if !file.writable() {
        return Err(Errno::EINVAL);
    }
    file.ops.truncate(c.args[1])?;
    file.report(crate::vfs::notify::event::IN_MODIFY);
    Ok(0)
}

pub fn fsync(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    file.ops.fsync()?;
    Ok(0)
}

pub fn fallocate(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let (mode, off, len) = (c.arg_u32(1), c.args[2] as i64, c.args[3] as i64);
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    if !file.writable() {
        return Err(Errno::EBADF);
    }
    if mode != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let end = off.checked_add(len).ok_or(Errno::EFBIG)? as u64;
    let size = file.ops.stat()?.size as u64;
    if end > size {
        file.ops.truncate(end)?;
    }
    file.report(crate::vfs::notify::event::IN_MODIFY);
    Ok(0)
}

pub fn fadvise64(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    if !file.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    Ok(0)
}

fn make_pipe(c: &mut Call, addr: u64, flags: u32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | crate::abi::stat::O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let pipe = Pipe::new();
    let status = flags & O_NONBLOCK;
    let path = format!("pipe:[{}]", pipe.ino()).into_bytes();
    let r = File::new(pipe.reader(), O_RDONLY | status, None, path.clone());
    let w = File::new(pipe.writer(), O_WRONLY | status, None, path);
    let cloexec = flags & O_CLOEXEC != 0;
    let files = c.task.files();
    let rfd = files.install(r, cloexec, 0, c.nofile_limit())?;
    let wfd = match files.install(w, cloexec, 0, c.nofile_limit()) {
        Ok(fd) => fd,
        Err(e) => {
            drop(files.remove(rfd));
            return Err(e);
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&rfd.to_le_bytes());
    b[4..].copy_from_slice(&wfd.to_le_bytes());
    if let Err(e) = c.write_bytes(addr, &b) {
        drop(files.remove(rfd));
        drop(files.remove(wfd));
        return Err(e);
    }
    Ok(0)
}

pub fn pipe(c: &mut Call) -> SysResult {
    make_pipe(c, c.args[0], 0)
}

pub fn pipe2(c: &mut Call) -> SysResult {
    make_pipe(c, c.args[0], c.arg_u32(1))
}

pub fn sendfile(c: &mut Call) -> SysResult {
    let out = c.file(c.arg_i32(0))?;
    let inp = c.file(c.arg_i32(1))?;
    let count = (c.args[3] as usize).min(MAX_IO);
    let mut buf = vec![0u8; count];
    let n = if c.args[2] != 0 {
        let off = c.read_u64(c.args[2])?;
        let n = inp.pread(&**c.task, &mut buf, off)?;
        c.write_bytes(c.args[2], &(off + n as u64).to_le_bytes())?;
        n
    } else {
        inp.read(&**c.task, &mut buf)?
    };
    let mut done = 0;
    while done < n {
        let w = out.write(&**c.task, &buf[done..n])?;
        if w == 0 {
            break;
        }
        done += w;
    }
    Ok(done as u64)
}

pub fn copy_file_range(c: &mut Call) -> SysResult {
    let inp = c.file(c.arg_i32(0))?;
    let out = c.file(c.arg_i32(2))?;
    if c.args[5] != 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; (c.args[4] as usize).min(MAX_IO)];
    let n = if c.args[1] != 0 {
        let off = c.read_u64(c.args[1])?;
        let n = inp.pread(&**c.task, &mut buf, off)?;
        c.write_bytes(c.args[1], &(off + n as u64).to_le_bytes())?;
        n
    } else {
        inp.read(&**c.task, &mut buf)?
    };
    let w = if c.args[3] != 0 {
        let off = c.read_u64(c.args[3])?;
        let w = out.pwrite(&**c.task, &buf[..n], off)?;
        c.write_bytes(c.args[3], &(off + w as u64).to_le_bytes())?;
        w
    } else {
        out.write(&**c.task, &buf[..n])?
    };
    Ok(w as u64)
}

pub fn memfd_create(c: &mut Call) -> SysResult {
    const MFD_CLOEXEC: u32 = 1;
    const MFD_ALLOW_SEALING: u32 = 2;
    let flags = c.arg_u32(1);
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = c.mm().read_cstring(c.args[0], 250)?;
    let obj = Arc::new(MemObject::new(c.task.kernel.phys.clone(), 0));
    let ops = crate::vfs::fs::memfd::MemFile::new(obj);
    let mut path = b"/memfd:".to_vec();
    path.extend_from_slice(&name);
    path.extend_from_slice(b" (deleted)");
    let file = File::new(ops, O_RDWR, None, path);
    c.install(file, flags & MFD_CLOEXEC != 0)
}
