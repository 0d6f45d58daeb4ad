//! The Gofer process: serves one root directory over the protocol until the Sentry hangs up.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::protocol::{DirEntry, Handle, Request, Response};
use super::wire;
use crate::abi::stat::{Stat, Timespec};

/// Entries sent per ReadDir answer (keeps messages well under the size limit).
const ENTRIES_PER_MESSAGE: usize = 512;

struct Node {
    fd: OwnedFd,
    /// Parent handle and name, to reopen regular files for reading.
    parent: Option<(Handle, Vec<u8>)>,
    stat: Stat,
    /// Directory listing, read on the first ReadDir.
    listing: Option<Vec<DirEntry>>,
}

struct Server {
    nodes: Vec<Option<Node>>,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn fstat(fd: RawFd) -> io::Result<Stat> {
    // SAFETY: zeroed stat is valid output space; empty path with AT_EMPTY_PATH stats `fd`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid output space; the empty path with AT_EMPTY_PATH names `fd`.
    cvt(unsafe {
        libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(Stat {
        dev: st.st_dev,
        ino: st.st_ino,
        nlink: st.st_nlink,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime: Timespec { sec: st.st_atime, nsec: st.st_atime_nsec },
        mtime: Timespec { sec: st.st_mtime, nsec: st.st_mtime_nsec },
        ctime: Timespec { sec: st.st_ctime, nsec: st.st_ctime_nsec },
    })
}

/// A single path component the Gofer accepts: no separators, no `.`/`..`, no NUL.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

impl Server {
    fn node(&self, h: Handle) -> Result<&Node, i32> {
        self.nodes.get(h as usize).and_then(|n| n.as_ref()).ok_or(libc::EBADF)
    }

    fn handle(&mut self, req: Request) -> (Response, Option<OwnedFd>) {
        match self.dispatch(req) {
            Ok(r) => r,
            Err(errno) => (Response::Error(errno), None),
        }
    }

    fn dispatch(&mut self, req: Request) -> Result<(Response, Option<OwnedFd>), i32> {
        match req {
            Request::Walk { dir, name } => {
                if !valid_name(&name) {
                    return Err(libc::EINVAL);
                }
                let d = self.node(dir)?;
                if d.stat.mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(libc::ENOTDIR);
                }
                let c = CString::new(name.clone()).map_err(|_| libc::EINVAL)?;
                // SAFETY: valid dirfd and C string; the result is checked.
                let fd = cvt(unsafe {
                    libc::openat(
                        d.fd.as_raw_fd(),
                        c.as_ptr(),
                        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    )
                })
                .map_err(|e| errno_of(&e))?;
                // SAFETY: fd was just opened by us.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let stat = fstat(fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
                let handle =
                    self.insert(Node { fd, parent: Some((dir, name)), stat, listing: None });
                Ok((Response::Node { handle, stat }, None))
            }
            Request::ReadDir { dir, cursor } => {
                let fd = self.node(dir)?.fd.as_raw_fd();
                if self.node(dir)?.listing.is_none() {
                    let listing = read_dir(fd).map_err(|e| errno_of(&e))?;
                    if let Some(Some(n)) = self.nodes.get_mut(dir as usize) {
                        n.listing = Some(listing);
                    }
                }
                let listing = self.node(dir)?.listing.as_ref().ok_or(libc::EIO)?;
                let start = (cursor as usize).min(listing.len());
                let end = (start + ENTRIES_PER_MESSAGE).min(listing.len());
                let entries = listing[start..end].to_vec();
                Ok((Response::Entries { entries, done: end == listing.len() }, None))
            }
            Request::Open { node } => {
                let n = self.node(node)?;
                if n.stat.mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(libc::EINVAL);
                }
                let (parent, name) = n.parent.clone().ok_or(libc::EINVAL)?;
                let want = (n.stat.dev, n.stat.ino);
                let pfd = self.node(parent)?.fd.as_raw_fd();
                let c = CString::new(name).map_err(|_| libc::EINVAL)?;
                // SAFETY: valid dirfd and C string; the result is checked.
                let fd = cvt(unsafe {
                    libc::openat(
                        pfd,
                        c.as_ptr(),
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
                    )
                })
                .map_err(|e| errno_of(&e))?;
                // SAFETY: fd was just opened by us.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let st = fstat(fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
                // The name may have been replaced on the host since the walk.
                if (st.dev, st.ino) != want {
                    return Err(libc::ESTALE);
                }
                Ok((Response::Opened, Some(fd)))
            }
            Request::ReadLink { node } => {
                let n = self.node(node)?;
                let mut buf = vec![0u8; 4096];
                // SAFETY: buf has the length passed; empty path reads the link `fd` refers to.
                let r = unsafe {
                    libc::readlinkat(
                        n.fd.as_raw_fd(),
                        c"".as_ptr(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if r < 0 {
                    return Err(errno_of(&io::Error::last_os_error()));
                }
                buf.truncate(r as usize);
                Ok((Response::Link(buf), None))
            }
            Request::Stat { node } => {
                let stat = fstat(self.node(node)?.fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
                Ok((Response::Node { handle: node, stat }, None))
            }
            Request::Close { node } => {
                if node == 0 {
                    return Err(libc::EINVAL);
                }
                match self.nodes.get_mut(node as usize) {
                    Some(slot @ Some(_)) => {
                        *slot = None;
                        Ok((Response::Ok, None))
                    }
                    _ => Err(libc::EBADF),
                }
            }
        }
    }

    fn insert(&mut self, n: Node) -> Handle {
        if let Some(i) = self.nodes.iter().skip(1).position(|x| x.is_none()) {
            self.nodes[i + 1] = Some(n);
            return (i + 1) as Handle;
        }
        self.nodes.push(Some(n));
        (self.nodes.len() - 1) as Handle
    }
}

fn read_dir(path_fd: RawFd) -> io::Result<Vec<DirEntry>> {
    // SAFETY: reopening a directory relative to our own O_PATH descriptor.
    let fd = cvt(unsafe {
        libc::openat(
            path_fd,
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    })?;
    // SAFETY: fd was just opened by us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: buf has the length passed.
        let n = unsafe {
            libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len())
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        let mut off = 0usize;
        while off + 19 <= n as usize {
            let ino = u64::from_le_bytes(buf[off..off + 8].try_into().unwrap_or([0; 8]));
            let reclen = u16::from_le_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let d_type = buf[off + 18];
            if reclen == 0 || off + reclen > n as usize {
                break;
            }
            let name_bytes = &buf[off + 19..off + reclen];
            let len = name_bytes.iter().position(|&b| b == 0).unwrap_or(name_bytes.len());
            let name = name_bytes[..len].to_vec();
            if name != b"." && name != b".." {
                out.push(DirEntry { name, d_type, ino });
            }
            off += reclen;
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Confines this process to `root` and serves requests on `sock` until it closes.
pub fn serve(root: &Path, sock: OwnedFd) -> io::Result<()> {
    let c = CString::new(root.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("NUL in root path"))?;
    // SAFETY: plain syscalls on a C string we own; results checked.
    unsafe {
        cvt(libc::unshare(libc::CLONE_NEWNS))?;
        cvt(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        cvt(libc::chroot(c.as_ptr()))?;
        cvt(libc::chdir(c"/".as_ptr()))?;
        cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
    }
    // SAFETY: opening our new root; the result is checked.
    let rootfd = cvt(unsafe {
        libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
    })?;
    // SAFETY: just opened.
    let rootfd = unsafe { OwnedFd::from_raw_fd(rootfd) };
    let stat = fstat(rootfd.as_raw_fd())?;
    crate::seccomp::confine_gofer().map_err(io::Error::other)?;
    let mut server =
        Server { nodes: vec![Some(Node { fd: rootfd, parent: None, stat, listing: None })] };
    let mut buf = Vec::new();
    loop {
        let (n, _fd) = match wire::recv(sock.as_raw_fd(), &mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let (resp, fd) = match Request::decode(&buf[..n]) {
            Ok(req) => server.handle(req),
            Err(_) => (Response::Error(libc::EINVAL), None),
        };
        wire::send(sock.as_raw_fd(), &resp.encode(), fd.as_ref().map(|f| f.as_raw_fd()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn only_plain_components_are_accepted() {
        assert!(valid_name(b"busybox"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"x\0y"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&[b'a'; 256]));
    }
}
