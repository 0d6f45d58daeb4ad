//! epoll instances and the readiness wait shared with poll and select.

use crate::sync::Mutex;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::abi::Errno;
use crate::abi::stat::Stat;
use crate::kernel::task::Task;
use crate::vfs::file::{File, FileOps};
use crate::waiter::{Events, OwnedRegistration, WaitQueue};

/// How often readiness of objects without wait queues (host descriptors) is re-checked.
const HOST_TICK: Duration = Duration::from_millis(10);

pub const EPOLLET: u32 = 1 << 31;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;

/// Events always reported whether asked for or not.
const ALWAYS: Events = Events(0x008 | 0x010);

/// Waits until one of `files` is ready for its interest set or `deadline` passes. Returns the
/// ready events per file (all empty on timeout). Interrupted by signals (ERESTARTNOHAND).
pub fn wait_ready(
    task: &Task,
    files: &[(Arc<File>, Events)],
    deadline: Option<Instant>,
) -> Result<Vec<Events>, Errno> {
    loop {
        let mut regs: Vec<OwnedRegistration> = Vec::new();
        let mut host = false;
        for (f, _) in files {
            match f.ops.wait_queue() {
                Some(q) => regs.push(q.register_owned(&task.waker, Events::ALL)),
                None => host = true,
            }
        }
        let ready: Vec<Events> =
            files.iter().map(|(f, want)| f.ops.readiness().intersect(want.union(ALWAYS))).collect();
        if ready.iter().any(|e| !e.is_empty()) {
            return Ok(ready);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(ready);
        }
        let wake_at = if host {
            let tick = Instant::now() + HOST_TICK;
            Some(deadline.map_or(tick, |d| d.min(tick)))
        } else {
            deadline
        };
        match task.block(wake_at) {
            Ok(()) | Err(Errno::ETIMEDOUT) => {}
            Err(_) => return Err(Errno::ERESTARTNOHAND),
        }
        drop(regs);
    }
}

struct Interest {
    file: Weak<File>,
    events: u32,
    data: u64,
    disabled: bool,
}

pub struct Epoll {
    interests: Mutex<BTreeMap<i32, Interest>>,
    queue: Arc<WaitQueue>,
}

impl Epoll {
    pub fn new() -> Arc<Epoll> {
        Arc::new(Epoll {
            interests: Mutex::new(BTreeMap::new()),
            queue: Arc::new(WaitQueue::new()),
        })
    }

    #[track_caller]
    fn lock(&self) -> crate::sync::MutexGuard<'_, BTreeMap<i32, Interest>> {
        self.interests.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ctl_add(&self, fd: i32, file: &Arc<File>, events: u32, data: u64) -> Result<(), Errno> {
        let mut m = self.lock();
        if m.get(&fd).is_some_and(|i| i.file.upgrade().is_some()) {
            return Err(Errno::EEXIST);
        }
        m.insert(fd, Interest { file: Arc::downgrade(file), events, data, disabled: false });
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    pub fn ctl_mod(&self, fd: i32, events: u32, data: u64) -> Result<(), Errno> {
        let mut m = self.lock();
        let i = m.get_mut(&fd).ok_or(Errno::ENOENT)?;
        i.events = events;
        i.data = data;
        i.disabled = false;
        drop(m);
        self.queue.notify_all();
        Ok(())
    }

    pub fn ctl_del(&self, fd: i32) -> Result<(), Errno> {
        self.lock().remove(&fd).map(|_| ()).ok_or(Errno::ENOENT)
    }

    /// Ready (events, data) pairs, at most `max`.
    fn collect(&self, max: usize) -> Vec<(u32, u64)> {
        let mut m = self.lock();
        m.retain(|_, i| i.file.upgrade().is_some());
        let mut out = Vec::new();
        for i in m.values_mut() {
            if out.len() >= max {
                break;
            }
            if i.disabled {
                continue;
            }
            let Some(f) = i.file.upgrade() else { continue };
            let want = Events(i.events & 0x0fff_ffff).union(ALWAYS);
            let ev = f.ops.readiness().intersect(want);
            if !ev.is_empty() {
                out.push((ev.0, i.data));
                if i.events & EPOLLONESHOT != 0 {
                    i.disabled = true;
                }
            }
        }
        out
    }

    pub fn wait(
        &self,
        task: &Task,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<(u32, u64)>, Errno> {
        loop {
            let files: Vec<Arc<File>> =
                self.lock().values().filter_map(|i| i.file.upgrade()).collect();
            let mut regs = vec![self.queue.register_owned(&task.waker, Events::ALL)];
            let mut host = false;
            for f in &files {
                match f.ops.wait_queue() {
                    Some(q) => regs.push(q.register_owned(&task.waker, Events::ALL)),
                    None => host = true,
                }
            }
            let ready = self.collect(max);
            if !ready.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ready);
            }
            let wake_at = if host {
                let tick = Instant::now() + HOST_TICK;
                Some(deadline.map_or(tick, |d| d.min(tick)))
            } else {
                deadline
            };
            match task.block(wake_at) {
                Ok(()) | Err(Errno::ETIMEDOUT) => {}
                Err(_) => return Err(Errno::EINTR),
            }
            drop(regs);
        }
    }
}

impl FileOps for Epoll {
    fn readiness(&self) -> Events {
        let m = self.lock();
        let any = m.values().any(|i| {
            !i.disabled
                && i.file.upgrade().is_some_and(|f| {
                    !f.ops
                        .readiness()
                        .intersect(Events(i.events & 0x0fff_ffff).union(ALWAYS))
                        .is_empty()
                })
        });
        if any { Events::IN } else { Events::default() }
    }
    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.queue.clone())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::fs::anon::anon_inode_stat())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
