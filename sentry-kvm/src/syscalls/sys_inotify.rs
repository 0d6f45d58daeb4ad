//! inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch: the syscall side of
//! [`crate::vfs::notify`].

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::{AT_FDCWD, FileType, O_CLOEXEC, O_NONBLOCK, O_RDONLY};
use crate::vfs::file::File;
use crate::vfs::notify::event::*;
use crate::vfs::notify::instance::Inotify;

pub fn inotify_init1(c: &mut Call) -> SysResult {
    let flags = c.arg_u32(0);
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let ops = Inotify::new(&c.task.kernel.notify)?;
    let file =
        File::new(ops, O_RDONLY | (flags & O_NONBLOCK), None, b"anon_inode:inotify".to_vec());
    c.install(file, flags & O_CLOEXEC != 0)
}

pub fn inotify_init(c: &mut Call) -> SysResult {
    c.args[0] = 0;
    inotify_init1(c)
}

/// The inotify instance behind descriptor `fd`: EBADF for no descriptor, EINVAL for another
/// kind of file.
fn instance(c: &Call, fd: i32) -> Result<std::sync::Arc<File>, Errno> {
    let file = c.file(fd)?;
    if !file.ops.as_any().is::<Inotify>() {
        return Err(Errno::EINVAL);
    }
    Ok(file)
}

pub fn inotify_add_watch(c: &mut Call) -> SysResult {
    let mask = c.arg_u32(2);
    if mask & IN_MASK_ADD != 0 && mask & IN_MASK_CREATE != 0 || mask & !KNOWN_BITS != 0 || mask == 0
    {
        return Err(Errno::EINVAL);
    }
    let file = instance(c, c.arg_i32(0))?;
    let path = c.path(1)?;
    let loc = c.lookup(AT_FDCWD, &path, mask & IN_DONT_FOLLOW == 0)?;
    if mask & IN_ONLYDIR != 0 && loc.inode.file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if !c.task.creds().may_access(&loc.inode.stat()?, 4) {
        return Err(Errno::EACCES);
    }
    let inotify = file.ops.as_any().downcast_ref::<Inotify>().ok_or(Errno::EINVAL)?;
    inotify.add_watch(loc.inode.key(), mask).map(|wd| wd as u64)
}

pub fn inotify_rm_watch(c: &mut Call) -> SysResult {
    let file = instance(c, c.arg_i32(0))?;
    let inotify = file.ops.as_any().downcast_ref::<Inotify>().ok_or(Errno::EINVAL)?;
    inotify.rm_watch(c.arg_i32(1))?;
    Ok(0)
}
