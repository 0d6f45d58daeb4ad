//! inotify: programs watch files and directories and read what the sandbox's tasks did to
//! them. The syscalls that change or use files report here ([`Notifier`]'s `on_*` hooks, one
//! per kind of operation, in `hooks`); the notifier hands each event to the instances ([`instance`])
//! watching the file, which queue it ([`event`]).
//!
//! Watches hang off the file's identity ([`InodeKey`]), as advisory locks do, since the
//! Sentry may build several inode objects for one file; they hold no inode, so a watch never
//! keeps a deleted file alive, and they go with the file (IN_DELETE_SELF, IN_IGNORED) or with
//! their instance. Only what the sandbox's tasks do through the Sentry is seen: changes made
//! by the host to a volume's files directly are not reported.

pub mod event;
mod hooks;
pub mod instance;
mod open_files;

use crate::sync::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::vfs::inode::InodeKey;
pub use hooks::last_name;
use instance::Shared;
use open_files::OpenFiles;
pub use open_files::Place;

/// Limits of a sandbox's inotify use (shown in /proc/sys/fs/inotify).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Events an instance queues before reporting IN_Q_OVERFLOW (Linux's default).
    pub max_queued_events: usize,
    /// Watches in the whole sandbox (Linux counts them per user).
    pub max_user_watches: usize,
    /// Instances in the whole sandbox (Linux's default number per user).
    pub max_user_instances: usize,
    /// Bytes of events queued in all instances: past it, events overflow. Linux charges
    /// queued events to the memory cgroup; this keeps a hostile sandbox from growing the
    /// Sentry by gigabytes (instances times events times names).
    pub max_queued_bytes: usize,
}

/// Bytes of events queued in all instances, within [`Limits::max_queued_bytes`].
pub struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    fn has_room(&self, n: usize) -> bool {
        self.used.load(Ordering::Relaxed).saturating_add(n) <= self.max
    }

    fn charge(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn credit(&self, n: usize) {
        // Every byte credited was charged; saturate rather than wrap should that ever break.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n)));
    }
}

pub const LIMITS: Limits = Limits {
    max_queued_events: 16384,
    max_user_watches: 65536,
    max_user_instances: 128,
    max_queued_bytes: 64 << 20,
};

struct WatchRef {
    instance: Weak<Shared>,
    wd: i32,
}

/// The sandbox's watches by file.
pub struct Notifier {
    watches: Mutex<HashMap<InodeKey, Vec<WatchRef>>>,
    /// Files open by path (descriptions that report).
    open: OpenFiles,
    /// Watches in all instances: operations skip the map while there are none.
    watch_count: AtomicUsize,
    instances: AtomicUsize,
    next_cookie: AtomicU32,
    queued: Budget,
    pub limits: Limits,
}

/// Adds one to `counter` unless it has reached `max`.
fn count_up(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
        .is_ok()
}

impl Notifier {
    pub fn new(limits: Limits) -> Arc<Notifier> {
        Arc::new(Notifier {
            watches: Mutex::new(HashMap::new()),
            open: OpenFiles::default(),
            watch_count: AtomicUsize::new(0),
            instances: AtomicUsize::new(0),
            next_cookie: AtomicU32::new(0),
            queued: Budget { used: AtomicUsize::new(0), max: limits.max_queued_bytes },
            limits,
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<InodeKey, Vec<WatchRef>>> {
        self.watches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A description of the file `key` was opened by path (as `place`, for a file that is
    /// not a directory).
    pub fn opened(&self, key: InodeKey, place: Option<Place>) {
        self.open.opened(key, place);
    }

    /// A description of the file `key` went; the file is gone if it was its last and its last
    /// name went before.
    pub fn closed(&self, key: InodeKey) {
        if self.open.closed(key) {
            self.on_removed(key);
        }
    }

    /// The last name of the file `key` went: it is gone now, or when its last description
    /// closes.
    fn unlinked(&self, key: InodeKey) {
        if self.open.unlinked(key) {
            self.on_removed(key);
        }
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
    fn new_cookie(&self) -> u32 {
        loop {
            let c = self.next_cookie.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if c != 0 {
                return c;
            }
        }
    }
}
