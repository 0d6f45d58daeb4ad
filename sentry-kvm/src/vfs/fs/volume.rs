//! A host directory mounted into the sandbox (a pod volume), served by its own Gofer with
//! changes written through to the host. Nothing is cached: the directory is shared with other
//! containers and with the host, so every lookup, listing and attribute read asks the Gofer.
//! File data moves through descriptors the Gofer hands over; a mapping is a private snapshot
//! of the file (writes through a shared writable mapping do not reach the host).

use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::abi::stat::{self, FileType, O_ACCMODE, O_RDONLY, O_TRUNC, Stat};
use crate::gofer::GoferClient;
use crate::gofer::protocol::{Attr, Handle};
use crate::mm::Physical;
use crate::mm::mappable::{Mappable, MemObject};
use crate::vfs::context::Context;
use crate::vfs::dir_file::DirFile;
use crate::vfs::file::FileOps;
use crate::vfs::fs::overlay::HostPages;
use crate::vfs::inode::{DirEntry, Inode, InodeKey, Owner, SetAttr};

static NEXT_DEV: AtomicU64 = AtomicU64::new(1);

pub struct VolumeFs {
    dev: u64,
    gofer: GoferClient,
    phys: Arc<Physical>,
    read_only: bool,
}

impl VolumeFs {
    pub fn new(phys: Arc<Physical>, gofer: GoferClient, read_only: bool) -> Arc<VolumeFs> {
        Arc::new(VolumeFs {
            dev: stat::makedev(0, 0x400 + NEXT_DEV.fetch_add(1, Ordering::Relaxed) as u32),
            gofer,
            phys,
            read_only,
        })
    }

    pub fn root(self: &Arc<Self>) -> Arc<VolumeNode> {
        let st = self.gofer.root_stat();
        VolumeNode::new(self.clone(), 0, st.ino, FileType::Directory, None)
    }
}

pub struct VolumeNode {
    me: Weak<VolumeNode>,
    fs: Arc<VolumeFs>,
    handle: Handle,
    ino: u64,
    kind: FileType,
    parent: Option<(Arc<VolumeNode>, Vec<u8>)>,
}

impl Drop for VolumeNode {
    fn drop(&mut self) {
        self.fs.gofer.close(self.handle);
    }
}

fn kind_of_dtype(d_type: u8) -> FileType {
    match d_type {
        4 => FileType::Directory,
        10 => FileType::Symlink,
        2 => FileType::CharDevice,
        6 => FileType::BlockDevice,
        1 => FileType::Fifo,
        12 => FileType::Socket,
        _ => FileType::Regular,
    }
}

impl VolumeNode {
    fn new(
        fs: Arc<VolumeFs>,
        handle: Handle,
        ino: u64,
        kind: FileType,
        parent: Option<(Arc<VolumeNode>, Vec<u8>)>,
    ) -> Arc<VolumeNode> {
        Arc::new_cyclic(|me| VolumeNode { me: me.clone(), fs, handle, ino, kind, parent })
    }

    fn child(&self, name: &[u8], handle: Handle, st: &Stat) -> Result<Arc<VolumeNode>, Errno> {
        let Some(kind) = FileType::from_mode(st.mode) else {
            self.fs.gofer.close(handle);
            return Err(Errno::EIO);
        };
        let me = self.me.upgrade().ok_or(Errno::EIO)?;
        Ok(VolumeNode::new(self.fs.clone(), handle, st.ino, kind, Some((me, name.to_vec()))))
    }

    fn writable(&self) -> Result<(), Errno> {
        if self.fs.read_only { Err(Errno::EROFS) } else { Ok(()) }
    }
}

fn as_volume(inode: &Arc<dyn Inode>) -> Option<Arc<VolumeNode>> {
    let any: Arc<dyn Any + Send + Sync> = inode.clone();
    any.downcast::<VolumeNode>().ok()
}

impl Inode for VolumeNode {
    fn key(&self) -> InodeKey {
        (self.fs.dev, self.ino)
    }

    fn host_statfs(&self) -> Option<Result<crate::vfs::statfs::StatFs, Errno>> {
        Some(self.fs.gofer.statfs(self.handle))
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let mut st = self.fs.gofer.stat(self.handle)?;
        st.dev = self.fs.dev;
        Ok(st)
    }

    fn file_type(&self) -> FileType {
        self.kind
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        if self.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let (handle, st) = self.fs.gofer.walk(self.handle, name)?;
        Ok(self.child(name, handle, &st)?)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let entries = self.fs.gofer.readdir(self.handle)?;
        Ok(entries
            .into_iter()
            .map(|e| DirEntry { name: e.name, ino: e.ino, kind: kind_of_dtype(e.d_type) })
            .collect())
    }

    fn parent(&self) -> Option<(Arc<dyn Inode>, Vec<u8>)> {
        self.parent.as_ref().map(|(p, n)| (p.clone() as Arc<dyn Inode>, n.clone()))
    }

    fn create(
        &self,
        name: &[u8],
        kind: FileType,
        mode: u32,
        _rdev: u64,
        _owner: Owner,
    ) -> Result<Arc<dyn Inode>, Errno> {
        self.writable()?;
        let (handle, st) = match kind {
            FileType::Regular => {
                let (handle, st, _fd) = self.fs.gofer.create(self.handle, name, mode)?;
                (handle, st)
            }
            FileType::Directory => self.fs.gofer.mkdir(self.handle, name, mode)?,
            // Fifos, sockets and devices would be host objects the sandbox could share with
            // the host; volumes hold files and directories only.
            _ => return Err(Errno::EPERM),
        };
        Ok(self.child(name, handle, &st)?)
    }

    fn symlink(&self, name: &[u8], target: &[u8], _owner: Owner) -> Result<(), Errno> {
        self.writable()?;
        let (handle, _) = self.fs.gofer.symlink(self.handle, name, target)?;
        self.fs.gofer.close(handle);
        Ok(())
    }

    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.fs.gofer.unlink(self.handle, name, false)
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        self.fs.gofer.unlink(self.handle, name, true)
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> Result<(), Errno> {
        self.writable()?;
        let target = as_volume(new_dir).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&target.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        self.fs.gofer.rename(self.handle, name, target.handle, new_name)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        if self.kind != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        self.fs.gofer.readlink(self.handle)
    }

    fn setattr(&self, a: SetAttr) -> Result<(), Errno> {
        self.writable()?;
        if a.uid.is_some() || a.gid.is_some() {
            // Host ownership stays the node's: the sandbox's ids mean nothing there.
            return Err(Errno::EPERM);
        }
        let attr = Attr { mode: a.mode, size: a.size, atime: a.atime, mtime: a.mtime };
        self.fs.gofer.setattr(self.handle, attr).map(|_| ())
    }

    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        match self.kind {
            FileType::Directory => Ok(DirFile::new(self)),
            FileType::Regular => {
                let fd = if flags & O_ACCMODE == O_RDONLY {
                    self.fs.gofer.open(self.handle)?
                } else {
                    self.writable()?;
                    self.fs.gofer.open_write(self.handle, flags & O_TRUNC != 0)?
                };
                Ok(Arc::new(VolumeFile { fd: Arc::new(fd), node: self }))
            }
            FileType::Symlink => Err(Errno::ELOOP),
            _ => Err(Errno::ENXIO),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn read_only(&self) -> bool {
        self.fs.read_only
    }
}

/// An open regular file of a volume: reads and writes go to the host descriptor.
pub struct VolumeFile {
    fd: Arc<OwnedFd>,
    node: Arc<VolumeNode>,
}

fn host(n: isize) -> Result<usize, Errno> {
    if n < 0 { Err(Errno::last_host()) } else { Ok(n as usize) }
}

impl FileOps for VolumeFile {
    fn seekable(&self) -> bool {
        true
    }

    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        // SAFETY: reading into `buf` from our descriptor.
        host(unsafe { libc::pread(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) })
    }

    fn write_at(&self, _ctx: &dyn Context, data: &[u8], offset: u64) -> Result<usize, Errno> {
        let off = i64::try_from(offset).map_err(|_| Errno::EFBIG)?;
        // SAFETY: writing `data` to our descriptor.
        host(unsafe { libc::pwrite(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len(), off) })
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.node.stat()
    }

    fn mappable(&self) -> Result<Arc<dyn Mappable>, Errno> {
        let size = self.node.stat()?.size.max(0) as u64;
        let pages = Arc::new(HostPages::new(self.fd.clone()));
        Ok(Arc::new(MemObject::with_source(self.node.fs.phys.clone(), size, pages)))
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        // SAFETY: ftruncate on our descriptor.
        if unsafe { libc::ftruncate(self.fd.as_raw_fd(), len) } != 0 {
            return Err(Errno::last_host());
        }
        Ok(())
    }

    fn fsync(&self) -> Result<(), Errno> {
        // SAFETY: fsync on our descriptor.
        if unsafe { libc::fsync(self.fd.as_raw_fd()) } != 0 {
            return Err(Errno::last_host());
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
