//! Filesystem objects. Each filesystem implements `Inode` for its files and directories.

use crate::sync::Mutex;
use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::{FileType, Stat, Timespec};
use crate::vfs::Location;
use crate::vfs::file::FileOps;

/// Identity of an inode: device and inode number.
pub type InodeKey = (u64, u64);

/// One directory entry as listed by `readdir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileType,
}

/// Who creates an object (for ownership and permission checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// A metadata change (chmod, chown, utimensat, truncate).
#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Timespec>,
    pub mtime: Option<Timespec>,
}

pub trait Inode: Send + Sync + Any {
    fn key(&self) -> InodeKey;
    fn stat(&self) -> Result<Stat, Errno>;
    fn file_type(&self) -> FileType;

    // Directories.
    fn lookup(&self, _name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOTDIR)
    }
    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// The containing directory and this directory's name in it (None for a root).
    fn parent(&self) -> Option<(Arc<dyn Inode>, Vec<u8>)> {
        None
    }
    /// Creates a regular file, directory, fifo, socket or device node.
    fn create(
        &self,
        _name: &[u8],
        _kind: FileType,
        _mode: u32,
        _rdev: u64,
        _owner: Owner,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::ENOTDIR)
    }
    fn symlink(&self, _name: &[u8], _target: &[u8], _owner: Owner) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// A regular file without a name on this directory's filesystem (`O_TMPFILE`); `linkable`
    /// says whether `linkat` may give it one later. EOPNOTSUPP where the filesystem cannot.
    fn create_unnamed(
        &self,
        _mode: u32,
        _owner: Owner,
        _linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Adds a hard link to `target` (which lives on the same filesystem); ENOENT when it has
    /// no links left and was not made linkable by [`Inode::create_unnamed`].
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    fn unlink(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    fn rmdir(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Moves `name` to `new_dir/new_name` (both on this filesystem), replacing what is there
    /// as rename(2) allows.
    fn rename(
        &self,
        _name: &[u8],
        _new_dir: &Arc<dyn Inode>,
        _new_name: &[u8],
    ) -> Result<(), Errno> {
        Err(Errno::ENOTDIR)
    }

    // Symlinks.
    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }
    /// Links that resolve to an object rather than a path (/proc/self/fd/N, /proc/self/exe).
    fn follow_magic(&self) -> Option<Result<Location, Errno>> {
        None
    }

    fn setattr(&self, _attr: SetAttr) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    /// Sets a regular file's whole contents (the runtime providing /etc/hostname and such).
    fn replace_contents(&self, _data: &[u8]) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    /// Opens the object; `flags` are the open(2) flags. A FIFO is not opened here: the kernel
    /// attaches its pipe to the inode ([`Inode::attachment`]).
    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno>;

    /// What a fifo (its pipe) or a bound Unix socket (its endpoint) attaches to the inode.
    fn attachment(&self) -> Option<&Mutex<Option<Arc<dyn Any + Send + Sync>>>> {
        None
    }

    fn as_any(&self) -> &dyn Any;

    /// Whether this filesystem rejects changes (EROFS).
    /// Statistics of the host filesystem behind this inode, for filesystems that have one (a
    /// volume's); None for the Sentry's own.
    fn host_statfs(&self) -> Option<Result<crate::vfs::statfs::StatFs, Errno>> {
        None
    }

    fn read_only(&self) -> bool {
        false
    }
}

/// Checks `access` (bits 4=read, 2=write, 1=exec) against `stat` for credentials `uid`/`gid`,
/// treating uid 0 as all-powerful. A task's checks go through `Credentials::may_access`, which
/// asks its capabilities instead.
pub fn may_access(stat: &Stat, uid: u32, gid: u32, groups: &[u32], access: u32) -> bool {
    if uid == 0 {
        // Root may do anything except execute a file no one may execute.
        let exec_bits = stat.mode & 0o111;
        let is_dir = stat.mode & crate::abi::stat::S_IFMT == crate::abi::stat::S_IFDIR;
        return access & 1 == 0 || exec_bits != 0 || is_dir;
    }
    let bits = if stat.uid == uid {
        (stat.mode >> 6) & 7
    } else if stat.gid == gid || groups.contains(&stat.gid) {
        (stat.mode >> 3) & 7
    } else {
        stat.mode & 7
    };
    bits & access == access
}
