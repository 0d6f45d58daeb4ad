//! A container's masked and read-only paths: mounts stacked on existing objects, made when
//! the container's filesystem is assembled (before any of its processes run).
//!
//! Paths are walked without following symlinks, so an image cannot redirect a mask or a
//! read-only mount elsewhere; a path that does not exist (or leads through a symlink) is
//! skipped, as runtimes skip masks of paths an image lacks. Mounts made under a read-only
//! path before it (volumes) are hidden by it.

use std::sync::Arc;

use crate::abi::Errno;
use crate::abi::stat::FileType;
use crate::mm::Physical;
use crate::vfs::Location;
use crate::vfs::fs::overlay::OverlayFs;
use crate::vfs::inode::Inode;
use crate::vfs::path::enter_mounts;

/// The object at absolute `path` under `root`: None when it does not exist or is reached
/// through a symlink.
fn locate(root: &Location, path: &str) -> Result<Option<Location>, Errno> {
    if !path.starts_with('/') {
        return Err(Errno::EINVAL);
    }
    let mut cur = root.clone();
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(Errno::EINVAL);
        }
        let Ok(inode) = cur.inode.lookup(comp.as_bytes()) else { return Ok(None) };
        if inode.file_type() == FileType::Symlink {
            return Ok(None);
        }
        cur = enter_mounts(Location::child(&cur, inode, comp.as_bytes()));
    }
    Ok(Some(cur))
}

/// Makes each of `readonly` read-only, then hides each of `masked` (files behind the
/// container's /dev/null, directories behind an empty read-only directory).
pub fn apply(
    root: &Location,
    phys: &Arc<Physical>,
    masked: &[String],
    readonly: &[String],
) -> Result<(), Errno> {
    for p in readonly {
        if let Some(loc) = locate(root, p)? {
            loc.mount.mount_with(loc.inode.clone(), loc.inode.clone(), &loc.mount.fstype, p, true);
        }
    }
    if masked.is_empty() {
        return Ok(());
    }
    let null = locate(root, "/dev/null")?.ok_or(Errno::ENOENT)?.inode;
    for p in masked {
        let Some(loc) = locate(root, p)? else { continue };
        let cover: Arc<dyn Inode> = if loc.inode.file_type() == FileType::Directory {
            OverlayFs::new(phys.clone(), None).root(0o555)
        } else {
            null.clone()
        };
        loc.mount.mount_with(loc.inode.clone(), cover, "tmpfs", p, true);
    }
    Ok(())
}
