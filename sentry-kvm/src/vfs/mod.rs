//! The virtual filesystem: mounts, path resolution, open files and descriptor tables, and the
//! advisory locks on files ([`lock`]). It sees the task it works for only through
//! [`context::Context`], never the kernel.

pub mod context;
pub mod dir_file;
pub mod fd_table;
pub mod file;
pub mod fs;
pub mod inode;
pub mod lock;
pub mod mount;
pub mod notify;
pub mod path;
pub mod restrict;
pub mod statfs;

use std::sync::Arc;

use inode::Inode;
use mount::Mount;

/// A place in the mount tree: an inode as reached through a particular mount, and (for
/// objects other than directories, which know their parent) the directory and name it was
/// reached by, so that its path can be shown.
#[derive(Clone)]
pub struct Location {
    pub mount: Arc<Mount>,
    pub inode: Arc<dyn Inode>,
    pub via: Option<Arc<(Location, Vec<u8>)>>,
}

impl Location {
    pub fn new(mount: Arc<Mount>, inode: Arc<dyn Inode>) -> Self {
        Location { mount, inode, via: None }
    }

    /// A location reached as `name` in directory `dir`.
    pub fn child(dir: &Location, inode: Arc<dyn Inode>, name: &[u8]) -> Self {
        let via = (inode.file_type() != crate::abi::stat::FileType::Directory)
            .then(|| Arc::new((dir.clone(), name.to_vec())));
        Location { mount: dir.mount.clone(), inode, via }
    }

    pub fn same(&self, other: &Location) -> bool {
        self.mount.id == other.mount.id && self.inode.key() == other.inode.key()
    }

    pub fn is_mount_root(&self) -> bool {
        self.inode.key() == self.mount.root.key()
    }
}
