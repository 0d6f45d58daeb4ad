//! Path resolution, done entirely inside the Sentry: symlinks, `..`, mount crossings and the
//! task's root (nothing resolves above it, whatever the path or link says).

use crate::abi::Errno;
use crate::abi::stat::FileType;
use crate::vfs::Location;
use crate::vfs::context::Context;

pub const PATH_MAX: usize = 4096;
pub const NAME_MAX: usize = 255;
const MAX_SYMLINKS: u32 = 40;

/// Where resolution starts and what bounds it, and for whom it is done (search permission).
pub struct Resolver<'a> {
    pub ctx: &'a dyn Context,
    pub root: Location,
    pub start: Location,
}

/// How to treat the last component.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Last {
    Follow,
    NoFollow,
}

impl Resolver<'_> {
    /// The location `path` names.
    pub fn resolve(&self, path: &[u8], last: Last) -> Result<Location, Errno> {
        let (dir, name, trailing_slash) = self.resolve_parent_inner(path)?;
        let Some(name) = name else { return Ok(dir) };
        let mut links = 0;
        let follow = last == Last::Follow || trailing_slash;
        let loc = self.step(&dir, &name, follow, &mut links)?;
        if trailing_slash && loc.inode.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(loc)
    }

    /// The directory containing the last component of `path`, and that component (None when
    /// the path ends in `.`/`..` or is `/`). A trailing slash is reported as the third value.
    pub fn resolve_parent(&self, path: &[u8]) -> Result<(Location, Option<Vec<u8>>, bool), Errno> {
        self.resolve_parent_inner(path)
    }

    fn resolve_parent_inner(
        &self,
        path: &[u8],
    ) -> Result<(Location, Option<Vec<u8>>, bool), Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut links = 0;
        let mut cur = if path[0] == b'/' { self.root.clone() } else { self.start.clone() };
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
        let trailing = path.len() > 1 && path.ends_with(b"/");
        let Some((last, init)) = comps.split_last() else {
            return Ok((cur, None, trailing));
        };
        for c in init {
            cur = self.step(&cur, c, true, &mut links)?;
        }
        match *last {
            b"." => Ok((cur, None, trailing)),
            b".." => Ok((self.parent_of(&cur), None, trailing)),
            name => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                self.check_search(&cur)?;
                Ok((cur, Some(name.to_vec()), trailing))
            }
        }
    }

    fn check_search(&self, dir: &Location) -> Result<(), Errno> {
        if dir.inode.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let creds = self.ctx.creds();
        if !creds.may_access(&dir.inode.stat()?, 1) {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// Moves from directory `dir` through one component.
    fn step(
        &self,
        dir: &Location,
        name: &[u8],
        follow: bool,
        links: &mut u32,
    ) -> Result<Location, Errno> {
        match name {
            b"." => {
                self.check_search(dir)?;
                Ok(dir.clone())
            }
            b".." => {
                self.check_search(dir)?;
                Ok(self.parent_of(dir))
            }
            _ => {
                if name.len() > NAME_MAX {
                    return Err(Errno::ENAMETOOLONG);
                }
                self.check_search(dir)?;
                let inode = dir.inode.lookup(name)?;
                let loc = enter_mounts(Location::child(dir, inode, name));
                if follow && loc.inode.file_type() == FileType::Symlink {
                    self.follow(dir, &loc, links)
                } else {
                    Ok(loc)
                }
            }
        }
    }

    fn follow(&self, dir: &Location, link: &Location, links: &mut u32) -> Result<Location, Errno> {
        *links += 1;
        if *links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        if let Some(r) = link.inode.follow_magic() {
            return r;
        }
        let target = link.inode.readlink()?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut cur = if target[0] == b'/' { self.root.clone() } else { dir.clone() };
        let comps: Vec<&[u8]> = target.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect();
        for c in comps {
            cur = self.step(&cur, c, true, links)?;
        }
        Ok(cur)
    }

    /// `..` of a directory, never above the root.
    pub fn parent_of(&self, loc: &Location) -> Location {
        let mut cur = loc.clone();
        loop {
            if cur.same(&self.root) {
                return cur;
            }
            if cur.is_mount_root() {
                match &cur.mount.parent {
                    Some((pm, on)) => {
                        cur = Location::new(pm.clone(), on.clone());
                        continue;
                    }
                    None => return cur,
                }
            }
            return match cur.inode.parent() {
                Some((p, _)) => Location::new(cur.mount.clone(), p),
                None => cur,
            };
        }
    }
}

/// Follows mounts stacked on `loc`.
pub fn enter_mounts(mut loc: Location) -> Location {
    while let Some(m) = loc.mount.mounted_on(loc.inode.key()) {
        let root = m.root.clone();
        loc = Location::new(m, root);
    }
    loc
}

/// The absolute path of `loc` as seen from `root` (getcwd, /proc/self/fd).
pub fn path_of(root: &Location, loc: &Location) -> Option<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut cur = loc.clone();
    let mut guard = 0;
    while !cur.same(root) {
        guard += 1;
        if guard > 4096 {
            return None;
        }
        if let Some(via) = cur.via.clone() {
            parts.push(via.1.clone());
            cur = via.0.clone();
            continue;
        }
        if cur.is_mount_root() {
            match &cur.mount.parent {
                Some((pm, on)) => {
                    cur = Location::new(pm.clone(), on.clone());
                    continue;
                }
                // Outside the root (e.g. a different chroot): unreachable path.
                None => return None,
            }
        }
        let (parent, name) = cur.inode.parent()?;
        parts.push(name);
        cur = Location::new(cur.mount.clone(), parent);
    }
    let mut out = Vec::new();
    for p in parts.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}
