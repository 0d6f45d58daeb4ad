//! Operations on paths: open, create, remove, rename, link, stat, access, attributes,
//! directories and the working directory.

use std::sync::Arc;

use super::Call;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::*;
use crate::creds::caps::{CapSet, Capability};
use crate::kernel::task::Task;
use crate::vfs::Location;
use crate::vfs::file::File;
use crate::vfs::file::wants_write;
use crate::vfs::fs::anon::AnonInode;
use crate::vfs::inode::{Inode, Owner, SetAttr};
use crate::vfs::notify::event::{IN_ACCESS, IN_ATTRIB, IN_MODIFY, IN_OPEN};
use crate::vfs::notify::last_name;
use crate::vfs::path::{Last, path_of};

/// Checks that `dir` may be changed by `task` (write and search permission, writable fs).
fn may_modify_dir(task: &Task, dir: &Location) -> Result<(), Errno> {
    if dir.mount.read_only || dir.inode.read_only() {
        return Err(Errno::EROFS);
    }
    let cr = task.creds();
    if !cr.may_access(&dir.inode.stat()?, 3) {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// Sticky directories only let owners remove entries.
fn may_delete(task: &Task, dir: &Location, victim: &Arc<dyn Inode>) -> Result<(), Errno> {
    may_modify_dir(task, dir)?;
    let cr = task.creds();
    let ds = dir.inode.stat()?;
    if !cr.has_cap(Capability::FOWNER) && ds.mode & S_ISVTX != 0 {
        let vs = victim.stat()?;
        if vs.uid != cr.euid && ds.uid != cr.euid {
            return Err(Errno::EPERM);
        }
    }
    Ok(())
}

fn owner(task: &Task) -> Owner {
    let cr = task.creds();
    Owner { uid: cr.fsuid, gid: cr.fsgid }
}

/// Parent directory and new name for creating `path`.
fn parent_for_create(c: &Call, dirfd: i32, path: &[u8]) -> Result<(Location, Vec<u8>), Errno> {
    let r = c.resolver(dirfd, path)?;
    let (dir, name, _) = r.resolve_parent(path)?;
    let name = name.ok_or(Errno::EEXIST)?;
    Ok((dir, name))
}

fn open_location(c: &Call, loc: Location, flags: u32, path: &[u8]) -> SysResult {
    let kind = loc.inode.file_type();
    if flags & O_PATH != 0 {
        let ops = crate::vfs::fs::path_only::PathFile::new(loc.inode.clone());
        let p = path_of(&c.task.fs().root(), &loc).unwrap_or_else(|| path.to_vec());
        let file =
            File::new(ops, flags & (O_PATH | O_CLOEXEC | O_DIRECTORY | O_NOFOLLOW), Some(loc), p);
        return c.install(file, flags & O_CLOEXEC != 0);
    }
    if flags & O_DIRECTORY != 0 && kind != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    if kind == FileType::Directory
        && (wants_write(flags) || flags & O_TRUNC != 0 && flags & O_CREAT != 0)
    {
        return Err(Errno::EISDIR);
    }
    if kind == FileType::Symlink {
        return Err(Errno::ELOOP);
    }
    // A descriptor's object reached through /proc/PID/fd: the caller already holds it, and
    // it has no mode of its own to check.
    if let Some(anon) = loc.inode.as_any().downcast_ref::<AnonInode>() {
        let ops = anon.reopen(flags)?;
        let file = File::new(
            ops,
            flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC),
            None,
            anon.name().to_vec(),
        );
        return c.install(file, flags & O_CLOEXEC != 0);
    }
    let cr = c.task.creds();
    let mut access = 0;
    if matches!(flags & O_ACCMODE, O_RDONLY | O_RDWR) {
        access |= 4;
    }
    if wants_write(flags) {
        access |= 2;
        if (loc.mount.read_only || loc.inode.read_only()) && kind == FileType::Regular {
            return Err(Errno::EROFS);
        }
    }
    if flags & O_TRUNC != 0 && kind == FileType::Regular {
        access |= 2;
    }
    if !cr.may_access(&loc.inode.stat()?, access) {
        return Err(Errno::EACCES);
    }
    let ops = if kind == FileType::Fifo {
        crate::kernel::pipe::open_fifo(&*loc.inode, flags)?
    } else {
        loc.inode.clone().open(flags)?
    };
    let p = path_of(&c.task.fs().root(), &loc).unwrap_or_else(|| path.to_vec());
    let file = File::new(ops, flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC), Some(loc), p);
    install_opened(c, file, flags)
}

/// Installs a file opened by path and reports the opening (IN_OPEN, then IN_MODIFY for an
/// existing regular file O_TRUNC emptied) and, from then on, its uses and its closing.
fn install_opened(c: &Call, file: Arc<File>, flags: u32) -> SysResult {
    let fd = c.install(file.clone(), flags & O_CLOEXEC != 0)?;
    file.report_to(&c.task.kernel.notify);
    file.report(IN_OPEN);
    if flags & O_TRUNC != 0
        && file.location.as_ref().is_some_and(|l| l.inode.file_type() == FileType::Regular)
    {
        file.report(IN_MODIFY);
    }
    Ok(fd)
}

/// `O_TMPFILE`: an unnamed regular file in the directory `path` names, open for writing;
/// `linkat` can name it later unless `O_EXCL` was given.
fn open_unnamed(c: &mut Call, dirfd: i32, path: &[u8], flags: u32, mode: u32) -> SysResult {
    if !wants_write(flags) || flags & O_CREAT != 0 {
        return Err(Errno::EINVAL);
    }
    let dir = c.resolver(dirfd, path)?.resolve(path, Last::Follow)?;
    if dir.inode.file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    may_modify_dir(c.task, &dir)?;
    let umask = c.task.fs().umask();
    let linkable = flags & O_EXCL == 0;
    let inode = dir.inode.create_unnamed(mode & !umask & 0o7777, owner(c.task), linkable)?;
    // Linux names it `#<inode>` in /proc, a deleted file of its directory.
    let name = format!("#{}", inode.key().1).into_bytes();
    let loc = Location::child(&dir, inode, &name);
    let ops = loc.inode.clone().open(flags & !O_TMPFILE)?;
    let mut p = path_of(&c.task.fs().root(), &loc).unwrap_or_else(|| name.clone());
    p.extend_from_slice(b" (deleted)");
    let kept = flags & !(O_TMPFILE | O_EXCL | O_NOCTTY | O_TRUNC);
    let file = File::new(ops, kept, Some(loc), p);
    c.install(file, flags & O_CLOEXEC != 0)
}

fn do_open(c: &mut Call, dirfd: i32, path: Vec<u8>, flags: u32, mode: u32) -> SysResult {
    if flags & O_TMPFILE == O_TMPFILE {
        return open_unnamed(c, dirfd, &path, flags, mode);
    }
    let r = c.resolver(dirfd, &path)?;
    let follow = flags & O_NOFOLLOW == 0;
    if flags & O_CREAT == 0 {
        let loc = r.resolve(&path, if follow { Last::Follow } else { Last::NoFollow })?;
        return open_location(c, loc, flags, &path);
    }
    let (dir, name, trailing) = r.resolve_parent(&path)?;
    let Some(name) = name else { return Err(Errno::EISDIR) };
    if trailing {
        return Err(Errno::EISDIR);
    }
    match dir.inode.lookup(&name) {
        Ok(existing) => {
            if flags & O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            let loc = crate::vfs::path::enter_mounts(Location::child(&dir, existing, &name));
            let loc = if loc.inode.file_type() == FileType::Symlink {
                if !follow {
                    return Err(Errno::ELOOP);
                }
                r.resolve(&path, Last::Follow)?
            } else {
                loc
            };
            open_location(c, loc, flags, &path)
        }
        Err(Errno::ENOENT) => {
            may_modify_dir(c.task, &dir)?;
            let umask = c.task.fs().umask();
            let inode = dir.inode.create(
                &name,
                FileType::Regular,
                mode & !umask & 0o7777,
                0,
                owner(c.task),
            )?;
            c.task.kernel.notify.on_created(&*dir.inode, &name, &*inode);
            let loc = Location::child(&dir, inode, &name);
            // The creator may write a file it just created read-only.
            let ops = loc.inode.clone().open(flags)?;
            let p = path_of(&c.task.fs().root(), &loc).unwrap_or_else(|| path.clone());
            let file =
                File::new(ops, flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC), Some(loc), p);
            install_opened(c, file, flags & !O_TRUNC)
        }
        Err(e) => Err(e),
    }
}

pub fn open(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_open(c, AT_FDCWD, path, c.arg_u32(1), c.arg_u32(2))
}

pub fn openat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_open(c, c.arg_i32(0), path, c.arg_u32(2), c.arg_u32(3))
}

pub fn openat2(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    let size = c.args[3] as usize;
    if size < 24 {
        return Err(Errno::EINVAL);
    }
    let how = c.read_bytes(c.args[2], 24)?;
    let flags = u64::from_le_bytes(how[0..8].try_into().map_err(|_| Errno::EFAULT)?);
    let mode = u64::from_le_bytes(how[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    let resolve = u64::from_le_bytes(how[16..24].try_into().map_err(|_| Errno::EFAULT)?);
    if resolve != 0 || flags > u64::from(u32::MAX) {
        return Err(Errno::EINVAL);
    }
    do_open(c, c.arg_i32(0), path, flags as u32, mode as u32)
}

pub fn creat(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_open(c, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, c.arg_u32(1))
}

fn do_mknod(c: &mut Call, dirfd: i32, path: Vec<u8>, mode: u32, dev: u64) -> SysResult {
    let kind = match mode & S_IFMT {
        0 | S_IFREG => FileType::Regular,
        S_IFIFO => FileType::Fifo,
        S_IFSOCK => FileType::Socket,
        S_IFCHR | S_IFBLK => {
            if !c.task.creds().has_cap(Capability::MKNOD) {
                return Err(Errno::EPERM);
            }
            if mode & S_IFMT == S_IFCHR { FileType::CharDevice } else { FileType::BlockDevice }
        }
        S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    };
    let (dir, name) = parent_for_create(c, dirfd, &path)?;
    may_modify_dir(c.task, &dir)?;
    let umask = c.task.fs().umask();
    let inode = dir.inode.create(&name, kind, mode & !umask & 0o7777, dev, owner(c.task))?;
    c.task.kernel.notify.on_created(&*dir.inode, &name, &*inode);
    Ok(0)
}

pub fn mknod(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_mknod(c, AT_FDCWD, path, c.arg_u32(1), c.args[2])
}

pub fn mknodat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_mknod(c, c.arg_i32(0), path, c.arg_u32(2), c.args[3])
}

fn do_mkdir(c: &mut Call, dirfd: i32, path: Vec<u8>, mode: u32) -> SysResult {
    let (dir, name) = parent_for_create(c, dirfd, &path)?;
    if dir.inode.lookup(&name).is_ok() {
        return Err(Errno::EEXIST);
    }
    may_modify_dir(c.task, &dir)?;
    let umask = c.task.fs().umask();
    let inode =
        dir.inode.create(&name, FileType::Directory, mode & !umask & 0o7777, 0, owner(c.task))?;
    c.task.kernel.notify.on_created(&*dir.inode, &name, &*inode);
    Ok(0)
}

pub fn mkdir(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_mkdir(c, AT_FDCWD, path, c.arg_u32(1))
}

pub fn mkdirat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_mkdir(c, c.arg_i32(0), path, c.arg_u32(2))
}

fn do_unlink(c: &mut Call, dirfd: i32, path: Vec<u8>, rmdir: bool) -> SysResult {
    let r = c.resolver(dirfd, &path)?;
    let (dir, name, trailing) = r.resolve_parent(&path)?;
    let Some(name) = name else { return Err(if rmdir { Errno::EBUSY } else { Errno::EISDIR }) };
    let victim = dir.inode.lookup(&name)?;
    if !rmdir && trailing {
        return Err(if victim.file_type() == FileType::Directory {
            Errno::EISDIR
        } else {
            Errno::ENOTDIR
        });
    }
    may_delete(c.task, &dir, &victim)?;
    let was_last = last_name(&*victim);
    if rmdir {
        if dir.mount.mounted_on(victim.key()).is_some() {
            return Err(Errno::EBUSY);
        }
        dir.inode.rmdir(&name)?;
    } else {
        dir.inode.unlink(&name)?;
    }
    c.task.kernel.notify.on_unlinked(&*dir.inode, &name, &*victim, was_last);
    Ok(0)
}

pub fn unlink(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_unlink(c, AT_FDCWD, path, false)
}

pub fn rmdir(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    if path.ends_with(b"/.") || path == b"." {
        return Err(Errno::EINVAL);
    }
    do_unlink(c, AT_FDCWD, path, true)
}

pub fn unlinkat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    let flags = c.arg_u32(2);
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    do_unlink(c, c.arg_i32(0), path, flags & AT_REMOVEDIR != 0)
}

const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;

fn do_rename(
    c: &mut Call,
    olddir: i32,
    old: Vec<u8>,
    newdir: i32,
    new: Vec<u8>,
    flags: u32,
) -> SysResult {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0 || flags & RENAME_EXCHANGE != 0 {
        return Err(Errno::EINVAL);
    }
    let (odir, oname, _) = c.resolver(olddir, &old)?.resolve_parent(&old)?;
    let (ndir, nname, _) = c.resolver(newdir, &new)?.resolve_parent(&new)?;
    let oname = oname.ok_or(Errno::EBUSY)?;
    let nname = nname.ok_or(Errno::EBUSY)?;
    if odir.mount.id != ndir.mount.id {
        return Err(Errno::EXDEV);
    }
    let victim = odir.inode.lookup(&oname)?;
    may_delete(c.task, &odir, &victim)?;
    may_modify_dir(c.task, &ndir)?;
    let existing = ndir.inode.lookup(&nname).ok();
    if let Some(existing) = &existing {
        if flags & RENAME_NOREPLACE != 0 {
            return Err(Errno::EEXIST);
        }
        may_delete(c.task, &ndir, existing)?;
    }
    // Two names of one file: rename(2) does nothing and reports nothing.
    let same_file = existing.as_ref().is_some_and(|e| e.key() == victim.key());
    let replaced = existing.filter(|_| !same_file).map(|e| {
        let last = last_name(&*e);
        (e, last)
    });
    odir.inode.rename(&oname, &ndir.inode, &nname)?;
    if !same_file {
        c.task.kernel.notify.on_renamed(
            (&*odir.inode, &oname),
            (&*ndir.inode, &nname),
            &*victim,
            replaced.as_ref().map(|(e, last)| (&**e, *last)),
        );
    }
    Ok(0)
}

pub fn rename(c: &mut Call) -> SysResult {
    let (a, b) = (c.path(0)?, c.path(1)?);
    do_rename(c, AT_FDCWD, a, AT_FDCWD, b, 0)
}

pub fn renameat(c: &mut Call) -> SysResult {
    let (a, b) = (c.path(1)?, c.path(3)?);
    do_rename(c, c.arg_i32(0), a, c.arg_i32(2), b, 0)
}

pub fn renameat2(c: &mut Call) -> SysResult {
    let (a, b) = (c.path(1)?, c.path(3)?);
    do_rename(c, c.arg_i32(0), a, c.arg_i32(2), b, c.arg_u32(4))
}

fn do_link(
    c: &mut Call,
    olddir: i32,
    old: Vec<u8>,
    newdir: i32,
    new: Vec<u8>,
    flags: u32,
) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let target = if old.is_empty() && flags & AT_EMPTY_PATH != 0 {
        // The open file itself (how an O_TMPFILE file is named), for those who may.
        if !c.task.creds().has_cap(Capability::DAC_READ_SEARCH) {
            return Err(Errno::ENOENT);
        }
        c.file(olddir)?.location.clone().ok_or(Errno::ENOENT)?
    } else {
        c.lookup(olddir, &old, flags & AT_SYMLINK_FOLLOW != 0)?
    };
    if target.inode.file_type() == FileType::Directory {
        return Err(Errno::EPERM);
    }
    let (dir, name) = parent_for_create(c, newdir, &new)?;
    if dir.mount.id != target.mount.id {
        return Err(Errno::EXDEV);
    }
    may_modify_dir(c.task, &dir)?;
    dir.inode.link(&name, &target.inode)?;
    c.task.kernel.notify.on_linked(&*dir.inode, &name, &*target.inode);
    Ok(0)
}

pub fn link(c: &mut Call) -> SysResult {
    let (a, b) = (c.path(0)?, c.path(1)?);
    do_link(c, AT_FDCWD, a, AT_FDCWD, b, 0)
}

pub fn linkat(c: &mut Call) -> SysResult {
    let (a, b) = (c.path(1)?, c.path(3)?);
    do_link(c, c.arg_i32(0), a, c.arg_i32(2), b, c.arg_u32(4))
}

fn do_symlink(c: &mut Call, target: Vec<u8>, dirfd: i32, path: Vec<u8>) -> SysResult {
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let (dir, name) = parent_for_create(c, dirfd, &path)?;
    may_modify_dir(c.task, &dir)?;
    dir.inode.symlink(&name, &target, owner(c.task))?;
    if let Ok(link) = dir.inode.lookup(&name) {
        c.task.kernel.notify.on_created(&*dir.inode, &name, &*link);
    }
    Ok(0)
}

pub fn symlink(c: &mut Call) -> SysResult {
    let (t, p) = (c.path(0)?, c.path(1)?);
    do_symlink(c, t, AT_FDCWD, p)
}

pub fn symlinkat(c: &mut Call) -> SysResult {
    let (t, p) = (c.path(0)?, c.path(2)?);
    do_symlink(c, t, c.arg_i32(1), p)
}

fn do_readlink(c: &mut Call, dirfd: i32, path: Vec<u8>, buf: u64, size: i64) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let loc = if path.is_empty() {
        c.file(dirfd)?.location.clone().ok_or(Errno::ENOENT)?
    } else {
        c.lookup(dirfd, &path, false)?
    };
    if loc.inode.file_type() != FileType::Symlink {
        return Err(Errno::EINVAL);
    }
    let target = loc.inode.readlink()?;
    let n = target.len().min(size as usize);
    c.write_bytes(buf, &target[..n])?;
    Ok(n as u64)
}

pub fn readlink(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_readlink(c, AT_FDCWD, path, c.args[1], c.args[2] as i64)
}

pub fn readlinkat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_readlink(c, c.arg_i32(0), path, c.args[2], c.args[3] as i64)
}

/// The location an `*at` call with AT_EMPTY_PATH / AT_SYMLINK_NOFOLLOW names.
fn at_target(c: &Call, dirfd: i32, path: &[u8], flags: u32) -> Result<Location, Errno> {
    if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd == AT_FDCWD {
            return Ok(c.task.fs().cwd());
        }
        return c.file(dirfd)?.location.clone().ok_or(Errno::EBADF);
    }
    c.lookup(dirfd, path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

fn write_stat(c: &Call, loc: &Location, addr: u64) -> SysResult {
    c.write_bytes(addr, &loc.inode.stat()?.to_bytes())?;
    Ok(0)
}

pub fn stat(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    write_stat(c, &loc, c.args[1])
}

pub fn lstat(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, false)?;
    write_stat(c, &loc, c.args[1])
}

fn path_or_empty(c: &Call, i: usize) -> Result<Vec<u8>, Errno> {
    if c.args[i] == 0 { Ok(Vec::new()) } else { c.path(i) }
}

pub fn newfstatat(c: &mut Call) -> SysResult {
    let path = path_or_empty(c, 1)?;
    let flags = c.arg_u32(3);
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 && c.arg_i32(0) != AT_FDCWD {
        let file = c.file(c.arg_i32(0))?;
        let st = match &file.location {
            Some(l) => l.inode.stat()?,
            None => file.ops.stat()?,
        };
        c.write_bytes(c.args[2], &st.to_bytes())?;
        return Ok(0);
    }
    let loc = at_target(c, c.arg_i32(0), &path, flags)?;
    write_stat(c, &loc, c.args[2])
}

pub fn statx(c: &mut Call) -> SysResult {
    let path = path_or_empty(c, 1)?;
    let flags = c.arg_u32(2);
    let st = if path.is_empty() && flags & AT_EMPTY_PATH != 0 && c.arg_i32(0) != AT_FDCWD {
        let file = c.file(c.arg_i32(0))?;
        match &file.location {
            Some(l) => l.inode.stat()?,
            None => file.ops.stat()?,
        }
    } else {
        at_target(c, c.arg_i32(0), &path, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?
            .inode
            .stat()?
    };
    c.write_bytes(c.args[4], &st.to_statx())?;
    Ok(0)
}

fn do_access(c: &mut Call, dirfd: i32, path: Vec<u8>, mode: u32, flags: u32) -> SysResult {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let loc = at_target(c, dirfd, &path, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?;
    if mode == 0 {
        return Ok(0);
    }
    // Without AT_EACCESS the check is made as the real user, with the capabilities Linux
    // gives it for that (root's permitted set, none for anyone else).
    let mut probe = (*c.task.creds()).clone();
    if flags & AT_EACCESS == 0 {
        (probe.euid, probe.egid) = (probe.uid, probe.gid);
        probe.caps.effective = if probe.uid == 0 { probe.caps.permitted } else { CapSet::EMPTY };
    }
    if mode & 2 != 0 && (loc.mount.read_only || loc.inode.read_only()) {
        return Err(Errno::EROFS);
    }
    if !probe.may_access(&loc.inode.stat()?, mode) {
        return Err(Errno::EACCES);
    }
    Ok(0)
}

pub fn access(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    do_access(c, AT_FDCWD, path, c.arg_u32(1), 0)
}

pub fn faccessat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    do_access(c, c.arg_i32(0), path, c.arg_u32(2), 0)
}

pub fn faccessat2(c: &mut Call) -> SysResult {
    let path = path_or_empty(c, 1)?;
    do_access(c, c.arg_i32(0), path, c.arg_u32(2), c.arg_u32(3))
}

fn setattr(c: &Call, loc: &Location, a: SetAttr) -> SysResult {
    if loc.mount.read_only || loc.inode.read_only() {
        return Err(Errno::EROFS);
    }
    let cr = c.task.creds();
    let st = loc.inode.stat()?;
    if a.mode.is_some() && !cr.owns_or(st.uid, Capability::FOWNER) {
        return Err(Errno::EPERM);
    }
    // Changing the owner needs CAP_CHOWN; the group, ownership plus membership, or CAP_CHOWN.
    if a.uid.is_some_and(|u| u != st.uid) && !cr.has_cap(Capability::CHOWN) {
        return Err(Errno::EPERM);
    }
    if a.gid.is_some_and(|g| g != st.gid)
        && !cr.has_cap(Capability::CHOWN)
        && !(st.uid == cr.euid
            && (a.gid == Some(cr.egid) || a.gid.is_some_and(|g| cr.groups.contains(&g))))
    {
        return Err(Errno::EPERM);
    }
    if a.size.is_some() && !cr.may_access(&st, 2) {
        return Err(Errno::EACCES);
    }
    apply_attr(c, loc, a)?;
    Ok(0)
}

/// Changes the attributes and reports the change as Linux does: the owner or mode as
/// IN_ATTRIB, the size as IN_MODIFY, both times as IN_ATTRIB, one of them as IN_ACCESS or
/// IN_MODIFY.
fn apply_attr(c: &Call, loc: &Location, a: SetAttr) -> Result<(), Errno> {
    loc.inode.setattr(a)?;
    let mut mask = 0;
    if a.mode.is_some() || a.uid.is_some() || a.gid.is_some() {
        mask |= IN_ATTRIB;
    }
    if a.size.is_some() {
        mask |= IN_MODIFY;
    }
    mask |= match (a.atime.is_some(), a.mtime.is_some()) {
        (true, true) => IN_ATTRIB,
        (true, false) => IN_ACCESS,
        (false, true) => IN_MODIFY,
        (false, false) => 0,
    };
    if mask != 0 {
        c.task.kernel.notify.on_file(loc, mask);
    }
    Ok(())
}

fn chmod_attr(mode: u32) -> SetAttr {
    SetAttr { mode: Some(mode & 0o7777), ..Default::default() }
}

pub fn chmod(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    setattr(c, &loc, chmod_attr(c.arg_u32(1)))
}

pub fn fchmod(c: &mut Call) -> SysResult {
    let loc = c.file(c.arg_i32(0))?.location.clone().ok_or(Errno::EINVAL)?;
    setattr(c, &loc, chmod_attr(c.arg_u32(1)))
}

pub fn fchmodat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    let loc = c.lookup(c.arg_i32(0), &path, true)?;
    setattr(c, &loc, chmod_attr(c.arg_u32(2)))
}

fn chown_attr(uid: u32, gid: u32) -> SetAttr {
    SetAttr {
        uid: (uid != u32::MAX).then_some(uid),
        gid: (gid != u32::MAX).then_some(gid),
        ..Default::default()
    }
}

pub fn chown(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    setattr(c, &loc, chown_attr(c.arg_u32(1), c.arg_u32(2)))
}

pub fn lchown(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, false)?;
    setattr(c, &loc, chown_attr(c.arg_u32(1), c.arg_u32(2)))
}

pub fn fchown(c: &mut Call) -> SysResult {
    let loc = c.file(c.arg_i32(0))?.location.clone().ok_or(Errno::EINVAL)?;
    setattr(c, &loc, chown_attr(c.arg_u32(1), c.arg_u32(2)))
}

pub fn fchownat(c: &mut Call) -> SysResult {
    let path = path_or_empty(c, 1)?;
    let loc = at_target(c, c.arg_i32(0), &path, c.arg_u32(4))?;
    setattr(c, &loc, chown_attr(c.arg_u32(2), c.arg_u32(3)))
}

pub fn truncate(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    if (c.args[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    if loc.inode.file_type() == FileType::Directory {
        return Err(Errno::EISDIR);
    }
    setattr(c, &loc, SetAttr { size: Some(c.args[1]), ..Default::default() })
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

fn times_attr(c: &Call, addr: u64) -> Result<SetAttr, Errno> {
    let now = Timespec::now();
    if addr == 0 {
        return Ok(SetAttr { atime: Some(now), mtime: Some(now), ..Default::default() });
    }
    let b = c.read_bytes(addr, 32)?;
    let ts = |o: usize| -> Result<Option<Timespec>, Errno> {
        let sec = i64::from_le_bytes(b[o..o + 8].try_into().map_err(|_| Errno::EFAULT)?);
        let nsec = i64::from_le_bytes(b[o + 8..o + 16].try_into().map_err(|_| Errno::EFAULT)?);
        match nsec {
            UTIME_NOW => Ok(Some(now)),
            UTIME_OMIT => Ok(None),
            n if (0..1_000_000_000).contains(&n) => Ok(Some(Timespec { sec, nsec })),
            _ => Err(Errno::EINVAL),
        }
    };
    Ok(SetAttr { atime: ts(0)?, mtime: ts(16)?, ..Default::default() })
}

pub fn utimensat(c: &mut Call) -> SysResult {
    let flags = c.arg_u32(3);
    let attr = times_attr(c, c.args[2])?;
    let loc = if c.args[1] == 0 {
        c.file(c.arg_i32(0))?.location.clone().ok_or(Errno::EBADF)?
    } else {
        let path = c.path(1)?;
        at_target(c, c.arg_i32(0), &path, flags)?
    };
    if loc.mount.read_only || loc.inode.read_only() {
        return Err(Errno::EROFS);
    }
    let cr = c.task.creds();
    let st = loc.inode.stat()?;
    if !cr.owns_or(st.uid, Capability::FOWNER) && !cr.may_access(&st, 2) {
        return Err(Errno::EACCES);
    }
    apply_attr(c, &loc, attr)?;
    Ok(0)
}

fn timeval_attr(c: &Call, addr: u64) -> Result<SetAttr, Errno> {
    if addr == 0 {
        return times_attr(c, 0);
    }
    let b = c.read_bytes(addr, 32)?;
    let tv = |o: usize| -> Result<Timespec, Errno> {
        let sec = i64::from_le_bytes(b[o..o + 8].try_into().map_err(|_| Errno::EFAULT)?);
        let usec = i64::from_le_bytes(b[o + 8..o + 16].try_into().map_err(|_| Errno::EFAULT)?);
        if !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        Ok(Timespec { sec, nsec: usec * 1000 })
    };
    Ok(SetAttr { atime: Some(tv(0)?), mtime: Some(tv(16)?), ..Default::default() })
}

pub fn utimes(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    let attr = timeval_attr(c, c.args[1])?;
    apply_attr(c, &loc, attr)?;
    Ok(0)
}

pub fn futimesat(c: &mut Call) -> SysResult {
    let path = c.path(1)?;
    let loc = c.lookup(c.arg_i32(0), &path, true)?;
    let attr = timeval_attr(c, c.args[2])?;
    apply_attr(c, &loc, attr)?;
    Ok(0)
}

pub fn utime(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    let attr = if c.args[1] == 0 {
        times_attr(c, 0)?
    } else {
        let b = c.read_bytes(c.args[1], 16)?;
        let a = i64::from_le_bytes(b[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let m = i64::from_le_bytes(b[8..16].try_into().map_err(|_| Errno::EFAULT)?);
        SetAttr {
            atime: Some(Timespec { sec: a, nsec: 0 }),
            mtime: Some(Timespec { sec: m, nsec: 0 }),
            ..Default::default()
        }
    };
    apply_attr(c, &loc, attr)?;
    Ok(0)
}

pub fn getcwd(c: &mut Call) -> SysResult {
    let fs = c.task.fs();
    let (root, cwd) = {
        let s = fs.lock();
        (s.root.clone(), s.cwd.clone())
    };
    let mut p = path_of(&root, &cwd).ok_or(Errno::ENOENT)?;
    p.push(0);
    if p.len() > c.args[1] as usize {
        return Err(Errno::ERANGE);
    }
    c.write_bytes(c.args[0], &p)?;
    Ok(p.len() as u64)
}

fn set_cwd(c: &Call, loc: Location) -> SysResult {
    if loc.inode.file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let cr = c.task.creds();
    if !cr.may_access(&loc.inode.stat()?, 1) {
        return Err(Errno::EACCES);
    }
    c.task.fs().lock().cwd = loc;
    Ok(0)
}

pub fn chdir(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    set_cwd(c, loc)
}

pub fn fchdir(c: &mut Call) -> SysResult {
    let loc = c.file(c.arg_i32(0))?.location.clone().ok_or(Errno::ENOTDIR)?;
    set_cwd(c, loc)
}

pub fn chroot(c: &mut Call) -> SysResult {
    if !c.task.creds().has_cap(Capability::SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    if loc.inode.file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    c.task.fs().lock().root = loc;
    Ok(0)
}

fn statfs_bytes(c: &Call, loc: &Location) -> Result<[u8; 120], Errno> {
    use crate::vfs::statfs::StatFs;
    if let Some(host) = loc.inode.host_statfs() {
        return Ok(StatFs::of_host(host?, &loc.mount).to_bytes());
    }
    let k = &c.task.kernel;
    let used = k.phys.frames.in_use() * crate::mm::PAGE_SIZE;
    Ok(StatFs::of_mount(&loc.mount, k.info().mem_bytes, used).to_bytes())
}

pub fn statfs(c: &mut Call) -> SysResult {
    let path = c.path(0)?;
    let loc = c.lookup(AT_FDCWD, &path, true)?;
    let b = statfs_bytes(c, &loc)?;
    c.write_bytes(c.args[1], &b)?;
    Ok(0)
}

pub fn fstatfs(c: &mut Call) -> SysResult {
    let file = c.file(c.arg_i32(0))?;
    let loc = file.location.clone().unwrap_or_else(|| c.task.fs().root());
    let b = statfs_bytes(c, &loc)?;
    c.write_bytes(c.args[1], &b)?;
    Ok(0)
}

/// sync(2): the Sentry's files write through to the Gofer or to memory; nothing is held back.
pub fn sync(_c: &mut Call) -> SysResult {
    Ok(0)
}

/// syncfs(2): as sync, for the filesystem of an open descriptor.
pub fn syncfs(c: &mut Call) -> SysResult {
    c.file(c.arg_i32(0))?;
    Ok(0)
}

pub fn mount(_c: &mut Call) -> SysResult {
    Err(Errno::EPERM)
}

/// Extended attributes: objects carry none, and new ones are not stored.
fn xattr_target(c: &Call, follow: bool) -> Result<(), Errno> {
    let path = c.path(0)?;
    c.lookup(AT_FDCWD, &path, follow).map(|_| ())
}

pub fn getxattr(c: &mut Call) -> SysResult {
    xattr_target(c, true)?;
    Err(Errno::ENODATA)
}

pub fn lgetxattr(c: &mut Call) -> SysResult {
    xattr_target(c, false)?;
    Err(Errno::ENODATA)
}

pub fn fgetxattr(c: &mut Call) -> SysResult {
    c.file(c.arg_i32(0))?;
    Err(Errno::ENODATA)
}

pub fn listxattr(c: &mut Call) -> SysResult {
    xattr_target(c, true)?;
    Ok(0)
}

pub fn llistxattr(c: &mut Call) -> SysResult {
    xattr_target(c, false)?;
    Ok(0)
}

pub fn flistxattr(c: &mut Call) -> SysResult {
    c.file(c.arg_i32(0))?;
    Ok(0)
}

pub fn setxattr(c: &mut Call) -> SysResult {
    xattr_target(c, true)?;
    Err(Errno::EOPNOTSUPP)
}

pub fn lsetxattr(c: &mut Call) -> SysResult {
    xattr_target(c, false)?;
    Err(Errno::EOPNOTSUPP)
}

pub fn fsetxattr(c: &mut Call) -> SysResult {
    c.file(c.arg_i32(0))?;
    Err(Errno::EOPNOTSUPP)
}

pub fn removexattr(c: &mut Call) -> SysResult {
    xattr_target(c, true)?;
    Err(Errno::ENODATA)
}

pub fn lremovexattr(c: &mut Call) -> SysResult {
    xattr_target(c, false)?;
    Err(Errno::ENODATA)
}

pub fn fremovexattr(c: &mut Call) -> SysResult {
    c.file(c.arg_i32(0))?;
    Err(Errno::ENODATA)
}
