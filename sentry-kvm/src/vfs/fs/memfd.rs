//! Anonymous memory files (memfd_create).

use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::{O_TRUNC, S_IFREG, Stat, Timespec};
use crate::mm::mappable::{Mappable, MemObject};
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;

pub struct MemFile {
    obj: Arc<MemObject>,
    ino: u64,
}

static NEXT_INO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl MemFile {
    pub fn new(obj: Arc<MemObject>) -> Arc<MemFile> {
        Arc::new(MemFile { obj, ino: NEXT_INO.fetch_add(1, std::sync::atomic::Ordering::Relaxed) })
    }
}

impl FileOps for MemFile {
    fn seekable(&self) -> bool {
        true
    }
    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.obj.read(off, buf)
    }
    fn write_at(&self, _ctx: &dyn Context, data: &[u8], off: u64) -> Result<usize, Errno> {
        self.obj.write(off, data)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let size = self.obj.size();
        let now = Timespec::now();
        Ok(Stat {
            dev: crate::abi::stat::makedev(0, 1),
            ino: self.ino,
            nlink: 1,
            mode: S_IFREG | 0o777,
            size: size as i64,
            blksize: 4096,
            blocks: size.div_ceil(512) as i64,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        })
    }
    fn mappable(&self) -> Result<Arc<dyn Mappable>, Errno> {
        Ok(self.obj.clone())
    }
    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.obj.truncate(len);
        Ok(())
    }
    // /proc/self/fd/N of a memfd opens the same memory again (fexecve execs it that way).
    fn reopen(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        if flags & O_TRUNC != 0 && crate::vfs::file::wants_write(flags) {
            self.obj.truncate(0);
        }
        Ok(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
