//! Byte ranges of a chain's buffers as host memory: copies in and out of guest buffers, and
//! positional vectored file I/O straight between a file and guest memory (no bounce buffer).

use std::fs::File;
use std::os::fd::AsRawFd;

use vm_memory::{Address, Bytes, GuestMemoryBackend};

use crate::GuestMem;
use crate::queue::Buffer;

/// The most iovecs one call takes; requests are refused long before this.
pub const MAX_IOVECS: usize = 256;

/// Maps bytes `skip..skip+take` of `bufs` to iovecs in `out`, returning how many were used.
/// The buffers were checked by [`crate::queue::gather`], so every range is mapped memory.
pub fn iovecs<'a>(
    mem: &GuestMem,
    bufs: impl Iterator<Item = &'a Buffer>,
    mut skip: u64,
    mut take: u64,
    out: &mut [libc::iovec; MAX_IOVECS],
) -> std::io::Result<usize> {
    let mut n = 0;
    for b in bufs {
        if take == 0 {
            break;
        }
        let len = u64::from(b.len);
        if skip >= len {
            skip -= len;
            continue;
        }
        let part = (len - skip).min(take);
        let slice = mem
            .get_slice(b.addr.unchecked_add(skip), part as usize)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if n == MAX_IOVECS {
            return Err(std::io::Error::other("too many segments"));
        }
        out[n] =
            libc::iovec { iov_base: slice.ptr_guard_mut().as_ptr().cast(), iov_len: part as usize };
        n += 1;
        skip = 0;
        take -= part;
    }
    if take != 0 {
        return Err(std::io::Error::other("the buffers are shorter than the request"));
    }
    Ok(n)
}

/// Copies bytes `skip..skip+out.len()` of `bufs` into `out`.
pub fn read_bytes<'a>(
    mem: &GuestMem,
    bufs: impl Iterator<Item = &'a Buffer>,
    skip: u64,
    out: &mut [u8],
) -> std::io::Result<()> {
    let mut done = 0usize;
    let mut skip = skip;
    for b in bufs {
        if done == out.len() {
            break;
        }
        let len = u64::from(b.len);
        if skip >= len {
            skip -= len;
            continue;
        }
        let part = ((len - skip) as usize).min(out.len() - done);
        mem.read_slice(&mut out[done..done + part], b.addr.unchecked_add(skip))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        done += part;
        skip = 0;
    }
    if done != out.len() {
        return Err(std::io::Error::other("the buffers are shorter than the request"));
    }
    Ok(())
}

/// Copies `data` into the buffers starting at byte `skip`.
pub fn write_bytes<'a>(
    mem: &GuestMem,
    bufs: impl Iterator<Item = &'a Buffer>,
    skip: u64,
    data: &[u8],
) -> std::io::Result<()> {
    let mut done = 0usize;
    let mut skip = skip;
    for b in bufs {
        if done == data.len() {
            break;
        }
        let len = u64::from(b.len);
        if skip >= len {
            skip -= len;
            continue;
        }
        let part = ((len - skip) as usize).min(data.len() - done);
        mem.write_slice(&data[done..done + part], b.addr.unchecked_add(skip))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        done += part;
        skip = 0;
    }
    if done != data.len() {
        return Err(std::io::Error::other("the buffers are shorter than the data"));
    }
    Ok(())
}

/// Which way [`file_io`] moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// File to guest memory.
    Read,
    /// Guest memory to file.
    Write,
}

/// Moves all of `iov` between `file` at `offset` and guest memory, retrying short transfers.
pub fn file_io(
    file: &File,
    dir: Direction,
    iov: &mut [libc::iovec],
    mut offset: u64,
) -> std::io::Result<()> {
    let mut start = 0;
    while start < iov.len() {
        let rest = &iov[start..];
        let cnt = rest.len().min(1024) as libc::c_int;
        let off = libc::off_t::try_from(offset).map_err(|_| std::io::Error::other("offset"))?;
        // SAFETY: every iovec points into mapped guest memory (checked when the chain was
        // gathered) for its length; the kernel only reads or writes within them.
        let n = unsafe {
            match dir {
                Direction::Read => libc::preadv(file.as_raw_fd(), rest.as_ptr(), cnt, off),
                Direction::Write => libc::pwritev(file.as_raw_fd(), rest.as_ptr(), cnt, off),
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        let mut n = n as usize;
        offset += n as u64;
        while start < iov.len() && n >= iov[start].iov_len {
            n -= iov[start].iov_len;
            start += 1;
        }
        if n > 0 {
            let first = &mut iov[start];
            // SAFETY: advancing within the same iovec, by less than its length.
            first.iov_base = unsafe { first.iov_base.cast::<u8>().add(n) }.cast();
            first.iov_len -= n;
        }
    }
    Ok(())
}
