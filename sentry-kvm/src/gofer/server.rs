//! The Gofer process: serves one root directory over the protocol until the Sentry hangs up.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::protocol::{
    DirEntry, Handle, LISTING_BYTES, Request, Response, StatEntry, listing_entry_bytes,
};
use super::wire;
use crate::abi::stat::{Stat, Timespec};
use crate::vfs::statfs::StatFs;

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
    /// Whether changes are refused (EROFS).
    read_only: bool,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn fstat(fd: RawFd) -> io::Result<Stat> {
    stat_at(fd, b"")
}

/// Attributes of `name` in directory `dir` (of `dir` itself for an empty name), not following
/// a symlink.
fn stat_at(dir: RawFd, name: &[u8]) -> io::Result<Stat> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let flags = libc::AT_SYMLINK_NOFOLLOW | if name.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    // SAFETY: zeroed stat is valid output space.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid output space; `c` is a C string relative to our descriptor.
    cvt(unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, flags) })?;
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

    fn dir_fd(&self, dir: Handle) -> Result<RawFd, i32> {
        let d = self.node(dir)?;
        if d.stat.mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(libc::ENOTDIR);
        }
        Ok(d.fd.as_raw_fd())
    }

    /// A handle for `name` in `dir`, which was just created.
    fn adopt(&mut self, dir: Handle, name: Vec<u8>) -> Result<(Handle, Stat), i32> {
        let c = CString::new(name.clone()).map_err(|_| libc::EINVAL)?;
        // SAFETY: valid dirfd and C string; the result is checked.
        let fd = cvt(unsafe {
            libc::openat(
                self.dir_fd(dir)?,
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })
        .map_err(|e| errno_of(&e))?;
        // SAFETY: fd was just opened by us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stat = fstat(fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
        Ok((self.insert(Node { fd, parent: Some((dir, name)), stat, listing: None }), stat))
    }

    /// Opens the object behind `node` with `flags` (never following a symlink), checking it
    /// is still the object the handle was made for.
    fn reopen(&self, node: Handle, flags: libc::c_int) -> Result<OwnedFd, i32> {
        let n = self.node(node)?;
        let want = (n.stat.dev, n.stat.ino);
        let (pfd, name) = match &n.parent {
            Some((parent, name)) => (self.node(*parent)?.fd.as_raw_fd(), name.clone()),
            None => (n.fd.as_raw_fd(), b".".to_vec()),
        };
        let c = CString::new(name).map_err(|_| libc::EINVAL)?;
        // SAFETY: valid dirfd and C string; the result is checked.
        let fd = cvt(unsafe {
            libc::openat(pfd, c.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        })
        .map_err(|e| errno_of(&e))?;
        // SAFETY: fd was just opened by us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let st = fstat(fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
        // The name may have been replaced on the host since the walk.
        if (st.dev, st.ino) != want {
            return Err(libc::ESTALE);
        }
        Ok(fd)
    }

    /// Requests that change the tree; only for a writable mount.
    fn change(&mut self, req: Request) -> Result<(Response, Option<OwnedFd>), i32> {
        if self.read_only {
            return Err(libc::EROFS);
        }
        let name_ok = |n: &[u8]| if valid_name(n) { Ok(()) } else { Err(libc::EINVAL) };
        let cstr = |n: &[u8]| CString::new(n.to_vec()).map_err(|_| libc::EINVAL);
        match req {
            Request::OpenWrite { node, truncate } => {
                if self.node(node)?.stat.mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(libc::EINVAL);
                }
                let trunc = if truncate { libc::O_TRUNC } else { 0 };
                let fd = self.reopen(node, libc::O_RDWR | libc::O_NONBLOCK | trunc)?;
                Ok((Response::Opened, Some(fd)))
            }
            Request::Create { dir, name, mode } => {
                name_ok(&name)?;
                let c = cstr(&name)?;
                // SAFETY: valid dirfd and C string; the result is checked.
                let fd = cvt(unsafe {
                    libc::openat(
                        self.dir_fd(dir)?,
                        c.as_ptr(),
                        libc::O_RDWR
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC
                            | libc::O_NONBLOCK,
                        (mode & 0o7777) as libc::c_uint,
                    )
                })
                .map_err(|e| errno_of(&e))?;
                // SAFETY: fd was just opened by us.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                let (handle, stat) = self.adopt(dir, name)?;
                Ok((Response::Node { handle, stat }, Some(fd)))
            }
            Request::Mkdir { dir, name, mode } => {
                name_ok(&name)?;
                let c = cstr(&name)?;
                // SAFETY: valid dirfd and C string.
                cvt(unsafe { libc::mkdirat(self.dir_fd(dir)?, c.as_ptr(), mode & 0o7777) })
                    .map_err(|e| errno_of(&e))?;
                let (handle, stat) = self.adopt(dir, name)?;
                Ok((Response::Node { handle, stat }, None))
            }
            Request::Symlink { dir, name, target } => {
                name_ok(&name)?;
                if target.is_empty() || target.len() > 4095 {
                    return Err(libc::EINVAL);
                }
                let (c, t) = (cstr(&name)?, cstr(&target)?);
                // The target is only text here: the Gofer never follows links, and the Sentry
                // resolves them against its own view of the sandbox.
                // SAFETY: valid dirfd and C strings.
                cvt(unsafe { libc::symlinkat(t.as_ptr(), self.dir_fd(dir)?, c.as_ptr()) })
                    .map_err(|e| errno_of(&e))?;
                let (handle, stat) = self.adopt(dir, name)?;
                Ok((Response::Node { handle, stat }, None))
            }
            Request::Unlink { dir, name, directory } => {
                name_ok(&name)?;
                let c = cstr(&name)?;
                let flags = if directory { libc::AT_REMOVEDIR } else { 0 };
                // SAFETY: valid dirfd and C string.
                cvt(unsafe { libc::unlinkat(self.dir_fd(dir)?, c.as_ptr(), flags) })
                    .map_err(|e| errno_of(&e))?;
                Ok((Response::Ok, None))
            }
            Request::Rename { dir, name, new_dir, new_name } => {
                name_ok(&name)?;
                name_ok(&new_name)?;
                let (a, b) = (cstr(&name)?, cstr(&new_name)?);
                // SAFETY: valid dirfds and C strings.
                cvt(unsafe {
                    libc::renameat(self.dir_fd(dir)?, a.as_ptr(), self.dir_fd(new_dir)?, b.as_ptr())
                })
                .map_err(|e| errno_of(&e))?;
                // Handles made through the old name now live under the new one.
                for n in self.nodes.iter_mut().flatten() {
                    if n.parent.as_ref().is_some_and(|(d, x)| *d == dir && *x == name) {
                        n.parent = Some((new_dir, new_name.clone()));
                    }
                }
                Ok((Response::Ok, None))
            }
            Request::SetAttr { node, attr } => {
                let kind = self.node(node)?.stat.mode & libc::S_IFMT;
                if kind != libc::S_IFREG && kind != libc::S_IFDIR {
                    return Err(libc::EPERM);
                }
                let flags = match (kind == libc::S_IFDIR, attr.size.is_some()) {
                    (true, true) => return Err(libc::EISDIR),
                    (true, false) => libc::O_RDONLY | libc::O_DIRECTORY,
                    (false, true) => libc::O_WRONLY | libc::O_NONBLOCK,
                    (false, false) => libc::O_RDONLY | libc::O_NONBLOCK,
                };
                let fd = self.reopen(node, flags)?;
                if let Some(mode) = attr.mode {
                    // SAFETY: fchmod on our descriptor.
                    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode & 0o7777) })
                        .map_err(|e| errno_of(&e))?;
                }
                if let Some(size) = attr.size {
                    let size = i64::try_from(size).map_err(|_| libc::EFBIG)?;
                    // SAFETY: ftruncate on our descriptor.
                    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })
                        .map_err(|e| errno_of(&e))?;
                }
                if attr.atime.is_some() || attr.mtime.is_some() {
                    let ts = |t: Option<Timespec>| match t {
                        Some(t) => libc::timespec { tv_sec: t.sec, tv_nsec: t.nsec },
                        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
                    };
                    let times = [ts(attr.atime), ts(attr.mtime)];
                    // SAFETY: futimens on our descriptor with two valid timespecs.
                    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
                        .map_err(|e| errno_of(&e))?;
                }
                let stat = fstat(fd.as_raw_fd()).map_err(|e| errno_of(&e))?;
                if let Some(Some(n)) = self.nodes.get_mut(node as usize) {
                    n.stat = stat;
                }
                Ok((Response::Node { handle: node, stat }, None))
            }
            _ => Err(libc::EINVAL),
        }
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
                // A listing from the start is read afresh (a writable mount changes).
                if cursor == 0 || self.node(dir)?.listing.is_none() {
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
            Request::ReadDirPlus { dir, cursor } => self.read_dir_plus(dir, cursor),
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
            Request::StatFs { node } => {
                let fd = self.node(node)?.fd.as_raw_fd();
                // SAFETY: fstatfs into a zeroed local; `fd` is open (O_PATH works since 3.12).
                let s = unsafe {
                    let mut s: libc::statfs = std::mem::zeroed();
                    if libc::fstatfs(fd, &mut s) != 0 {
                        return Err(errno_of(&io::Error::last_os_error()));
                    }
                    s
                };
                Ok((
                    Response::FsStats(StatFs {
                        kind: s.f_type as u64,
                        bsize: s.f_bsize as u64,
                        blocks: s.f_blocks,
                        bfree: s.f_bfree,
                        bavail: s.f_bavail,
                        files: s.f_files,
                        ffree: s.f_ffree,
                        // The Sentry numbers its mounts itself.
                        fsid: 0,
                        namelen: s.f_namelen as u64,
                        frsize: s.f_frsize as u64,
                        // Host mount options mean nothing inside the sandbox.
                        flags: 0,
                    }),
                    None,
                ))
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
            change => self.change(change),
        }
    }

    /// Entries of `dir` from `cursor` with their attributes, as many as fit in one answer. The
    /// listing is read afresh from the start, as for `ReadDir`; an entry removed on the host
    /// since the listing was read is left out.
    fn read_dir_plus(
        &mut self,
        dir: Handle,
        cursor: u32,
    ) -> Result<(Response, Option<OwnedFd>), i32> {
        let fd = self.dir_fd(dir)?;
        if cursor == 0 || self.node(dir)?.listing.is_none() {
            let listing = read_dir(fd).map_err(|e| errno_of(&e))?;
            if let Some(Some(n)) = self.nodes.get_mut(dir as usize) {
                n.listing = Some(listing);
            }
        }
        let listing = self.node(dir)?.listing.as_ref().ok_or(libc::EIO)?;
        let mut i = (cursor as usize).min(listing.len());
        let (mut entries, mut bytes) = (Vec::new(), 0);
        while let Some(e) = listing.get(i) {
            let size = listing_entry_bytes(&e.name);
            if !entries.is_empty() && bytes + size > LISTING_BYTES {
                break;
            }
            i += 1;
            match stat_at(fd, &e.name) {
                Ok(stat) => {
                    bytes += size;
                    entries.push(StatEntry { name: e.name.clone(), stat });
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(errno_of(&e)),
            }
        }
        // The cursor counts listing positions (entries left out advance it too).
        let next = u32::try_from(i).map_err(|_| libc::EOVERFLOW)?;
        Ok((Response::Listing { entries, next, done: i == listing.len() }, None))
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

/// Confines this process to `root` and serves requests on `sock` until it closes; changes
/// are served only when `writable`.
pub fn serve(root: &Path, sock: OwnedFd, writable: bool) -> io::Result<()> {
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
    // The umask must not change the modes the Sentry asks for.
    // SAFETY: plain umask.
    unsafe { libc::umask(0) };
    crate::seccomp::confine_gofer(writable).map_err(io::Error::other)?;
    let server = Server {
        nodes: vec![Some(Node { fd: rootfd, parent: None, stat, listing: None })],
        read_only: !writable,
    };
    serve_requests(server, &sock, |_| ())
}

/// Answers requests on `sock` until it closes, telling `seen` about each.
fn serve_requests(
    mut server: Server,
    sock: &OwnedFd,
    mut seen: impl FnMut(&Request),
) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let (n, _fd) = match wire::recv(sock.as_raw_fd(), &mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let (resp, fd) = match Request::decode(&buf[..n]) {
            Ok(req) => {
                seen(&req);
                server.handle(req)
            }
            Err(_) => (Response::Error(libc::EINVAL), None),
        };
        wire::send(sock.as_raw_fd(), &resp.encode(), fd.as_ref().map(|f| f.as_raw_fd()))?;
    }
}

/// Serves `dir` on `sock` from a thread of this process, without confinement, counting the
/// requests in `served`: for tests of the Sentry's side.
#[cfg(test)]
pub(crate) fn serve_in_thread(
    dir: &Path,
    sock: OwnedFd,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    let server = tests::server(dir, false);
    std::thread::spawn(move || {
        let _ = serve_requests(server, &sock, |_| {
            served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gofer::protocol::Attr;

    #[test]
    fn only_plain_components_are_accepted() {
        assert!(valid_name(b"busybox"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"x\0y"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&[b'a'; 256]));
    }

    /// A server over `dir` without the chroot (tests share one process).
    pub(super) fn server(dir: &Path, read_only: bool) -> Server {
        let c = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: opening a directory handle; checked.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
        assert!(fd >= 0);
        // SAFETY: just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let stat = fstat(fd.as_raw_fd()).unwrap();
        Server { nodes: vec![Some(Node { fd, parent: None, stat, listing: None })], read_only }
    }

    fn errno(s: &mut Server, req: Request) -> i32 {
        match s.handle(req).0 {
            Response::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    fn node(s: &mut Server, req: Request) -> Handle {
        match s.handle(req).0 {
            Response::Node { handle, .. } => handle,
            other => panic!("expected a node, got {other:?}"),
        }
    }

    #[test]
    fn changes_stay_inside_the_granted_directory() {
        let outer = tempfile::tempdir().unwrap();
        let granted = outer.path().join("granted");
        std::fs::create_dir(&granted).unwrap();
        std::fs::write(outer.path().join("secret"), "outside").unwrap();
        let mut s = server(&granted, false);
        let name = |n: &str| n.as_bytes().to_vec();

        // Names that would leave the directory are refused before any host call.
        for bad in ["..", ".", "a/b", "../secret", ""] {
            assert_eq!(
                errno(&mut s, Request::Create { dir: 0, name: name(bad), mode: 0o644 }),
                libc::EINVAL
            );
            assert_eq!(
                errno(&mut s, Request::Mkdir { dir: 0, name: name(bad), mode: 0o755 }),
                libc::EINVAL
            );
            assert_eq!(
                errno(&mut s, Request::Unlink { dir: 0, name: name(bad), directory: false }),
                libc::EINVAL
            );
        }
        let r = Request::Rename { dir: 0, name: name("x"), new_dir: 0, new_name: name("../x") };
        assert_eq!(errno(&mut s, r), libc::EINVAL);

        // A symlink to the outside is only text: writing through it is refused, not followed.
        let link =
            node(&mut s, Request::Symlink { dir: 0, name: name("out"), target: name("../secret") });
        assert_eq!(errno(&mut s, Request::OpenWrite { node: link, truncate: true }), libc::EINVAL);
        let attr = Attr { mode: Some(0o777), ..Default::default() };
        assert_eq!(errno(&mut s, Request::SetAttr { node: link, attr }), libc::EPERM);
        assert_eq!(
            errno(&mut s, Request::Create { dir: 0, name: name("out"), mode: 0o644 }),
            libc::EEXIST
        );
        assert_eq!(
            errno(&mut s, Request::Mkdir { dir: link, name: name("x"), mode: 0o755 }),
            libc::ENOTDIR
        );
        // A host-made link to a directory outside is not a way out either.
        std::os::unix::fs::symlink(outer.path(), granted.join("up")).unwrap();
        let up = node(&mut s, Request::Walk { dir: 0, name: name("up") });
        assert_eq!(
            errno(&mut s, Request::Create { dir: up, name: name("f"), mode: 0o644 }),
            libc::ENOTDIR
        );
        assert_eq!(std::fs::read_to_string(outer.path().join("secret")).unwrap(), "outside");
        assert!(!outer.path().join("f").exists());

        // Unknown handles are errors.
        assert_eq!(
            errno(&mut s, Request::Create { dir: 999, name: name("f"), mode: 0o644 }),
            libc::EBADF
        );

        // What is allowed works and lands in the granted directory.
        let (resp, fd) = s.handle(Request::Create { dir: 0, name: name("f"), mode: 0o640 });
        assert!(matches!(resp, Response::Node { .. }) && fd.is_some());
        let d = node(&mut s, Request::Mkdir { dir: 0, name: name("d"), mode: 0o755 });
        let r = Request::Rename { dir: 0, name: name("f"), new_dir: d, new_name: name("g") };
        assert_eq!(s.handle(r).0, Response::Ok);
        assert!(granted.join("d/g").is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(granted.join("d/g")).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn listings_carry_attributes_in_bounded_answers() {
        let dir = tempfile::tempdir().unwrap();
        // Long names, so the listing needs several answers.
        let names: Vec<String> = (0..1500).map(|i| format!("{i:04}-{}", "n".repeat(200))).collect();
        for (i, n) in names.iter().enumerate() {
            std::fs::write(dir.path().join(n), vec![0u8; i % 7]).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.path().join("link")).unwrap();
        let mut s = server(dir.path(), true);
        let (mut got, mut cursor, mut answers) = (Vec::new(), 0, 0);
        loop {
            let resp = s.handle(Request::ReadDirPlus { dir: 0, cursor }).0;
            let Response::Listing { entries, next, done } = resp else { panic!("{resp:?}") };
            answers += 1;
            let bytes: usize = entries.iter().map(|e| listing_entry_bytes(&e.name)).sum();
            assert!(bytes <= LISTING_BYTES);
            assert!(
                Response::Listing { entries: entries.clone(), next, done }.encode().len()
                    < crate::gofer::wire::MAX_MESSAGE
            );
            got.extend(entries);
            if done {
                break;
            }
            cursor = next;
        }
        assert!(answers > 1, "one answer for {} entries", got.len());
        assert_eq!(got.len(), names.len() + 2);
        for e in &got {
            let want = std::fs::symlink_metadata(
                dir.path()
                    .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&e.name)),
            )
            .unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (e.stat.ino, e.stat.mode, e.stat.size as u64),
                (want.ino(), want.mode(), want.size())
            );
        }
        // A file is not a directory to list; unknown handles are errors.
        let f = node(&mut s, Request::Walk { dir: 0, name: b"sub".to_vec() });
        assert!(matches!(
            s.handle(Request::ReadDirPlus { dir: f, cursor: 0 }).0,
            Response::Listing { .. }
        ));
        let l = node(&mut s, Request::Walk { dir: 0, name: b"link".to_vec() });
        assert_eq!(errno(&mut s, Request::ReadDirPlus { dir: l, cursor: 0 }), libc::ENOTDIR);
        assert_eq!(errno(&mut s, Request::ReadDirPlus { dir: 99, cursor: 0 }), libc::EBADF);
    }

    #[test]
    fn a_read_only_mount_refuses_every_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let mut s = server(dir.path(), true);
        let f = node(&mut s, Request::Walk { dir: 0, name: b"f".to_vec() });
        for req in [
            Request::OpenWrite { node: f, truncate: true },
            Request::Create { dir: 0, name: b"g".to_vec(), mode: 0o644 },
            Request::Mkdir { dir: 0, name: b"d".to_vec(), mode: 0o755 },
            Request::Unlink { dir: 0, name: b"f".to_vec(), directory: false },
            Request::SetAttr { node: f, attr: Attr { size: Some(0), ..Default::default() } },
        ] {
            assert_eq!(errno(&mut s, req), libc::EROFS);
        }
        assert_eq!(std::fs::read_to_string(dir.path().join("f")).unwrap(), "x");
    }
}
