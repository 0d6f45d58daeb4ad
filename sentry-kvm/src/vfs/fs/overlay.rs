//! The sandbox root: an in-memory upper layer over a read-only lower layer served by the Gofer.
//!
//! Every object the sandbox touches becomes a `Node`. Lower directories are listed and looked
//! up lazily, and the answers are kept: the lower layer is the container's root filesystem,
//! which nothing changes while the sandbox runs, so its names and attributes never need asking
//! for twice. A listing comes with every entry's attributes in one answer (`readdir_plus`), so
//! walking a tree (find, ls -l, du) costs a Gofer round trip per directory, not per entry;
//! a node made from a listing asks the Gofer for a handle of its own only when it is opened,
//! read or listed. Failed lookups are remembered too, up to [`MAX_NEGATIVE`] per filesystem
//! (a guest probing millions of names must not grow the Sentry without bound; past the cap a
//! lookup simply asks again), and a listed directory needs none: a name not in it is absent.
//!
//! Changes only ever touch the upper layer, so the sandbox's own changes are what the cache
//! shows at once: a written lower file is copied up into guest memory first; attributes
//! changed by chmod, chown, utimes or truncate live in the node; a removed lower name is hidden
//! by a whiteout (only names the lower layer has get one, so creating and removing names does
//! not leave entries behind). The host rootfs is never written. Without a lower layer this is a
//! plain tmpfs. Volumes, which the host and other sandboxes may change, are not served from
//! here and are not cached (see `volume`).
//!
//! Objects the sandbox creates live in the Sentry, so their number is capped like a tmpfs's
//! inodes (one per two pages of sandbox memory, see [`OverlayFs::max_upper`]): past it,
//! creating fails with ENOSPC instead of growing the Sentry without bound.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

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

/// Most failed lower lookups one filesystem remembers.
pub const MAX_NEGATIVE: usize = 16 * 1024;

pub struct OverlayFs {
    dev: u64,
    gofer: Option<Arc<GoferClient>>,
    phys: Arc<Physical>,
    next_ino: AtomicU64,
    /// Failed lower lookups remembered (`Entry::Absent`), across all directories.
    negatives: AtomicUsize,
    /// Upper-only objects alive, and how many there may be.
    upper: AtomicUsize,
    max_upper: usize,
}

impl OverlayFs {
    /// A filesystem whose lower layer is the Gofer's root (or none: a tmpfs).
    pub fn new(phys: Arc<Physical>, gofer: Option<Arc<GoferClient>>) -> Arc<OverlayFs> {
        Arc::new(OverlayFs {
            dev: stat::makedev(0, 0x20 + NEXT_DEV.fetch_add(1, Ordering::Relaxed) as u32),
            gofer,
            next_ino: AtomicU64::new(UPPER_INO_BASE),
            negatives: AtomicUsize::new(0),
            upper: AtomicUsize::new(0),
            max_upper: Self::max_upper(phys.mem.size()),
            phys,
        })
    }

    /// Objects a sandbox with `memory` bytes may create: one per two pages, as tmpfs
    /// allows by default.
    pub fn max_upper(memory: u64) -> usize {
        (memory / (2 * crate::mm::PAGE_SIZE)).max(1024) as usize
    }

    /// An inode number for a new upper object, or ENOSPC when there are as many as allowed.
    fn alloc_upper(&self) -> Result<u64, Errno> {
        self.upper
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_upper).then_some(n + 1)
            })
            .map_err(|_| Errno::ENOSPC)?;
        Ok(self.alloc_ino())
    }

    /// Upper-only objects alive now (for tests and diagnostics).
    pub fn upper_objects(&self) -> usize {
        self.upper.load(Ordering::SeqCst)
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
                    Some(Lower::walked(LowerRef { fs: self.clone(), handle: 0 })),
                    None,
                )
            }
            None => {
                let meta = Meta::new(stat::S_IFDIR | (mode & 0o7777), Owner::default());
                self.upper.fetch_add(1, Ordering::SeqCst);
                Node::new(self, self.alloc_ino(), FileType::Directory, meta, None, None)
            }
        }
    }

    fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// Failed lower lookups remembered now (for tests and diagnostics).
    pub fn negative_entries(&self) -> usize {
        self.negatives.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    /// An `O_TMPFILE` file that `linkat` may still name (Linux's I_LINKABLE): cleared by the
    /// first link, so a file unlinked again stays gone.
    linkable: bool,
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
            linkable: false,
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
            linkable: false,
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

/// How a node reaches its lower object.
struct Lower {
    state: Mutex<LowerState>,
}

enum LowerState {
    Walked(Arc<LowerRef>),
    /// Known from its directory's listing: `name` in `dir`, walked on first use (the
    /// directory's handle stays open meanwhile).
    Listed {
        dir: Arc<LowerRef>,
        name: Vec<u8>,
    },
}

impl Lower {
    fn walked(r: LowerRef) -> Lower {
        Lower { state: Mutex::new(LowerState::Walked(Arc::new(r))) }
    }
}

enum Entry {
    /// An object looked up or created here; `over_lower` when the lower layer has this name
    /// too (removing the object must then hide the lower one).
    Node { node: Arc<Node>, over_lower: bool },
    /// In the lower listing with these attributes, not looked up yet.
    Lower(Box<Stat>),
    /// Removed by the sandbox: hides the lower object of this name.
    Whiteout,
    /// Not in the lower layer (a failed lookup; counted against [`MAX_NEGATIVE`]).
    Absent,
}

struct DirState {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Whether every lower entry is in `entries` already.
    complete: bool,
    /// `Entry::Absent` entries in `entries`.
    negatives: usize,
    parent: Weak<Node>,
    name: Vec<u8>,
}

impl DirState {
    /// Sets `name`'s entry, keeping the count of remembered failed lookups.
    fn set(&mut self, fs: &OverlayFs, name: &[u8], e: Entry) {
        let absent = matches!(e, Entry::Absent);
        if absent {
            self.negatives += 1;
            fs.negatives.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(Entry::Absent) = self.entries.insert(name.to_vec(), e) {
            self.negatives -= 1;
            fs.negatives.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn unset(&mut self, fs: &OverlayFs, name: &[u8]) {
        if let Some(Entry::Absent) = self.entries.remove(name) {
            self.negatives -= 1;
            fs.negatives.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Remembers that the lower layer has no `name`, unless the filesystem remembers as many
    /// failed lookups as it may (then the next lookup asks the Gofer again).
    fn set_absent(&mut self, fs: &OverlayFs, name: &[u8]) {
        if fs.negatives.load(Ordering::Relaxed) < MAX_NEGATIVE {
            self.set(fs, name, Entry::Absent);
        }
    }

    /// Drops every remembered failed lookup (a complete listing answers for them).
    fn forget_absent(&mut self, fs: &OverlayFs) {
        if self.negatives > 0 {
            self.entries.retain(|_, e| !matches!(e, Entry::Absent));
            fs.negatives.fetch_sub(self.negatives, Ordering::Relaxed);
            self.negatives = 0;
        }
    }

    /// Names that exist here, with their entries.
    fn live(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.entries.iter().filter(|(_, e)| matches!(e, Entry::Node { .. } | Entry::Lower(_)))
    }
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
    lower: Option<Lower>,
    content: Content,
    /// What a fifo or a bound socket attaches to its inode.
    attachment: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

#[track_caller]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    fn new(
        fs: &Arc<OverlayFs>,
        ino: u64,
        kind: FileType,
        meta: Meta,
        lower: Option<Lower>,
        symlink: Option<Vec<u8>>,
    ) -> Arc<Node> {
        let content = match kind {
            FileType::Directory => Content::Dir(Mutex::new(DirState {
                entries: BTreeMap::new(),
                complete: lower.is_none(),
                negatives: 0,
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

    /// This node's handle on its lower object, walked now if it came from a listing.
    fn lower_ref(&self) -> Result<Arc<LowerRef>, Errno> {
        let lower = self.lower.as_ref().ok_or(Errno::ENOENT)?;
        let mut state = lock(&lower.state);
        let (handle, ino) = match &*state {
            LowerState::Walked(r) => return Ok(r.clone()),
            LowerState::Listed { dir, name } => {
                let (handle, st) = dir.gofer()?.walk(dir.handle, name)?;
                (handle, st.ino)
            }
        };
        let r = Arc::new(LowerRef { fs: self.fs.clone(), handle });
        // The lower layer does not change under a running sandbox; another object under this
        // name means it did.
        if ino != self.ino {
            return Err(Errno::ESTALE);
        }
        *state = LowerState::Walked(r.clone());
        Ok(r)
    }

    /// A node for the lower object `name` of this directory with attributes `s`.
    fn lower_node(
        self: &Arc<Self>,
        name: &[u8],
        s: &Stat,
        state: LowerState,
    ) -> Result<Arc<Node>, Errno> {
        let kind = FileType::from_mode(s.mode).ok_or(Errno::EIO)?;
        let lower = Lower { state: Mutex::new(state) };
        let node = Node::new(&self.fs, s.ino, kind, Meta::from_stat(s), Some(lower), None);
        if let Content::Dir(d) = &node.content {
            let mut d = lock(d);
            d.parent = Arc::downgrade(self);
            d.name = name.to_vec();
        }
        Ok(node)
    }

    /// Looks `name` up in the lower layer and records the answer.
    fn lookup_lower(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<Arc<Node>, Errno> {
        if self.lower.is_none() {
            return Err(Errno::ENOENT);
        }
        let dir = self.lower_ref()?;
        match dir.gofer()?.walk(dir.handle, name) {
            Ok((handle, s)) => {
                let lref = Arc::new(LowerRef { fs: self.fs.clone(), handle });
                let node = self.lower_node(name, &s, LowerState::Walked(lref))?;
                st.set(&self.fs, name, Entry::Node { node: node.clone(), over_lower: true });
                Ok(node)
            }
            Err(Errno::ENOENT) => {
                st.set_absent(&self.fs, name);
                Err(Errno::ENOENT)
            }
            Err(e) => Err(e),
        }
    }

    fn child(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<Arc<Node>, Errno> {
        match st.entries.get(name) {
            Some(Entry::Node { node, .. }) => Ok(node.clone()),
            Some(Entry::Whiteout | Entry::Absent) => Err(Errno::ENOENT),
            Some(Entry::Lower(s)) => {
                let s = **s;
                let state = LowerState::Listed { dir: self.lower_ref()?, name: name.to_vec() };
                let node = self.lower_node(name, &s, state)?;
                st.set(&self.fs, name, Entry::Node { node: node.clone(), over_lower: true });
                Ok(node)
            }
            None if st.complete => Err(Errno::ENOENT),
            None => self.lookup_lower(st, name),
        }
    }

    /// Whether the lower layer has `name` (so that removing it here needs a whiteout).
    fn lower_has(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<bool, Errno> {
        if self.lower.is_none() {
            return Ok(false);
        }
        match st.entries.get(name) {
            Some(Entry::Node { over_lower, .. }) => Ok(*over_lower),
            Some(Entry::Lower(_) | Entry::Whiteout) => Ok(true),
            Some(Entry::Absent) => Ok(false),
            None if st.complete => Ok(false),
            None => match self.lookup_lower(st, name) {
                Ok(_) => Ok(true),
                Err(Errno::ENOENT) => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    /// Loads the whole lower listing, with attributes, into `st`.
    fn complete(&self, st: &mut DirState) -> Result<(), Errno> {
        if st.complete {
            return Ok(());
        }
        if self.lower.is_some() {
            let dir = self.lower_ref()?;
            for e in dir.gofer()?.readdir_plus(dir.handle)? {
                if matches!(st.entries.get(&e.name), None | Some(Entry::Absent)) {
                    st.set(&self.fs, &e.name, Entry::Lower(Box::new(e.stat)));
                }
            }
            st.forget_absent(&self.fs);
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
        let over_lower = self.lower_has(st, name)?;
        if let Content::Dir(d) = &node.content {
            let mut d = lock(d);
            d.parent = Arc::downgrade(self);
            d.name = name.to_vec();
            lock(&self.meta).nlink += 1;
        }
        st.set(&self.fs, name, Entry::Node { node, over_lower });
        self.touch(true);
        Ok(())
    }

    /// Removes `name` from this directory's view: a whiteout hides a lower object of that
    /// name; a name only the upper layer had leaves nothing behind.
    fn remove_entry(self: &Arc<Self>, st: &mut DirState, name: &[u8]) -> Result<(), Errno> {
        if self.lower_has(st, name)? {
            st.set(&self.fs, name, Entry::Whiteout);
        } else {
            st.unset(&self.fs, name);
        }
        self.touch(true);
        Ok(())
    }

    fn is_empty_dir(self: &Arc<Self>) -> Result<bool, Errno> {
        let mut st = self.dir()?;
        self.complete(&mut st)?;
        Ok(st.live().next().is_none())
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
            (Some(_), false) => {
                let lower = self.lower_ref()?;
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
        let live = lock(d).live().count();
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
        let mut st = self.dir()?;
        self.complete(&mut st)?;
        // Types and inode numbers come from the nodes and the listing: no lookups.
        Ok(st
            .live()
            .filter_map(|(name, e)| {
                let (ino, kind) = match e {
                    Entry::Node { node, .. } => (node.ino, node.kind),
                    Entry::Lower(s) => (s.ino, FileType::from_mode(s.mode)?),
                    _ => return None,
                };
                Some(DirEntry { name: name.clone(), ino, kind })
            })
            .collect())
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
        let node = Node::new(&self.fs, self.fs.alloc_upper()?, kind, meta, None, None);
        this.insert_new(&mut st, name, node.clone())?;
        Ok(node)
    }

    fn create_unnamed(
        &self,
        mode: u32,
        owner: Owner,
        linkable: bool,
    ) -> Result<Arc<dyn Inode>, Errno> {
        // Made here for its filesystem only: it is in no directory until linked.
        drop(self.dir()?);
        let mut meta = Meta::new(stat::S_IFREG | (mode & 0o7777), owner);
        meta.nlink = 0;
        meta.linkable = linkable;
        Ok(Node::new(&self.fs, self.fs.alloc_upper()?, FileType::Regular, meta, None, None))
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> Result<(), Errno> {
        let this = self.self_arc()?;
        let mut st = self.dir()?;
        let mut meta = Meta::new(stat::S_IFLNK | 0o777, owner);
        meta.size = target.len() as u64;
        let node = Node::new(
            &self.fs,
            self.fs.alloc_upper()?,
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
        {
            let mut m = lock(&node.meta);
            if m.nlink == 0 && !m.linkable {
                return Err(Errno::ENOENT);
            }
            m.linkable = false;
        }
        let over_lower = this.lower_has(&mut st, name)?;
        st.set(&self.fs, name, Entry::Node { node: node.clone(), over_lower });
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
        this.remove_entry(&mut st, name)?;
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
        this.remove_entry(&mut st, name)?;
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
        let over_lower = dest.lower_has(dst_st, new_name)?;
        dst_st.set(&self.fs, new_name, Entry::Node { node: node.clone(), over_lower });
        drop(dst_guard);
        if !same_dir || name != new_name {
            this.remove_entry(&mut src_st, name)?;
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
        if self.lower.is_none() {
            return Err(Errno::EIO);
        }
        let lower = self.lower_ref()?;
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

impl Drop for Node {
    fn drop(&mut self) {
        if self.ino >= UPPER_INO_BASE {
            self.fs.upper.fetch_sub(1, Ordering::SeqCst);
        }
        if let Content::Dir(d) = &self.content {
            let n = lock(d).negatives;
            self.fs.negatives.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl Node {
    fn self_arc(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::frames::{FrameAllocator, TranslationFlush};
    use crate::mm::phys::PhysMemory;
    use crate::mm::{PAGE_SIZE, PhysAddr};
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    struct NoFlush;
    impl TranslationFlush for NoFlush {
        fn flush_all(&self) {}
    }

    /// An overlay whose lower layer is `dir`, served by a Gofer thread counting its requests.
    fn overlay(dir: &Path) -> (Arc<OverlayFs>, Arc<Node>, Arc<AtomicUsize>) {
        let mem = PhysMemory::new(16 * PAGE_SIZE).unwrap();
        let frames = FrameAllocator::new(PhysAddr(0), mem.size());
        let phys = Arc::new(Physical { mem, frames, flush: Arc::new(NoFlush), mirror: None });
        let (ours, theirs) = crate::gofer::wire::socketpair().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        crate::gofer::server::serve_in_thread(dir, theirs, served.clone());
        let fs = OverlayFs::new(phys, Some(Arc::new(GoferClient::from_channel(ours).unwrap())));
        let root = fs.root(0o755);
        (fs, root, served)
    }

    fn requests(served: &AtomicUsize) -> usize {
        served.load(Ordering::Relaxed)
    }

    fn names(dir: &dyn Inode) -> Vec<String> {
        dir.readdir().unwrap().into_iter().map(|e| String::from_utf8(e.name).unwrap()).collect()
    }

    #[test]
    fn a_tree_walk_costs_a_round_trip_per_directory() {
        let host = tempfile::tempdir().unwrap();
        let d = host.path().join("d");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        for i in 0..300 {
            std::fs::write(d.join(format!("f{i:03}")), vec![b'x'; i]).unwrap();
        }
        std::os::unix::fs::symlink("../elsewhere", d.join("link")).unwrap();
        let (_fs, root, served) = overlay(host.path());
        let dir = root.lookup(b"d").unwrap();
        let before = requests(&served);
        let entries = dir.readdir().unwrap();
        assert_eq!(entries.len(), 302);
        for e in &entries {
            let st = dir.lookup(&e.name).unwrap().stat().unwrap();
            let name = String::from_utf8(e.name.clone()).unwrap();
            let want = std::fs::symlink_metadata(d.join(&name)).unwrap();
            assert_eq!(
                (st.ino, st.mode, st.size as u64, st.nlink, st.mtime.sec, st.mtime.nsec),
                (
                    want.ino(),
                    want.mode(),
                    want.size(),
                    want.nlink(),
                    want.mtime(),
                    want.mtime_nsec()
                ),
                "{name}"
            );
            assert_eq!(e.ino, want.ino());
        }
        // One listing answer; every lookup and stat after it is answered from the cache.
        assert_eq!(requests(&served) - before, 1);
        // Missing names need no question either once the directory is listed.
        assert_eq!(dir.lookup(b"nope").err(), Some(Errno::ENOENT));
        assert_eq!(requests(&served) - before, 1);
        // A listed object gets its own handle when first used.
        assert_eq!(dir.lookup(b"link").unwrap().readlink().unwrap(), b"../elsewhere");
        assert_eq!(names(&*dir.lookup(b"sub").unwrap()), Vec::<String>::new());
        assert_eq!(requests(&served) - before, 1 + 2 + 2);
    }

    #[test]
    fn the_sandbox_changes_show_at_once() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("d")).unwrap();
        std::fs::write(host.path().join("d/a"), "aaa").unwrap();
        std::fs::write(host.path().join("d/b"), "b").unwrap();
        let (_fs, root, _) = overlay(host.path());
        let dir = root.lookup(b"d").unwrap();
        let owner = Owner::default();
        // A failed lookup, remembered, then the name is created.
        assert_eq!(dir.lookup(b"new").err(), Some(Errno::ENOENT));
        dir.create(b"new", FileType::Regular, 0o640, 0, owner).unwrap();
        assert_eq!(dir.lookup(b"new").unwrap().stat().unwrap().mode, stat::S_IFREG | 0o640);
        assert_eq!(names(&*dir), ["a", "b", "new"]);
        // Removing and renaming lower names.
        dir.unlink(b"a").unwrap();
        assert_eq!(dir.lookup(b"a").err(), Some(Errno::ENOENT));
        let b_ino = dir.lookup(b"b").unwrap().stat().unwrap().ino;
        dir.rename(b"b", &dir, b"c").unwrap();
        assert_eq!(dir.lookup(b"b").err(), Some(Errno::ENOENT));
        assert_eq!(dir.lookup(b"c").unwrap().stat().unwrap().ino, b_ino);
        assert_eq!(names(&*dir), ["c", "new"]);
        // A new object under a removed lower name is new, and removing it hides the lower one.
        dir.create(b"a", FileType::Regular, 0o600, 0, owner).unwrap();
        assert_eq!(dir.lookup(b"a").unwrap().stat().unwrap().size, 0);
        dir.unlink(b"a").unwrap();
        assert_eq!(dir.lookup(b"a").err(), Some(Errno::ENOENT));
        // Attribute changes.
        let c = dir.lookup(b"c").unwrap();
        let mtime = Timespec { sec: 1_000_000, nsec: 5 };
        c.setattr(SetAttr {
            mode: Some(0o600),
            size: Some(7),
            mtime: Some(mtime),
            ..Default::default()
        })
        .unwrap();
        let st = dir.lookup(b"c").unwrap().stat().unwrap();
        assert_eq!((st.mode & 0o7777, st.size, st.mtime), (0o600, 7, mtime));
        dir.link(b"hard", &c).unwrap();
        assert_eq!(dir.lookup(b"hard").unwrap().stat().unwrap().nlink, 2);
        // Directories.
        dir.create(b"sub", FileType::Directory, 0o755, 0, owner).unwrap();
        assert_eq!(dir.stat().unwrap().nlink, 3);
        dir.rmdir(b"sub").unwrap();
        assert_eq!(dir.lookup(b"sub").err(), Some(Errno::ENOENT));
        assert_eq!(names(&*dir), ["c", "hard", "new"]);
        // The host saw none of it.
        assert_eq!(std::fs::read_to_string(host.path().join("d/a")).unwrap(), "aaa");
        assert!(!host.path().join("d/new").exists());
    }

    #[test]
    fn objects_a_guest_creates_are_capped_like_tmpfs_inodes() {
        let host = tempfile::tempdir().unwrap();
        let (fs, root, _) = overlay(host.path());
        let cap = OverlayFs::max_upper(16 * PAGE_SIZE);
        assert_eq!(cap, 1024, "the floor for a tiny sandbox");
        let owner = Owner::default();
        let mut made = 0;
        let err = loop {
            let name = format!("f{made}");
            let r = if made % 3 == 0 {
                root.symlink(name.as_bytes(), b"target", owner)
            } else {
                root.create(name.as_bytes(), FileType::Regular, 0o644, 0, owner).map(drop)
            };
            match r {
                Ok(()) => made += 1,
                Err(e) => break e,
            }
        };
        assert_eq!((err, made, fs.upper_objects()), (Errno::ENOSPC, cap, cap));
        assert_eq!(root.create_unnamed(0o600, owner, true).err(), Some(Errno::ENOSPC));
        // Removing one makes room for one.
        root.unlink(b"f1").unwrap();
        assert_eq!(fs.upper_objects(), cap - 1);
        root.create(b"again", FileType::Directory, 0o755, 0, owner).unwrap();
        assert_eq!(
            root.create(b"more", FileType::Regular, 0o644, 0, owner).err(),
            Some(Errno::ENOSPC)
        );
    }

    #[test]
    fn names_a_guest_makes_up_do_not_grow_the_cache_without_bound() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("d")).unwrap();
        let (fs, root, served) = overlay(host.path());
        let dir = root.lookup(b"d").unwrap();
        for i in 0..MAX_NEGATIVE + 500 {
            assert_eq!(root.lookup(format!("missing{i}").as_bytes()).err(), Some(Errno::ENOENT));
        }
        assert_eq!(fs.negative_entries(), MAX_NEGATIVE);
        // Remembered answers cost nothing; past the cap a lookup asks again.
        let before = requests(&served);
        assert_eq!(root.lookup(b"missing0").err(), Some(Errno::ENOENT));
        assert_eq!(requests(&served), before);
        assert_eq!(
            root.lookup(format!("missing{}", MAX_NEGATIVE + 1).as_bytes()).err(),
            Some(Errno::ENOENT)
        );
        assert_eq!(requests(&served), before + 1);
        // A complete listing answers for every missing name: the remembered ones go.
        assert_eq!(names(&*root), ["d"]);
        assert_eq!(fs.negative_entries(), 0);
        // Creating and removing names leaves no entries behind.
        let owner = Owner::default();
        for i in 0..2000 {
            let name = format!("tmp{i}");
            dir.create(name.as_bytes(), FileType::Regular, 0o644, 0, owner).unwrap();
            dir.unlink(name.as_bytes()).unwrap();
        }
        let d = as_node(&dir).unwrap();
        assert_eq!(
            lock(match &d.content {
                Content::Dir(s) => s,
                _ => unreachable!(),
            })
            .entries
            .len(),
            0
        );
        assert_eq!(fs.negative_entries(), 0);
    }
}
