//! Open file descriptions: what a file descriptor refers to.

use crate::sync::Mutex;
use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::abi::stat::{O_ACCMODE, O_APPEND, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_WRONLY, Stat};
use crate::abi::{Errno, errno::SysResult};
use crate::mm::mappable::Mappable;
use crate::vfs::Location;
use crate::vfs::context::Context;
use crate::vfs::lock::InodeLocks;
use crate::vfs::notify::Notifier;
use crate::vfs::notify::event::{IN_ACCESS, IN_CLOSE_NOWRITE, IN_CLOSE_WRITE, IN_MODIFY};
use crate::waiter::{Events, WaitQueue};

pub const SEEK_SET: u32 = 0;
pub const SEEK_CUR: u32 = 1;
pub const SEEK_END: u32 = 2;
pub const SEEK_DATA: u32 = 3;
pub const SEEK_HOLE: u32 = 4;

/// Whether `flags` open for writing.
pub fn wants_write(flags: u32) -> bool {
    matches!(flags & O_ACCMODE, O_WRONLY | O_RDWR)
}

/// Status flags that fcntl(F_SETFL) may change.
pub const SETTABLE_STATUS: u32 = O_APPEND | O_NONBLOCK | 0o20000 /* O_ASYNC */ | 0o40000 /* O_DIRECT */ | 0o1000000 /* O_NOATIME */;

/// What a kind of open file does. Seekable files implement `read_at`/`write_at`; streams
/// implement `read`/`write` and may block.
pub trait FileOps: Send + Sync + Any {
    fn seekable(&self) -> bool {
        false
    }
    fn read_at(&self, _ctx: &dyn Context, _buf: &mut [u8], _offset: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    fn write_at(&self, _ctx: &dyn Context, _data: &[u8], _offset: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    fn read(&self, _ctx: &dyn Context, _buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    fn write(&self, _ctx: &dyn Context, _data: &[u8], _nonblock: bool) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Readiness for poll/select/epoll.
    fn readiness(&self) -> Events {
        Events::IN | Events::OUT
    }
    /// Where waiters for readiness changes register (None: always ready).
    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        None
    }
    fn stat(&self) -> Result<Stat, Errno>;
    fn ioctl(&self, _ctx: &dyn Context, _cmd: u32, _arg: u64) -> SysResult {
        Err(Errno::ENOTTY)
    }
    fn mappable(&self) -> Result<Arc<dyn Mappable>, Errno> {
        Err(Errno::ENODEV)
    }
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
    fn fsync(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// Custom seek (directories, special files); None uses the generic rules.
    fn seek(&self, _offset: i64, _whence: u32, _current: u64) -> Option<Result<u64, Errno>> {
        None
    }
    /// Directory listing in getdents64 format from `cursor`, at most `cap` bytes.
    fn getdents(&self, _cursor: &mut u64, _cap: usize) -> Result<Vec<u8>, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// A new open file description of the same object, as opening /proc/PID/fd/N makes for
    /// descriptors outside the mount tree (pipes, the host's stdio). Linux refuses sockets and
    /// most anonymous files with ENXIO.
    fn reopen(self: Arc<Self>, _flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }
    fn as_any(&self) -> &dyn Any;
}

/// An open file description, shared by duplicated descriptors and across fork.
pub struct File {
    pub ops: Arc<dyn FileOps>,
    pub location: Option<Location>,
    /// The path it was opened by (shown by /proc/self/fd).
    pub path: Vec<u8>,
    flags: AtomicU32,
    pub offset: Mutex<u64>,
    /// Unique per description: owns its flock and OFD locks.
    id: u64,
    /// The locks of its file once this description has taken a flock or OFD lock, released
    /// when it goes.
    locks: OnceLock<Arc<InodeLocks>>,
    /// Where its opening, uses and closing are reported (inotify), for files opened by path.
    notifier: OnceLock<Arc<Notifier>>,
}

static NEXT_FILE_ID: AtomicU64 = AtomicU64::new(1);

impl Drop for File {
    fn drop(&mut self) {
        if let Some(l) = self.locks.get() {
            l.release_description(self.id);
        }
        self.report(if self.writable() { IN_CLOSE_WRITE } else { IN_CLOSE_NOWRITE });
        if let (Some(n), Some(loc)) = (self.notifier.get(), &self.location) {
            n.closed(loc.inode.key());
        }
    }
}

impl File {
    pub fn new(
        ops: Arc<dyn FileOps>,
        flags: u32,
        location: Option<Location>,
        path: Vec<u8>,
    ) -> Arc<File> {
        Arc::new(File {
            ops,
            location,
            path,
            flags: AtomicU32::new(flags),
            offset: Mutex::new(0),
            id: NEXT_FILE_ID.fetch_add(1, Ordering::Relaxed),
            locks: OnceLock::new(),
            notifier: OnceLock::new(),
        })
    }

    /// The open file description's identity (the owner of its flock and OFD locks).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Remembers the locks of this description's file, to release them when it goes; returns
    /// the ones remembered (a description's file never changes).
    pub fn attach_locks(&self, locks: Arc<InodeLocks>) -> Arc<InodeLocks> {
        self.locks.get_or_init(|| locks).clone()
    }

    /// From now on, reports what is done through this description to `notifier`'s watches.
    pub fn report_to(&self, notifier: &Arc<Notifier>) {
        if let Some(loc) = &self.location
            && self.notifier.set(notifier.clone()).is_ok()
        {
            let place = loc.via.as_ref().map(|via| (via.0.inode.key(), via.1.clone()));
            notifier.opened(loc.inode.key(), place);
        }
    }

    /// Reports `event` (an inotify event bit) on the file, if it reports at all.
    pub fn report(&self, event: u32) {
        if let (Some(n), Some(loc)) = (self.notifier.get(), &self.location) {
            n.on_file(loc, event);
        }
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_status_flags(&self, new: u32) {
        let old = self.flags();
        self.flags.store((old & !SETTABLE_STATUS) | (new & SETTABLE_STATUS), Ordering::Relaxed);
    }

    pub fn readable(&self) -> bool {
        let f = self.flags();
        f & O_PATH == 0 && matches!(f & O_ACCMODE, O_RDONLY | O_RDWR)
    }

    pub fn writable(&self) -> bool {
        let f = self.flags();
        f & O_PATH == 0 && matches!(f & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    pub fn nonblocking(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }

    pub fn is_path_only(&self) -> bool {
        self.flags() & O_PATH != 0
    }

    fn lock_offset(&self) -> crate::sync::MutexGuard<'_, u64> {
        self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// read(2): at the file offset for seekable files.
    pub fn read(&self, ctx: &dyn Context, buf: &mut [u8]) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        let n = if self.ops.seekable() {
            let mut off = self.lock_offset();
            let n = self.ops.read_at(ctx, buf, *off)?;
            *off += n as u64;
            n
        } else {
            self.ops.read(ctx, buf, self.nonblocking())?
        };
        self.used(n, IN_ACCESS);
        Ok(n)
    }

    /// Reports a read or write that moved data.
    fn used(&self, n: usize, event: u32) {
        if n > 0 {
            self.report(event);
        }
    }

    pub fn pread(&self, ctx: &dyn Context, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        let n = self.ops.read_at(ctx, buf, offset)?;
        self.used(n, IN_ACCESS);
        Ok(n)
    }

    pub fn write(&self, ctx: &dyn Context, data: &[u8]) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        let n = if self.ops.seekable() {
            let mut off = self.lock_offset();
            if self.flags() & O_APPEND != 0 {
                *off = self.ops.stat()?.size as u64;
            }
            let n = self.ops.write_at(ctx, data, *off)?;
            *off += n as u64;
            n
        } else {
            self.ops.write(ctx, data, self.nonblocking())?
        };
        self.used(n, IN_MODIFY);
        Ok(n)
    }

    pub fn pwrite(&self, ctx: &dyn Context, data: &[u8], offset: u64) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        // Linux quirk kept for compatibility: with O_APPEND, pwrite appends.
        let offset =
            if self.flags() & O_APPEND != 0 { self.ops.stat()?.size as u64 } else { offset };
        let n = self.ops.write_at(ctx, data, offset)?;
        self.used(n, IN_MODIFY);
        Ok(n)
    }

    pub fn seek(&self, offset: i64, whence: u32) -> Result<u64, Errno> {
        let mut off = self.lock_offset();
        if let Some(r) = self.ops.seek(offset, whence, *off) {
            let new = r?;
            *off = new;
            return Ok(new);
        }
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        let base: i64 = match whence {
            SEEK_SET => 0,
            SEEK_CUR => *off as i64,
            SEEK_END => self.ops.stat()?.size,
            SEEK_DATA | SEEK_HOLE => {
                let size = self.ops.stat()?.size;
                if offset < 0 || offset >= size {
                    return Err(Errno::ENXIO);
                }
                let new = if whence == SEEK_DATA { offset } else { size };
                *off = new as u64;
                return Ok(new as u64);
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(offset).ok_or(Errno::EOVERFLOW)?;
        if new < 0 {
            return Err(Errno::EINVAL);
        }
        *off = new as u64;
        Ok(new as u64)
    }

    pub fn getdents(&self, cap: usize) -> Result<Vec<u8>, Errno> {
        let data = {
            let mut off = self.lock_offset();
            self.ops.getdents(&mut off, cap)?
        };
        self.report(IN_ACCESS);
        Ok(data)
    }
}
