//! Descriptors opened with O_PATH: they name an object but allow no I/O.

use std::any::Any;
use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::Stat;
use crate::vfs::file::FileOps;
use crate::vfs::inode::Inode;

pub struct PathFile {
    inode: Arc<dyn Inode>,
}

impl PathFile {
    pub fn new(inode: Arc<dyn Inode>) -> Arc<PathFile> {
        Arc::new(PathFile { inode })
    }
}

impl FileOps for PathFile {
    fn stat(&self) -> Result<Stat, Errno> {
        self.inode.stat()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
