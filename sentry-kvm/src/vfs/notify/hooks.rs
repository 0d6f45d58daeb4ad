//! Where the file operations report: one hook per kind of operation, each sending the events
//! Linux sends for it, in Linux's order and with its IN_ISDIR marks.

use super::Notifier;
use super::event::*;
use crate::abi::stat::FileType;
use crate::vfs::Location;
use crate::vfs::inode::{Inode, InodeKey};

fn type_bit(inode: &dyn Inode) -> u32 {
    if inode.file_type() == FileType::Directory { IN_ISDIR } else { 0 }
}

/// Whether removing one name of `inode` removes the file (its last name, or a directory).
pub fn last_name(inode: &dyn Inode) -> bool {
    inode.file_type() == FileType::Directory || inode.stat().map(|s| s.nlink <= 1).unwrap_or(true)
}

impl Notifier {
    /// Something was done to the file at `loc` (opened, read, written, closed, its attributes
    /// changed): its directory's watches hear of it by name, then its own watches.
    pub fn on_file(&self, loc: &Location, event: u32) {
        if self.idle() {
            return;
        }
        let inode = &*loc.inode;
        let mask = event | type_bit(inode);
        let parent = match &loc.via {
            Some(via) => Some(self.open.place(inode.key(), (via.0.inode.key(), via.1.clone()))),
            None if !loc.is_mount_root() => inode.parent().map(|(d, n)| (d.key(), n)),
            None => None,
        };
        if let Some((dir, name)) = parent {
            let unlinked = || inode.stat().map(|s| s.nlink == 0).unwrap_or(false);
            self.send(dir, mask, 0, &name, &unlinked);
        }
        self.send(inode.key(), mask, 0, &[], &|| false);
    }

    /// An event only the file's own watches hear of (a change of its link count, IN_MOVE_SELF).
    fn on_inode(&self, inode: &dyn Inode, event: u32) {
        if self.idle() {
            return;
        }
        // Linux marks a directory's IN_MOVE_SELF (and IN_DELETE_SELF) without IN_ISDIR.
        let mask = if event == IN_MOVE_SELF { event } else { event | type_bit(inode) };
        self.send(inode.key(), mask, 0, &[], &|| false);
    }

    /// An entry of directory `dir` was created, removed or moved.
    fn on_child(&self, dir: &dyn Inode, name: &[u8], event: u32, child: &dyn Inode, cookie: u32) {
        if self.idle() {
            return;
        }
        self.send(dir.key(), event | type_bit(child), cookie, name, &|| false);
    }

    /// The file is gone: its watches report IN_DELETE_SELF and end (IN_IGNORED).
    pub(super) fn on_removed(&self, key: InodeKey) {
        if self.idle() {
            return;
        }
        for (inst, wd) in self.targets(key) {
            inst.deliver(wd, IN_DELETE_SELF, 0, &[], &|| false);
            if let Some(key) = inst.ignore(wd) {
                self.unregister(key, &inst, wd);
            }
        }
    }

    /// `name` in `dir` was created.
    pub fn on_created(&self, dir: &dyn Inode, name: &[u8], child: &dyn Inode) {
        self.on_child(dir, name, IN_CREATE, child, 0);
    }

    /// link(2) gave `target` the name `name` in `dir`.
    pub fn on_linked(&self, dir: &dyn Inode, name: &[u8], target: &dyn Inode) {
        self.on_inode(target, IN_ATTRIB);
        self.on_child(dir, name, IN_CREATE, target, 0);
    }

    /// unlink(2) or rmdir(2) removed `name` from `dir`; `was_last` from [`last_name`] before.
    pub fn on_unlinked(&self, dir: &dyn Inode, name: &[u8], victim: &dyn Inode, was_last: bool) {
        if victim.file_type() != FileType::Directory {
            self.on_inode(victim, IN_ATTRIB);
        }
        if was_last {
            self.unlinked(victim.key());
        }
        self.on_child(dir, name, IN_DELETE, victim, 0);
    }

    /// rename(2) moved `moved` from `from` to `to`, replacing `replaced` (with whether that
    /// was its last name, from [`last_name`] before).
    pub fn on_renamed(
        &self,
        from: (&dyn Inode, &[u8]),
        to: (&dyn Inode, &[u8]),
        moved: &dyn Inode,
        replaced: Option<(&dyn Inode, bool)>,
    ) {
        if moved.file_type() != FileType::Directory {
            let place = |(dir, name): (&dyn Inode, &[u8])| (dir.key(), name.to_vec());
            self.open.moved(moved.key(), &place(from), &place(to));
        }
        let cookie = self.new_cookie();
        self.on_child(from.0, from.1, IN_MOVED_FROM, moved, cookie);
        self.on_child(to.0, to.1, IN_MOVED_TO, moved, cookie);
        if let Some((r, _)) = replaced {
            self.on_inode(r, IN_ATTRIB);
        }
        self.on_inode(moved, IN_MOVE_SELF);
        if let Some((r, true)) = replaced {
            self.unlinked(r.key());
        }
    }
}
