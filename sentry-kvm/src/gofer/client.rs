//! The Sentry's side of the Gofer channel.

use crate::sync::Mutex;
use crate::vfs::statfs::StatFs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::protocol::{Attr, DirEntry, Handle, Request, Response, StatEntry};
use super::wire;
use crate::abi::Errno;
use crate::abi::stat::Stat;

/// Descriptor number of the channel in the Gofer process.
pub const GOFER_FD: i32 = 3;

pub struct GoferClient {
    chan: Mutex<Option<(OwnedFd, Vec<u8>)>>,
    child: Mutex<Option<Child>>,
    root: Stat,
}

impl GoferClient {
    /// Starts `gofer --root ROOT` with the channel on descriptor 3.
    pub fn spawn(gofer: Command, root: &Path) -> io::Result<GoferClient> {
        let (ours, child) = launch(gofer, root)?;
        let client = GoferClient::from_channel(ours)?;
        *client.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(client)
    }

    /// A client over a channel to a Gofer someone else started.
    pub fn from_channel(chan: OwnedFd) -> io::Result<GoferClient> {
        let mut c = GoferClient {
            chan: Mutex::new(Some((chan, Vec::new()))),
            child: Mutex::new(None),
            root: Stat::default(),
        };
        c.root = match c.call(Request::Stat { node: 0 }) {
            Ok((Response::Node { stat, .. }, _)) => stat,
            Ok(_) => return Err(io::Error::other("unexpected gofer answer")),
            Err(e) => return Err(io::Error::from_raw_os_error(e.0)),
        };
        Ok(c)
    }

    /// Attributes of the root directory (handle 0).
    pub fn root_stat(&self) -> Stat {
        self.root
    }

    fn call(&self, req: Request) -> Result<(Response, Option<OwnedFd>), Errno> {
        let mut chan = self.chan.lock().unwrap_or_else(|e| e.into_inner());
        let (sock, buf) = chan.as_mut().ok_or(Errno::EIO)?;
        wire::send(sock.as_raw_fd(), &req.encode(), None).map_err(|e| Errno::from_io(&e))?;
        let (n, fd) = wire::recv(sock.as_raw_fd(), buf).map_err(|_| Errno::EIO)?;
        let resp = Response::decode(&buf[..n]).map_err(|_| Errno::EIO)?;
        match resp {
            Response::Error(e) => Err(Errno(e)),
            r => Ok((r, fd)),
        }
    }

    pub fn walk(&self, dir: Handle, name: &[u8]) -> Result<(Handle, Stat), Errno> {
        match self.call(Request::Walk { dir, name: name.to_vec() })? {
            (Response::Node { handle, stat }, _) => Ok((handle, stat)),
            _ => Err(Errno::EIO),
        }
    }

    pub fn readdir(&self, dir: Handle) -> Result<Vec<DirEntry>, Errno> {
        let mut out = Vec::new();
        loop {
            match self.call(Request::ReadDir { dir, cursor: out.len() as u32 })? {
                (Response::Entries { entries, done }, _) => {
                    let empty = entries.is_empty();
                    out.extend(entries);
                    if done || empty {
                        return Ok(out);
                    }
                }
                _ => return Err(Errno::EIO),
            }
        }
    }

    /// The whole listing of a directory with each entry's attributes, in as many round trips
    /// as the answers' size bound needs (one for most directories).
    pub fn readdir_plus(&self, dir: Handle) -> Result<Vec<StatEntry>, Errno> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            match self.call(Request::ReadDirPlus { dir, cursor })? {
                (Response::Listing { entries, next, done }, _) => {
                    out.extend(entries);
                    // The cursor must advance, or a confused Gofer would keep us here.
                    if done || next <= cursor {
                        return Ok(out);
                    }
                    cursor = next;
                }
                _ => return Err(Errno::EIO),
            }
        }
    }

    /// A read-only descriptor for a regular file.
    pub fn open(&self, node: Handle) -> Result<OwnedFd, Errno> {
        match self.call(Request::Open { node })? {
            (Response::Opened, Some(fd)) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }

    /// Attributes of a node as the host has them now.
    pub fn stat(&self, node: Handle) -> Result<Stat, Errno> {
        match self.call(Request::Stat { node })? {
            (Response::Node { stat, .. }, _) => Ok(stat),
            _ => Err(Errno::EIO),
        }
    }

    /// Statistics of the host filesystem holding `node`.
    pub fn statfs(&self, node: Handle) -> Result<StatFs, Errno> {
        match self.call(Request::StatFs { node })? {
            (Response::FsStats(s), _) => Ok(s),
            _ => Err(Errno::EIO),
        }
    }

    /// A read-write descriptor for a regular file (emptied first with `truncate`).
    pub fn open_write(&self, node: Handle, truncate: bool) -> Result<OwnedFd, Errno> {
        match self.call(Request::OpenWrite { node, truncate })? {
            (Response::Opened, Some(fd)) => Ok(fd),
            _ => Err(Errno::EIO),
        }
    }

    /// Creates a regular file; returns its handle, attributes and a read-write descriptor.
    pub fn create(
        &self,
        dir: Handle,
        name: &[u8],
        mode: u32,
    ) -> Result<(Handle, Stat, OwnedFd), Errno> {
        match self.call(Request::Create { dir, name: name.to_vec(), mode })? {
            (Response::Node { handle, stat }, Some(fd)) => Ok((handle, stat, fd)),
            _ => Err(Errno::EIO),
        }
    }

    fn node_answer(&self, req: Request) -> Result<(Handle, Stat), Errno> {
        match self.call(req)? {
            (Response::Node { handle, stat }, _) => Ok((handle, stat)),
            _ => Err(Errno::EIO),
        }
    }

    pub fn mkdir(&self, dir: Handle, name: &[u8], mode: u32) -> Result<(Handle, Stat), Errno> {
        self.node_answer(Request::Mkdir { dir, name: name.to_vec(), mode })
    }

    pub fn symlink(
        &self,
        dir: Handle,
        name: &[u8],
        target: &[u8],
    ) -> Result<(Handle, Stat), Errno> {
        self.node_answer(Request::Symlink { dir, name: name.to_vec(), target: target.to_vec() })
    }

    pub fn setattr(&self, node: Handle, attr: Attr) -> Result<Stat, Errno> {
        self.node_answer(Request::SetAttr { node, attr }).map(|(_, st)| st)
    }

    pub fn unlink(&self, dir: Handle, name: &[u8], directory: bool) -> Result<(), Errno> {
        self.call(Request::Unlink { dir, name: name.to_vec(), directory }).map(|_| ())
    }

    pub fn rename(
        &self,
        dir: Handle,
        name: &[u8],
        new_dir: Handle,
        new_name: &[u8],
    ) -> Result<(), Errno> {
        let req =
            Request::Rename { dir, name: name.to_vec(), new_dir, new_name: new_name.to_vec() };
        self.call(req).map(|_| ())
    }

    pub fn readlink(&self, node: Handle) -> Result<Vec<u8>, Errno> {
        match self.call(Request::ReadLink { node })? {
            (Response::Link(t), _) => Ok(t),
            _ => Err(Errno::EIO),
        }
    }

    pub fn close(&self, node: Handle) {
        if node != 0 {
            let _ = self.call(Request::Close { node });
        }
    }
}

/// Starts a Gofer process serving `root` (`cmd` is the program with its leading arguments);
/// returns the Sentry's end of its channel and the process (which exits when the channel
/// closes).
pub fn launch(mut cmd: Command, root: &Path) -> io::Result<(OwnedFd, Child)> {
    let (ours, theirs) = wire::socketpair()?;
    let theirs_raw = theirs.as_raw_fd();
    // The Gofer must not hold on to its starter's stdio (readers would wait for its EOF).
    cmd.arg("--root").arg(root).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: the closure only calls dup2, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_raw, GOFER_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(theirs);
    Ok((ours, child))
}

impl Drop for GoferClient {
    fn drop(&mut self) {
        // Closing our end makes the Gofer exit; then reap it.
        drop(self.chan.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.wait();
        }
    }
}
