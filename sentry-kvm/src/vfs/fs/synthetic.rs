//! Building blocks for filesystems whose contents the Sentry generates (/proc, /dev):
//! directories listing generated children, files rendered at open, and symlinks.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crate::abi::Errno;
use crate::abi::stat::{FileType, S_IFDIR, S_IFLNK, S_IFREG, Stat, Timespec};
use crate::vfs::Location;
use crate::vfs::context::Context;
use crate::vfs::dir_file::DirFile;
use crate::vfs::file::FileOps;
use crate::vfs::inode::{DirEntry, Inode, InodeKey};

static NEXT_INO: AtomicU64 = AtomicU64::new(1000);

pub fn alloc_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

fn stat_of(dev: u64, ino: u64, mode: u32, size: u64) -> Stat {
    let now = Timespec::now();
    Stat {
        dev,
        ino,
        nlink: if mode & S_IFDIR != 0 { 2 } else { 1 },
        mode,
        size: size as i64,
        blksize: 4096,
        atime: now,
        mtime: now,
        ctime: now,
        ..Default::default()
    }
}

/// Children of a generated directory.
pub trait Children: Send + Sync {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)>;
    fn lookup(&self, name: &[u8]) -> Option<Arc<dyn Inode>> {
        self.list().into_iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }
}

/// A fixed set of children.
pub struct Fixed(pub Vec<(Vec<u8>, Arc<dyn Inode>)>);

impl Children for Fixed {
    fn list(&self) -> Vec<(Vec<u8>, Arc<dyn Inode>)> {
        self.0.clone()
    }
}

pub struct SynthDir {
    dev: u64,
    ino: u64,
    mode: u32,
    parent: OnceLock<(Weak<dyn Inode>, Vec<u8>)>,
    children: Box<dyn Children>,
}

impl SynthDir {
    pub fn new(dev: u64, mode: u32, children: Box<dyn Children>) -> Arc<SynthDir> {
        Arc::new(SynthDir { dev, ino: alloc_ino(), mode, parent: OnceLock::new(), children })
    }

    /// Records where this directory lives, for `..` and path names.
    pub fn set_parent(&self, parent: &Arc<dyn Inode>, name: &[u8]) {
        let _ = self.parent.set((Arc::downgrade(parent), name.to_vec()));
    }
}

impl Inode for SynthDir {
    fn key(&self) -> InodeKey {
        (self.dev, self.ino)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat_of(self.dev, self.ino, S_IFDIR | self.mode, 0))
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        self.children.lookup(name).ok_or(Errno::ENOENT)
    }
    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        Ok(self
            .children
            .list()
            .into_iter()
            .map(|(name, i)| DirEntry { ino: i.key().1, kind: i.file_type(), name })
            .collect())
    }
    fn parent(&self) -> Option<(Arc<dyn Inode>, Vec<u8>)> {
        let (p, n) = self.parent.get()?;
        Some((p.upgrade()?, n.clone()))
    }
    fn create(
        &self,
        _: &[u8],
        _: FileType,
        _: u32,
        _: u64,
        _: crate::vfs::inode::Owner,
    ) -> Result<Arc<dyn Inode>, Errno> {
        Err(Errno::EACCES)
    }
    fn open(self: Arc<Self>, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Ok(DirFile::new(self))
    }
    fn read_only(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

type Render = dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync;
type Store = dyn Fn(&[u8]) -> Result<(), Errno> + Send + Sync;

/// A file whose contents are rendered when opened.
pub struct SynthFile {
    dev: u64,
    ino: u64,
    mode: u32,
    render: Box<Render>,
    store: Option<Box<Store>>,
}

impl SynthFile {
    pub fn new(dev: u64, mode: u32, render: Box<Render>) -> Arc<SynthFile> {
        Arc::new(SynthFile { dev, ino: alloc_ino(), mode, render, store: None })
    }

    /// A file that also accepts writes (e.g. /proc/sys entries).
    pub fn writable(dev: u64, mode: u32, render: Box<Render>, store: Box<Store>) -> Arc<SynthFile> {
        Arc::new(SynthFile { dev, ino: alloc_ino(), mode, render, store: Some(store) })
    }

    pub fn text(dev: u64, s: String) -> Arc<SynthFile> {
        SynthFile::new(dev, 0o444, Box::new(move || Ok(s.clone().into_bytes())))
    }
}

impl Inode for SynthFile {
    fn key(&self) -> InodeKey {
        (self.dev, self.ino)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(stat_of(self.dev, self.ino, S_IFREG | self.mode, 0))
    }
    fn file_type(&self) -> FileType {
        FileType::Regular
    }
    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        let write = crate::vfs::file::wants_write(flags);
        if write && self.store.is_none() {
            return Err(Errno::EACCES);
        }
        let data = if write { Vec::new() } else { (self.render)()? };
        Ok(Arc::new(SnapshotFile { inode: self, data }))
    }
    fn read_only(&self) -> bool {
        self.store.is_none()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An open generated file: the contents as rendered at open.
struct SnapshotFile {
    inode: Arc<SynthFile>,
    data: Vec<u8>,
}

impl FileOps for SnapshotFile {
    fn seekable(&self) -> bool {
        true
    }
    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        if off >= self.data.len() as u64 {
            return Ok(0);
        }
        let n = buf.len().min(self.data.len() - off as usize);
        buf[..n].copy_from_slice(&self.data[off as usize..off as usize + n]);
        Ok(n)
    }
    fn write_at(&self, _ctx: &dyn Context, data: &[u8], _off: u64) -> Result<usize, Errno> {
        match &self.inode.store {
            Some(s) => s(data).map(|_| data.len()),
            None => Err(Errno::EBADF),
        }
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let mut s = self.inode.stat()?;
        s.size = self.data.len() as i64;
        Ok(s)
    }
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

type Target = dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync;
type Magic = dyn Fn() -> Result<Location, Errno> + Send + Sync;

/// A symlink whose target is computed when it is read (it may depend on who reads it, as
/// /proc/self does); optionally "magic": resolving to an object rather than a path, like
/// /proc/self/fd/N.
pub struct SynthLink {
    dev: u64,
    ino: u64,
    target: Box<Target>,
    magic: Option<Box<Magic>>,
}

impl SynthLink {
    pub fn new(dev: u64, target: Box<Target>) -> Arc<SynthLink> {
        Arc::new(SynthLink { dev, ino: alloc_ino(), target, magic: None })
    }

    pub fn fixed(dev: u64, target: &[u8]) -> Arc<SynthLink> {
        let t = target.to_vec();
        SynthLink::new(dev, Box::new(move || Ok(t.clone())))
    }

    pub fn magic(dev: u64, target: Box<Target>, magic: Box<Magic>) -> Arc<SynthLink> {
        Arc::new(SynthLink { dev, ino: alloc_ino(), target, magic: Some(magic) })
    }
}

impl Inode for SynthLink {
    fn key(&self) -> InodeKey {
        (self.dev, self.ino)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let len = (self.target)().map(|t| t.len()).unwrap_or(0);
        Ok(stat_of(self.dev, self.ino, S_IFLNK | 0o777, len as u64))
    }
    fn file_type(&self) -> FileType {
        FileType::Symlink
    }
    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        (self.target)()
    }
    fn follow_magic(&self) -> Option<Result<Location, Errno>> {
        self.magic.as_ref().map(|m| m())
    }
    fn open(self: Arc<Self>, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::ELOOP)
    }
    fn read_only(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
