//! Objects with no place in the mount tree (pipes, sockets, event files, the host's stdio) as
//! inodes, so that /proc/PID/fd/N can resolve to them: opening that link opens the object the
//! descriptor refers to again, as Linux does, rather than a path.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use super::synthetic::{Fixed, SynthDir};
use crate::abi::Errno;
use crate::abi::stat::{FileType, Stat, Timespec, makedev};
use crate::vfs::Location;
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{Inode, InodeKey};
use crate::vfs::mount::Mount;

/// The open file behind a descriptor that has no location of its own.
pub struct AnonInode {
    file: Arc<File>,
}

impl AnonInode {
    /// Where `file` resolves to: its location, or (for objects outside the mount tree) the
    /// object itself on the anonymous mount.
    pub fn location_of(file: &Arc<File>) -> Location {
        match &file.location {
            Some(l) => l.clone(),
            None => Location::new(anon_mount(), Arc::new(AnonInode { file: file.clone() })),
        }
    }

    /// The name a descriptor reopened through this inode shows in /proc (the original's).
    pub fn name(&self) -> &[u8] {
        &self.file.path
    }

    /// A new open file description of the same object (ENXIO where Linux refuses, sockets).
    pub fn reopen(&self, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        self.file.ops.clone().reopen(flags)
    }
}

/// One mount for every anonymous object: its root is an empty directory no path reaches.
/// What fstat shows for a file of Linux's anonymous inode (eventfd, epoll, inotify).
pub fn anon_inode_stat() -> Stat {
    let now = Timespec::now();
    Stat {
        dev: makedev(0, 14),
        nlink: 1,
        mode: 0o600,
        atime: now,
        mtime: now,
        ctime: now,
        ..Default::default()
    }
}

fn anon_mount() -> Arc<Mount> {
    static MOUNT: OnceLock<Arc<Mount>> = OnceLock::new();
    MOUNT
        .get_or_init(|| {
            let root = SynthDir::new(makedev(0, 15), 0o500, Box::new(Fixed(Vec::new())));
            Mount::new_root(root, "anon_inodefs", "anon_inodefs")
        })
        .clone()
}

impl Inode for AnonInode {
    fn key(&self) -> InodeKey {
        self.file.ops.stat().map(|s| (s.dev, s.ino)).unwrap_or((makedev(0, 15), self.file.id()))
    }
    fn stat(&self) -> Result<Stat, Errno> {
        self.file.ops.stat()
    }
    fn file_type(&self) -> FileType {
        self.file
            .ops
            .stat()
            .ok()
            .and_then(|s| FileType::from_mode(s.mode))
            .unwrap_or(FileType::Regular)
    }
    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        self.reopen(flags)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
