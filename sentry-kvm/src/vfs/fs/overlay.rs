//! The sandbox root: an in-memory upper layer over a read-only lower layer served by the Gofer.
//!
//! Every object the sandbox touches becomes a `Node`. Lower directories are listed and looked
//! up lazily (answers, including "does not exist", are cached: the lower layer does not change
//! while the sandbox runs). Changes only ever touch the upper layer: a written lower file is
//! copied up into guest memory first; a removed lower name is hidden. The host rootfs is never
//! written. Without a lower layer this is a plain tmpfs.

use std::any::Any;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::abi::Errno;
use crate::abi::stat::{self, FileType, O_TRUNC, Stat, Timespec};
use crate::gofer::GoferClient;
use crate::gofer::protocol::Handle;
use crate::mm::Physical;
use crate::mm::mappable::{Mappable, MemObject, PageSource};
use crate::vfs::context::Context;
use crate::vfs::dir_file::DirFile;
use crate::vfs::file::FileOps;
use crate::vfs::inode::{DirEntry, Inode, InodeKey, Owner, SetAttr};

/// Inode numbers of upper-only objects start here, far above host inode numbers in practice.
const UPPER_INO_BASE: u64 = 1 << 48;

static NEXT_DEV: AtomicU64 = AtomicU64::new(1);

pub struct OverlayFs {
    dev: u64,
    gofer: Option<Arc<GoferClient>>,
    phys: Arc<Physical>,
    next_ino: AtomicU64,
}

impl OverlayFs {
    /// A filesystem whose lower layer is the Gofer's root (or none: a tmpfs).
    pub fn new(phys: Arc<Physical>, gofer: Option<Arc<GoferClient>>) -> Arc<OverlayFs> {
        Arc::new(OverlayFs {
            dev: stat::makedev(0, 0x20 + NEXT_DEV.fetch_add(1, Ordering::Relaxed) as u32),
            gofer,
            phys,
            next_ino: AtomicU64::new(UPPER_INO_BASE),
        })
    }

    /// The root directory.
    pub fn root(self: &Arc<Self>, mode: u32) -> Arc<Node> {
        match &self.gofer {
            Some(g) => {
                let st = g.root_stat();
                Node::new(
                    self,
                    st.ino,
                    FileType::Directory,
                    Meta::from_stat(&st),
                    Some(LowerRef { fs: self.clone(), handle: 0 }),
                    None,
                )
            }
            None => {
                let meta = Meta::new(stat::S_IFDIR | (mode & 0o7777), Owner::default());
                Node::new(self, self.alloc_ino(), FileType::Directory, meta, None, None)
            }
        }
    }

    fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    rdev: u64,
    /// Size of objects whose data is not in a MemObject (lower files not yet read, symlinks).
    size: u64,
    /// 512-byte blocks as the lower layer reports them (None for upper objects).
    lower_blocks: Option<i64>,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
}

impl Meta {
    fn new(mode: u32, owner: Owner) -> Meta {
        let now = Timespec::now();
        Meta {
            mode,
            uid: owner.uid,
            gid: owner.gid,
            nlink: 1,
            rdev: 0,
            size: 0,
            lower_blocks: None,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn from_stat(s: &Stat) -> Meta {
        Meta {
            mode: s.mode,
            uid: s.uid,
            gid: s.gid,
            nlink: s.nlink,
            rdev: s.rdev,
            size: s.size.max(0) as u64,
            lower_blocks: Some(s.blocks),
            atime: s.atime,
            mtime: s.mtime,
            ctime: s.ctime,
        }
    }
}

/// A handle on the lower object, released when the node goes away.
struct LowerRef {
    fs: Arc<OverlayFs>,
    handle: Handle,
}

impl LowerRef {
    fn gofer(&self) -> Result<&GoferClient, Errno> {
        self.fs.gofer.as_deref().ok_or(Errno::EIO)
    }
}

impl Drop for LowerRef {
    fn drop(&mut self) {
        if let Some(g) = &self.fs.gofer {
            g.close(self.handle);
        }
    }
}

enum Entry {
    Node(Arc<Node>),
    /// Present in the lower listing, not looked up yet.
    Lower,
    /// Known not to exist (removed, or absent from the lower layer).
    Gone,
}

struct DirState {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Whether every lower entry is in `entries` already.
    complete: bool,
    parent: Weak<Node>,
    name: Vec<u8>,
}

struct FileState {
    /// Contents: the page cache of the lower file, or the upper data once copied up.
    data: Option<Arc<MemObject>>,
    copied_up: bool,
}

enum Content {
    Dir(Mutex<DirState>),
    File(Mutex<FileState>),
    Symlink(Mutex<Option<Vec<u8>>>),
    Special,
}

pub struct Node {
    me: Weak<Node>,
    fs: Arc<OverlayFs>,
    ino: u64,
    kind: FileType,
    meta: Mutex<Meta>,
    lower: Option<LowerRef>,
    content: Content,
    /// What a fifo or a bound socket attaches to its inode.
    attachment: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    fn new(
        fs: &Arc<OverlayFs>,
        ino: u64,
        kind: FileType,
        meta: Meta,
        lower: Option<LowerRef>,
        symlink: Option<Vec<u8>>,
    ) -> Arc<Node> {
        let content = match kind {
            FileType::Directory => Content::Dir(Mutex::new(DirState {
                entries: BTreeMap::new(),
                complete: lower.is_none(),
                parent: Weak::new(),
                name: Vec::new(),
            })),
            FileType::Regular => {
                Content::File(Mutex::new(FileState { data: None, copied_up: lower.is_none() }))
            }
            FileType::Symlink => Content::Symlink(Mutex::new(symlink)),
            _ => Content::Special,
        };
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            fs: fs.clone(),
            ino,
            kind,
            meta: Mutex::new(meta),
            lower,
            content,
            attachment: Mutex::new(None),
        })
    }

    fn dir(&self) -> Result<MutexGuard<'_, DirState>, Errno> {
        match &self.content {
            Content::Dir(d) => Ok(lock(d)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn touch(&self, data: bool) {
        let now = Timespec::now();
        let mut m = lock(&self.meta);
        m.ctime = now;
        if data {
            m.mtime = now;
        }
    }

    /// Looks `name` up in the lower layer and records the answer.
    fn lookup_lower(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<Arc<Node>, Errno> {
        let lower = self.lower.as_ref().ok_or(Errno::ENOENT)?;
        match lower.gofer()?.walk(lower.handle, name) {
            Ok((handle, s)) => {
                let kind = FileType::from_mode(s.mode).ok_or(Errno::EIO)?;
                let lref = LowerRef { fs: self.fs.clone(), handle };
                let node = Node::new(&self.fs, s.ino, kind, Meta::from_stat(&s), Some(lref), None);
                if let Content::Dir(d) = &node.content {
                    let mut d = lock(d);
                    d.parent = Arc::downgrade(self);
                    d.name = name.to_vec();
                }
                st.entries.insert(name.to_vec(), Entry::Node(node.clone()));
                Ok(node)
            }
            Err(Errno::ENOENT) => {
                st.entries.insert(name.to_vec(), Entry::Gone);
                Err(Errno::ENOENT)
            }
            Err(e) => Err(e),
        }
    }

    fn child(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<Arc<Node>, Errno> {
        match st.entries.get(name) {
            Some(Entry::Node(n)) => Ok(n.clone()),
            Some(Entry::Gone) => Err(Errno::ENOENT),
            Some(Entry::Lower) => self.lookup_lower(st, name),
            None if st.complete => Err(Errno::ENOENT),
            None => self.lookup_lower(st, name),
        }
    }

    /// Loads the whole lower listing into `st`.
    fn complete(&self, st: &mut DirState) -> Result<(), Errno> {
        if st.complete {
            return Ok(());
        }
        if let Some(lower) = &self.lower {
            for e in lower.gofer()?.readdir(lower.handle)? {
                st.entries.entry(e.name).or_insert(Entry::Lower);
            }
        }
        st.complete = true;
        Ok(())
    }

    fn insert_new(
        self: &Arc<Self>,
        st: &mut DirState,
        name: &[u8],
        node: Arc<Node>,
    ) -> Result<(), Errno> {
        if self.child(st, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        if let Content::Dir(d) = &node.content {
            let mut d = lock(d);
            d.parent = Arc::downgrade(self);
            d.name = name.to_vec();
            lock(&self.meta).nlink += 1;
        }
        st.entries.insert(name.to_vec(), Entry::Node(node));
        self.touch(true);
        Ok(())
    }

    /// Removes `name` from this directory's view.
    fn remove_entry(&self, st: &mut DirState, name: &[u8]) {
        if self.lower.is_some() {
            st.entries.insert(name.to_vec(), Entry::Gone);
        } else {
            st.entries.remove(name);
        }
        self.touch(true);
    }

    fn is_empty_dir(self: &Arc<Self>) -> Result<bool, Errno> {
        let mut st = self.dir()?;
        self.complete(&mut st)?;
        let names: Vec<Vec<u8>> = st
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e, Entry::Gone))
            .map(|(k, _)| k.clone())
            .collect();
        Ok(names.is_empty())
    }

    /// The file's contents object, created on first use (reading lower data lazily).
    fn data(&self) -> Result<Arc<MemObject>, Errno> {
        let Content::File(f) = &self.content else { return Err(Errno::EINVAL) };
        let mut f = lock(f);
        if let Some(d) = &f.data {
            return Ok(d.clone());
        }
        let size = lock(&self.meta).size;
        let obj = match (&self.lower, f.copied_up) {
            (Some(lower), false) => {
                let fd = lower.gofer()?.open(lower.handle)?;
                Arc::new(MemObject::with_source(
                    self.fs.phys.clone(),
                    size,
                    Arc::new(HostPages::new(Arc::new(fd))),
                ))
            }
            _ => Arc::new(MemObject::new(self.fs.phys.clone(), size)),
        };
        f.data = Some(obj.clone());
        Ok(obj)
    }

    /// Makes the upper layer hold the file's data, before it is changed.
    fn copy_up(&self) -> Result<Arc<MemObject>, Errno> {
        let data = self.data()?;
        let Content::File(f) = &self.content else { return Err(Errno::EINVAL) };
        let mut f = lock(f);
        if !f.copied_up {
            data.detach_source()?;
            f.copied_up = true;
            lock(&self.meta).lower_blocks = None;
        }
        Ok(data)
    }

    fn size(&self) -> u64 {
        if let Content::File(f) = &self.content
            && let Some(d) = &lock(f).data
        {
            return d.size();
        }
        lock(&self.meta).size
    }
}

/// Page source reading a host file through a descriptor the Gofer gave us.
pub struct HostPages {
    fd: Arc<OwnedFd>,
}

impl HostPages {
    pub fn new(fd: Arc<OwnedFd>) -> HostPages {
        HostPages { fd }
    }
}

impl PageSource for HostPages {
    fn read_page(&self, offset: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mut done = 0;
        while done < buf.len() {
            // SAFETY: reading into the unread tail of `buf`.
            let n = unsafe {
                libc::pread(
                    self.fd.as_raw_fd(),
                    buf[done..].as_mut_ptr().cast(),
                    buf.len() - done,
                    (offset + done as u64) as libc::off_t,
                )
            };
            if n < 0 {
                let e = Errno::last_host();
                if e == Errno::EINTR {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                break;
            }
            done += n as usize;
        }
        Ok(())
    }
}

fn as_node(inode: &Arc<dyn Inode>) -> Option<Arc<Node>> {
    let any: Arc<dyn Any + Send + Sync> = inode.clone();
    any.downcast::<Node>().ok()
}

/// What Linux's tmpfs counts per directory entry ("." and ".." included) as a directory's size.
const BOGO_DIRENT_SIZE: u64 = 20;

impl Node {
    /// A directory from the lower layer has the size its filesystem reports; one that exists
    /// only here grows with its entries as on tmpfs.
    fn dir_size(&self, m: &Meta) -> u64 {
        if self.lower.is_some() {
            return m.size;
        }
        let Content::Dir(d) = &self.content else { return 0 };
        let live = lock(d).entries.values().filter(|e| matches!(e, Entry::Node(_))).count();
        (2 + live as u64) * BOGO_DIRENT_SIZE
    }
}

impl Inode for Node {
    fn key(&self) -> InodeKey {
        (self.fs.dev, self.ino)
    }

    fn file_type(&self) -> FileType {
        self.kind
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let m = *lock(&self.meta);
        let size = match self.kind {
            FileType::Regular => self.size(),
            FileType::Directory => self.dir_size(&m),
            _ => m.size,
        };
        // Upper directories hold no pages, as on tmpfs.
        let upper_blocks = match self.kind {
            FileType::Directory => 0,
            _ => (size.div_ceil(4096) * 8) as i64,
        };
        Ok(Stat {
            dev: self.fs.dev,
            ino: self.ino,
            nlink: m.nlink,
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            rdev: m.rdev,
            size: size as i64,
            blksize: 4096,
            // Upper data occupies whole pages, as on tmpfs.
            blocks: m.lower_blocks.unwrap_or(upper_blocks),
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn lookup(&self, name: &[u8]) -> Result<Arc<dyn Inode>, Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        Ok(this.child(&mut st, name)?)
    }

    fn readdir(&self) -> Result<Vec<DirEntry>, Errno> {
        let this = self.self_arc()?;
        let mut st = this.dir()?;
        this.complete(&mut st)?;
        let mut out = Vec::new();
        let names: Vec<Vec<u8>> = st
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e, Entry::Gone))
            .map(|(k, _)| k.clone())
            .collect();
        for name in names {
            // Lower entries need a lookup for their type and inode number; the Gofer answers
            // from its cache of the listing, and the answer is kept.
            if let Ok(n) = this.child(&mut st, &name) {
                out.push(DirEntry { name, ino: n.ino, kind: n.kind });
            }
        }
        Ok(out)
    }

    fn parent(&self) -> Option<(Arc<dyn Inode>, Vec<u8>)> {
        let st = self.dir().ok()?;
        let p = st.parent.upgrade()?;
        Some((p as Arc<dyn Inode>, st.name.clone()))
    }

    fn create(
        &self,
        name: &[u8],
        kind: FileType,
        mode: u32,
        rdev: u64,
        owner: Owner,
    ) -> Result<Arc<dyn Inode>, Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        let mut meta = Meta::new(kind.mode_bits() | (mode & 0o7777), owner);
        meta.rdev = rdev;
        if kind == FileType::Directory {
            meta.nlink = 2;
        }
        let node = Node::new(&self.fs, self.fs.alloc_ino(), kind, meta, None, None);
        this.insert_new(&mut st, name, node.clone())?;
        Ok(node)
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        let mut meta = Meta::new(stat::S_IFLNK | 0o777, owner);
        meta.size = target.len() as u64;
        let node = Node::new(
            &self.fs,
            self.fs.alloc_ino(),
            FileType::Symlink,
            meta,
            None,
            Some(target.to_vec()),
        );
        this.insert_new(&mut st, name, node)
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let node = as_node(target).filter(|n| Arc::ptr_eq(&n.fs, &self.fs)).ok_or(Errno::EXDEV)?;
        if node.kind == FileType::Directory {
            return Err(Errno::EPERM);
        }
        let mut st = self.dir()?;
        if this.child(&mut st, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        st.entries.insert(name.to_vec(), Entry::Node(node.clone()));
        lock(&node.meta).nlink += 1;
        node.touch(false);
        self.touch(true);
        Ok(())
    }

    fn unlink(&self, name: &[u8]) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        let node = this.child(&mut st, name)?;
        if node.kind == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        this.remove_entry(&mut st, name);
        let mut m = lock(&node.meta);
        m.nlink = m.nlink.saturating_sub(1);
        m.ctime = Timespec::now();
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        let node = this.child(&mut st, name)?;
        if node.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !node.is_empty_dir()? {
            return Err(Errno::ENOTEMPTY);
        }
        this.remove_entry(&mut st, name);
        lock(&node.meta).nlink = 0;
        let mut m = lock(&self.meta);
        m.nlink = m.nlink.saturating_sub(1);
        Ok(())
    }

    fn rename(&self, name: &[u8], new_dir: &Arc<dyn Inode>, new_name: &[u8]) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let dest = as_node(new_dir).filter(|n| Arc::ptr_eq(&n.fs, &self.fs)).ok_or(Errno::EXDEV)?;
        let same_dir = Arc::ptr_eq(&this, &dest);
        // Lock order: source directory first, then destination (a rename loop is prevented by
        // the ancestry check below, done before the second lock is taken).
        let mut src_st = self.dir()?;
        let node = this.child(&mut src_st, name)?;
        if node.kind == FileType::Directory {
            // Refuse moving a directory into itself or below.
            let mut cur = Some(dest.clone());
            while let Some(c) = cur {
                if Arc::ptr_eq(&c, &node) {
                    return Err(Errno::EINVAL);
                }
                cur = if Arc::ptr_eq(&c, &this) {
                    None
                } else {
                    c.dir().ok().and_then(|d| d.parent.upgrade())
                };
            }
        }
        let mut dst_guard = if same_dir { None } else { Some(dest.dir()?) };
        let dst_st: &mut DirState = match dst_guard.as_mut() {
            Some(g) => g,
            None => &mut src_st,
        };
        if let Ok(existing) = dest.child(dst_st, new_name) {
            if Arc::ptr_eq(&existing, &node) {
                return Ok(());
            }
            match (node.kind == FileType::Directory, existing.kind == FileType::Directory) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !existing.is_empty_dir()? => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            let mut m = lock(&existing.meta);
            m.nlink = m.nlink.saturating_sub(1);
        }
        dst_st.entries.insert(new_name.to_vec(), Entry::Node(node.clone()));
        drop(dst_guard);
        if same_dir {
            this.remove_entry_keep(&mut src_st, name, new_name);
        } else {
            this.remove_entry(&mut src_st, name);
        }
        drop(src_st);
        if let Content::Dir(d) = &node.content {
            let mut d = lock(d);
            d.parent = Arc::downgrade(&dest);
            d.name = new_name.to_vec();
            if !same_dir {
                lock(&self.meta).nlink -= 1;
                lock(&dest.meta).nlink += 1;
            }
        }
        node.touch(false);
        dest.touch(true);
        Ok(())
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        let Content::Symlink(t) = &self.content else { return Err(Errno::EINVAL) };
        let mut t = lock(t);
        if let Some(t) = &*t {
            return Ok(t.clone());
        }
        let lower = self.lower.as_ref().ok_or(Errno::EIO)?;
        let target = lower.gofer()?.readlink(lower.handle)?;
        *t = Some(target.clone());
        Ok(target)
    }

    fn setattr(&self, a: SetAttr) -> Result<(), Errno> {
        if let Some(size) = a.size {
            if self.kind != FileType::Regular {
                return Err(if self.kind == FileType::Directory {
                    Errno::EISDIR
                } else {
                    Errno::EINVAL
                });
            }
            self.copy_up()?.truncate(size);
            self.touch(true);
        }
        let mut m = lock(&self.meta);
        if let Some(mode) = a.mode {
            m.mode = (m.mode & stat::S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = a.uid {
            m.uid = uid;
        }
        if let Some(gid) = a.gid {
            m.gid = gid;
        }
        if let Some(t) = a.atime {
            m.atime = t;
        }
        if let Some(t) = a.mtime {
            m.mtime = t;
        }
        m.ctime = Timespec::now();
        Ok(())
    }

    fn open(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        match self.kind {
            FileType::Directory => Ok(DirFile::new(self)),
            FileType::Regular => {
                if flags & O_TRUNC != 0 && flags & stat::O_ACCMODE != stat::O_RDONLY {
                    self.setattr(SetAttr { size: Some(0), ..Default::default() })?;
                }
                Ok(Arc::new(RegularFile { node: self }))
            }
            FileType::CharDevice => crate::vfs::fs::dev::open_device(lock(&self.meta).rdev, flags),
            // The kernel opens a FIFO through its attachment (the pipe); nothing else opens a
            // FIFO or a socket.
            FileType::Fifo | FileType::Socket => Err(Errno::ENXIO),
            FileType::BlockDevice => Err(Errno::EACCES),
            FileType::Symlink => Err(Errno::ELOOP),
        }
    }

    fn replace_contents(&self, data: &[u8]) -> Result<(), Errno> {
        if self.kind != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        let obj = self.copy_up()?;
        obj.truncate(0);
        obj.write(0, data)?;
        self.touch(true);
        Ok(())
    }

    fn attachment(&self) -> Option<&Mutex<Option<Arc<dyn Any + Send + Sync>>>> {
        Some(&self.attachment)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Node {
    fn self_arc(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    fn remove_entry_keep(&self, st: &mut DirState, old: &[u8], new: &[u8]) {
        if old != new {
            self.remove_entry(st, old);
        }
    }
}

/// An open regular file of the overlay.
pub struct RegularFile {
    node: Arc<Node>,
}

impl FileOps for RegularFile {
    fn seekable(&self) -> bool {
        true
    }

    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let n = self.node.data()?.read(offset, buf)?;
        Ok(n)
    }

    fn write_at(&self, _ctx: &dyn Context, data: &[u8], offset: u64) -> Result<usize, Errno> {
        let obj = self.node.copy_up()?;
        let n = obj.write(offset, data)?;
        self.node.touch(true);
        Ok(n)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        self.node.stat()
    }

    fn mappable(&self) -> Result<Arc<dyn Mappable>, Errno> {
        Ok(self.node.data()?)
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.node.setattr(SetAttr { size: Some(len), ..Default::default() })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
