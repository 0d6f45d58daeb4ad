//! An inotify instance: the file inotify_init returns. It owns its watches (by watch
//! descriptor) and its event queue; the sandbox's [`Notifier`] knows which instances watch
//! which file and hands them events. Closing the last descriptor drops the instance and its
//! watches with it.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Notifier;
use super::event::*;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::Stat;
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::vfs::inode::InodeKey;
use crate::waiter::{Events, WaitQueue};

/// FIONREAD: bytes of events waiting.
const FIONREAD: u32 = 0x541B;

struct Watch {
    key: InodeKey,
    mask: u32,
}

struct State {
    queue: EventQueue,
    watches: BTreeMap<i32, Watch>,
    by_key: HashMap<InodeKey, i32>,
    /// The last watch descriptor handed out: they are allocated upwards, wrapping, as Linux
    /// does, so a removed one is not soon reused.
    last_wd: i32,
}

/// What the notifier refers to (weakly) and the file wraps.
pub struct Shared {
    state: Mutex<State>,
    queue: Arc<WaitQueue>,
    notifier: Arc<Notifier>,
}

/// Whether a watch with `mask` reports `event` about the watched file itself or a child.
fn wants(mask: u32, event: u32) -> bool {
    mask & event & IN_ALL_EVENTS != 0
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `mask` for watch `wd` if it asks for it; a one-shot watch goes after its first
    /// event. `excluded` says whether a watch with IN_EXCL_UNLINK skips the event (its child
    /// is unlinked).
    pub(super) fn deliver(
        &self,
        wd: i32,
        mask: u32,
        cookie: u32,
        name: &[u8],
        excluded: &dyn Fn() -> bool,
    ) {
        let gone = {
            let mut st = self.state();
            let Some(w) = st.watches.get(&wd) else { return };
            if !wants(w.mask, mask) || (w.mask & IN_EXCL_UNLINK != 0 && excluded()) {
                return;
            }
            let oneshot = w.mask & IN_ONESHOT != 0;
            self.queue_event(&mut st, Event { wd, mask, cookie, name: name.to_vec() });
            if oneshot { self.forget(&mut st, wd) } else { None }
        };
        if let Some(key) = gone {
            self.notifier.unregister(key, self, wd);
        }
        self.queue.notify(Events::IN);
    }

    /// The watched file is gone (or the watch was removed): IN_IGNORED ends the watch.
    pub(super) fn ignore(&self, wd: i32) -> Option<InodeKey> {
        let key = self.forget(&mut self.state(), wd)?;
        self.queue.notify(Events::IN);
        Some(key)
    }

    /// Removes watch `wd`, queueing IN_IGNORED; the caller unregisters it from the notifier.
    fn forget(&self, st: &mut State, wd: i32) -> Option<InodeKey> {
        let w = st.watches.remove(&wd)?;
        st.by_key.remove(&w.key);
        self.queue_event(st, Event { wd, mask: IN_IGNORED, cookie: 0, name: Vec::new() });
        Some(w.key)
    }

    /// Queues `ev` within the sandbox's budget for queued events.
    fn queue_event(&self, st: &mut State, ev: Event) {
        let before = st.queue.bytes();
        let room = self.notifier.queued.has_room(ev.size());
        st.queue.push_within(ev, room);
        self.notifier.queued.charge(st.queue.bytes() - before);
    }
}

/// The inotify file.
pub struct Inotify {
    shared: Arc<Shared>,
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let (watches, queued) = {
            let mut st = self.shared.state();
            (std::mem::take(&mut st.watches), st.queue.bytes())
        };
        self.shared.notifier.queued.credit(queued);
        for (wd, w) in watches {
            self.shared.notifier.unregister(w.key, &self.shared, wd);
        }
        self.shared.notifier.instance_closed();
    }
}

impl Inotify {
    /// A new instance; EMFILE past the sandbox's instance limit.
    pub fn new(notifier: &Arc<Notifier>) -> Result<Arc<Inotify>, Errno> {
        notifier.instance_opened()?;
        Ok(Arc::new(Inotify {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: EventQueue::new(notifier.limits.max_queued_events),
                    watches: BTreeMap::new(),
                    by_key: HashMap::new(),
                    last_wd: 0,
                }),
                queue: Arc::new(WaitQueue::new()),
                notifier: notifier.clone(),
            }),
        }))
    }

    /// inotify_add_watch on the file `key` once its path is resolved and checked: the watch
    /// descriptor, the same one for a file already watched.
    pub fn add_watch(&self, key: InodeKey, mask: u32) -> Result<i32, Errno> {
        let sh = &self.shared;
        let mut st = sh.state();
        let stored = mask & !(IN_MASK_ADD | IN_MASK_CREATE | IN_ONLYDIR | IN_DONT_FOLLOW);
        if let Some(&wd) = st.by_key.get(&key) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            if let Some(w) = st.watches.get_mut(&wd) {
                w.mask = if mask & IN_MASK_ADD != 0 { w.mask | stored } else { stored };
            }
            return Ok(wd);
        }
        sh.notifier.reserve_watch()?;
        let mut wd = st.last_wd;
        loop {
            wd = if wd == i32::MAX { 1 } else { wd + 1 };
            if !st.watches.contains_key(&wd) {
                break;
            }
        }
        st.last_wd = wd;
        st.watches.insert(wd, Watch { key, mask: stored });
        st.by_key.insert(key, wd);
        // Registered before the instance's lock goes, so that a concurrent rm_watch finds it
        // (the notifier's lock is only ever taken inside an instance's).
        sh.notifier.register(key, sh, wd);
        Ok(wd)
    }

    /// inotify_rm_watch: EINVAL for a descriptor this instance does not have.
    pub fn rm_watch(&self, wd: i32) -> Result<(), Errno> {
        let key = self.shared.ignore(wd).ok_or(Errno::EINVAL)?;
        self.shared.notifier.unregister(key, &self.shared, wd);
        Ok(())
    }
}

impl FileOps for Inotify {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        loop {
            let _r = self.shared.queue.register(ctx.waker(), Events::IN);
            let data = self.shared.state().queue.take(buf.len())?;
            self.shared.notifier.queued.credit(data.len());
            if !data.is_empty() {
                buf[..data.len()].copy_from_slice(&data);
                return Ok(data.len());
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            ctx.block(None)?;
        }
    }

    fn readiness(&self) -> Events {
        if self.shared.state().queue.is_empty() {
            Events::default()
        } else {
            Events::IN | Events::RDNORM
        }
    }

    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.shared.queue.clone())
    }

    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> SysResult {
        match cmd {
            FIONREAD => {
                let n = self.shared.state().queue.bytes() as i32;
                ctx.copy_out(arg, &n.to_le_bytes())?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::fs::anon::anon_inode_stat())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::vfs::context::TestContext;
    use crate::vfs::notify::Limits;

    fn notifier(max_user_watches: usize, max_user_instances: usize) -> Arc<Notifier> {
        Notifier::new(Limits {
            max_queued_events: 100,
            max_user_watches,
            max_user_instances,
            max_queued_bytes: 1 << 20,
        })
    }

    /// The (wd, mask, name) of every queued event.
    fn events(i: &Inotify) -> Vec<(i32, u32, String)> {
        let mut buf = vec![0u8; 4096];
        let n = match i.read(&TestContext::default(), &mut buf, true) {
            Ok(n) => n,
            Err(Errno::EAGAIN) => 0,
            Err(e) => panic!("read: {e:?}"),
        };
        let mut out = Vec::new();
        let mut p = &buf[..n];
        while p.len() >= HEADER {
            let word = |o: usize| u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
            let len = word(12) as usize;
            let name = &p[HEADER..HEADER + len];
            let name = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or(&[]));
            out.push((word(0) as i32, word(4), name.into_owned()));
            p = &p[HEADER + len..];
        }
        out
    }

    fn send(n: &Notifier, key: InodeKey, mask: u32, name: &str) {
        n.send(key, mask, 0, name.as_bytes(), &|| false);
    }

    #[test]
    fn one_watch_per_file_with_replaced_added_or_refused_masks() {
        let n = notifier(10, 10);
        let i = Inotify::new(&n).unwrap();
        assert_eq!(i.add_watch((1, 1), IN_MODIFY), Ok(1));
        assert_eq!(i.add_watch((1, 2), IN_MODIFY), Ok(2));
        assert_eq!(i.add_watch((1, 1), IN_ATTRIB), Ok(1));
        send(&n, (1, 1), IN_MODIFY, "");
        send(&n, (1, 1), IN_ATTRIB, "x");
        assert_eq!(events(&i), [(1, IN_ATTRIB, "x".to_string())]);
        assert_eq!(i.add_watch((1, 1), IN_MODIFY | IN_MASK_ADD), Ok(1));
        send(&n, (1, 1), IN_MODIFY, "");
        send(&n, (1, 1), IN_ATTRIB, "");
        assert_eq!(events(&i).len(), 2);
        assert_eq!(i.add_watch((1, 1), IN_MODIFY | IN_MASK_CREATE), Err(Errno::EEXIST));
        // Other instances have their own descriptors and hear the same events.
        let j = Inotify::new(&n).unwrap();
        assert_eq!(j.add_watch((1, 2), IN_MODIFY), Ok(1));
        send(&n, (1, 2), IN_MODIFY, "");
        assert_eq!(events(&i), [(2, IN_MODIFY, String::new())]);
        assert_eq!(events(&j), [(1, IN_MODIFY, String::new())]);
    }

    #[test]
    fn removed_and_one_shot_watches_end_with_in_ignored() {
        let n = notifier(10, 10);
        let i = Inotify::new(&n).unwrap();
        let wd = i.add_watch((1, 1), IN_MODIFY | IN_ONESHOT).unwrap();
        send(&n, (1, 1), IN_MODIFY, "");
        send(&n, (1, 1), IN_MODIFY, "a");
        assert_eq!(events(&i), [(wd, IN_MODIFY, String::new()), (wd, IN_IGNORED, String::new())]);
        assert_eq!(i.rm_watch(wd), Err(Errno::EINVAL));
        let wd2 = i.add_watch((1, 1), IN_MODIFY).unwrap();
        assert_ne!(wd2, wd, "descriptors are not reused at once");
        assert_eq!(i.rm_watch(wd2), Ok(()));
        send(&n, (1, 1), IN_MODIFY, "");
        assert_eq!(events(&i), [(wd2, IN_IGNORED, String::new())]);
        assert_eq!(n.watch_count.load(Ordering::Relaxed), 0);
        assert!(n.map().is_empty());
    }

    #[test]
    fn limits_refuse_watches_and_instances_until_they_go() {
        let n = notifier(2, 1);
        let i = Inotify::new(&n).unwrap();
        assert!(matches!(Inotify::new(&n), Err(Errno::EMFILE)));
        i.add_watch((1, 1), IN_MODIFY).unwrap();
        i.add_watch((1, 2), IN_MODIFY).unwrap();
        assert_eq!(i.add_watch((1, 3), IN_MODIFY), Err(Errno::ENOSPC));
        // A file already watched needs no new watch.
        assert_eq!(i.add_watch((1, 2), IN_ATTRIB), Ok(2));
        drop(i);
        assert!(n.map().is_empty(), "a closed instance leaves no watch behind");
        let j = Inotify::new(&n).unwrap();
        assert_eq!(j.add_watch((1, 3), IN_MODIFY), Ok(1));
    }

    #[test]
    fn a_file_unlinked_while_open_goes_with_its_last_description() {
        let n = notifier(10, 10);
        let i = Inotify::new(&n).unwrap();
        let wd = i.add_watch((1, 1), IN_DELETE_SELF).unwrap();
        n.opened((1, 1), None);
        n.opened((1, 1), None);
        n.unlinked((1, 1));
        n.closed((1, 1));
        assert_eq!(events(&i), []);
        n.closed((1, 1));
        let gone = [(wd, IN_DELETE_SELF, String::new()), (wd, IN_IGNORED, String::new())];
        assert_eq!(events(&i), gone);
        assert!(n.open.is_empty() && n.map().is_empty());
        // Not open: gone at once.
        let wd = i.add_watch((1, 2), IN_DELETE_SELF).unwrap();
        n.unlinked((1, 2));
        assert_eq!(events(&i).len(), 2, "{wd}");
    }

    #[test]
    fn the_sandbox_wide_budget_overflows_every_instance_until_events_are_read() {
        let n = Notifier::new(Limits {
            max_queued_events: 100,
            max_user_watches: 10,
            max_user_instances: 10,
            max_queued_bytes: 64,
        });
        let (i, j) = (Inotify::new(&n).unwrap(), Inotify::new(&n).unwrap());
        i.add_watch((1, 1), IN_CREATE).unwrap();
        j.add_watch((1, 1), IN_CREATE).unwrap();
        send(&n, (1, 1), IN_CREATE, "a");
        send(&n, (1, 1), IN_CREATE, "b");
        // 32 bytes an event: "a" fills the budget for both, "b" overflows both.
        let overflowed = [(1, IN_CREATE, "a".into()), (-1, IN_Q_OVERFLOW, String::new())];
        assert_eq!(events(&i), overflowed);
        assert_eq!(events(&j), overflowed);
        assert_eq!(n.queued.used.load(Ordering::Relaxed), 0);
        send(&n, (1, 1), IN_CREATE, "c");
        drop(j);
        assert_eq!(n.queued.used.load(Ordering::Relaxed), 32, "a closed instance gives back");
    }

    #[test]
    fn a_blocking_read_waits_for_an_event() {
        let n = notifier(10, 10);
        let i = Inotify::new(&n).unwrap();
        i.add_watch((1, 1), IN_CREATE).unwrap();
        let sender = {
            let n = n.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                send(&n, (1, 1), IN_CREATE, "new");
            })
        };
        let mut buf = [0u8; 64];
        assert_eq!(i.read(&TestContext::default(), &mut buf, false), Ok(32));
        assert_eq!(&buf[16..19], b"new");
        sender.join().unwrap();
        assert_eq!(i.readiness(), Events::default());
        send(&n, (1, 1), IN_CREATE, "b");
        assert!(i.readiness().contains(Events::IN));
    }
}
