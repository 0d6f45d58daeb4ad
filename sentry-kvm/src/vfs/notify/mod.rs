//! inotify: programs watch files and directories and read what the sandbox's tasks did to
//! them. The syscalls that change or use files report here ([`Notifier`]'s `on_*` hooks, one
//! per kind of operation); the notifier hands each event to the instances ([`instance`])
//! watching the file, which queue it ([`event`]).
//!
//! Watches hang off the file's identity ([`InodeKey`]), as advisory locks do, since the
//! Sentry may build several inode objects for one file; they hold no inode, so a watch never
//! keeps a deleted file alive, and they go with the file (IN_DELETE_SELF, IN_IGNORED) or with
//! their instance. Only what the sandbox's tasks do through the Sentry is seen: changes made
//! by the host to a volume's files directly are not reported.

pub mod event;
pub mod instance;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::abi::Errno;
use crate::abi::stat::FileType;
use crate::vfs::Location;
use crate::vfs::inode::{Inode, InodeKey};
use event::*;
use instance::Shared;

/// Limits of a sandbox's inotify use (shown in /proc/sys/fs/inotify).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Events an instance queues before reporting IN_Q_OVERFLOW (Linux's default).
    pub max_queued_events: usize,
    /// Watches in the whole sandbox (Linux counts per user; one sandbox is one user's).
    pub max_user_watches: usize,
    /// Instances in the whole sandbox (Linux's default per user).
    pub max_user_instances: usize,
}

pub const LIMITS: Limits =
    Limits { max_queued_events: 16384, max_user_watches: 65536, max_user_instances: 128 };

struct WatchRef {
    instance: Weak<Shared>,
    wd: i32,
}

/// The sandbox's watches by file.
pub struct Notifier {
    watches: Mutex<HashMap<InodeKey, Vec<WatchRef>>>,
    /// Watches in all instances: operations skip the map while there are none.
    watch_count: AtomicUsize,
    instances: AtomicUsize,
    next_cookie: AtomicU32,
    pub limits: Limits,
}

/// Adds one to `counter` unless it has reached `max`.
fn count_up(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
        .is_ok()
}

fn type_bit(inode: &dyn Inode) -> u32 {
    if inode.file_type() == FileType::Directory { IN_ISDIR } else { 0 }
}

impl Notifier {
    pub fn new(limits: Limits) -> Arc<Notifier> {
        Arc::new(Notifier {
            watches: Mutex::new(HashMap::new()),
            watch_count: AtomicUsize::new(0),
            instances: AtomicUsize::new(0),
            next_cookie: AtomicU32::new(0),
            limits,
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<InodeKey, Vec<WatchRef>>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> bool {
        self.watch_count.load(Ordering::Relaxed) == 0
    }

    fn instance_opened(&self) -> Result<(), Errno> {
        count_up(&self.instances, self.limits.max_user_instances).then_some(()).ok_or(Errno::EMFILE)
    }

    fn instance_closed(&self) {
        self.instances.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts a new watch; ENOSPC past the limit.
    fn reserve_watch(&self) -> Result<(), Errno> {
        count_up(&self.watch_count, self.limits.max_user_watches).then_some(()).ok_or(Errno::ENOSPC)
    }

    fn register(&self, key: InodeKey, instance: &Arc<Shared>, wd: i32) {
        self.map()
            .entry(key)
            .or_default()
            .push(WatchRef { instance: Arc::downgrade(instance), wd });
    }

    /// A watch counted by `reserve_watch` is gone from its instance.
    fn unregister(&self, key: InodeKey, instance: &Shared, wd: i32) {
        let mut map = self.map();
        if let Some(refs) = map.get_mut(&key) {
            refs.retain(|r| !(r.wd == wd && std::ptr::eq(r.instance.as_ptr(), instance)));
            if refs.is_empty() {
                map.remove(&key);
            }
        }
        self.watch_count.fetch_sub(1, Ordering::AcqRel);
    }

    fn targets(&self, key: InodeKey) -> Vec<(Arc<Shared>, i32)> {
        let map = self.map();
        let Some(refs) = map.get(&key) else { return Vec::new() };
        refs.iter().filter_map(|r| Some((r.instance.upgrade()?, r.wd))).collect()
    }

    fn send(
        &self,
        key: InodeKey,
        mask: u32,
        cookie: u32,
        name: &[u8],
        excluded: &dyn Fn() -> bool,
    ) {
        for (inst, wd) in self.targets(key) {
            inst.deliver(wd, mask, cookie, name, excluded);
        }
    }

    /// A non-zero cookie tying a rename's IN_MOVED_FROM to its IN_MOVED_TO.
    pub fn new_cookie(&self) -> u32 {
        loop {
            let c = self.next_cookie.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if c != 0 {
                return c;
            }
        }
    }

    /// Something was done to the file at `loc` (opened, read, written, closed, its attributes
    /// changed): its directory's watches hear of it by name, then its own watches.
    pub fn on_file(&self, loc: &Location, event: u32) {
        if self.idle() {
            return;
        }
        let inode = &*loc.inode;
        let mask = event | type_bit(inode);
        let parent = match &loc.via {
            Some(via) => Some((via.0.inode.key(), via.1.clone())),
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
    pub fn on_inode(&self, inode: &dyn Inode, event: u32) {
        if self.idle() {
            return;
        }
        // Linux marks a directory's IN_MOVE_SELF (and IN_DELETE_SELF) without IN_ISDIR.
        let mask = if event == IN_MOVE_SELF { event } else { event | type_bit(inode) };
        self.send(inode.key(), mask, 0, &[], &|| false);
    }

    /// An entry of directory `dir` was created, removed or moved.
    pub fn on_child(
        &self,
        dir: &dyn Inode,
        name: &[u8],
        event: u32,
        child: &dyn Inode,
        cookie: u32,
    ) {
        if self.idle() {
            return;
        }
        self.send(dir.key(), event | type_bit(child), cookie, name, &|| false);
    }

    /// The file is gone: its watches report IN_DELETE_SELF and end (IN_IGNORED).
    pub fn on_removed(&self, inode: &dyn Inode) {
        if self.idle() {
            return;
        }
        for (inst, wd) in self.targets(inode.key()) {
            inst.deliver(wd, IN_DELETE_SELF, 0, &[], &|| false);
            if let Some(key) = inst.ignore(wd) {
                self.unregister(key, &inst, wd);
            }
        }
    }
}
