//! Blocking: every task has a `Waker`; objects that tasks wait for have `WaitQueue`s.
//!
//! The pattern is register, check, block: a task registers its waker with the queues it cares
//! about, re-checks its condition, then blocks. A wake-up between the check and the block is
//! never lost because it leaves the waker notified.

use crate::sync::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::abi::Errno;

/// Readiness events, with the values of poll(2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Events(pub u32);

impl Events {
    pub const IN: Events = Events(0x001);
    pub const PRI: Events = Events(0x002);
    pub const OUT: Events = Events(0x004);
    pub const ERR: Events = Events(0x008);
    pub const HUP: Events = Events(0x010);
    pub const NVAL: Events = Events(0x020);
    pub const RDNORM: Events = Events(0x040);
    pub const WRNORM: Events = Events(0x100);
    pub const RDHUP: Events = Events(0x2000);
    pub const ALL: Events = Events(u32::MAX);

    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
    pub fn union(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }
    pub fn intersect(self, other: Events) -> Events {
        Events(self.0 & other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, o: Events) -> Events {
        Events(self.0 | o.0)
    }
}

/// One task's wake-up channel.
#[derive(Default)]
pub struct Waker {
    notified: Mutex<bool>,
    cv: Condvar,
    /// Set when the owner must stop blocking: a deliverable signal or an exit request.
    interrupt: AtomicBool,
}

/// How a block ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    Notified,
    Interrupted,
    TimedOut,
}

impl Waker {
    pub fn new() -> Arc<Waker> {
        Arc::new(Waker::default())
    }

    pub fn wake(&self) {
        let mut n = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        *n = true;
        self.cv.notify_all();
    }

    /// Marks the owner interrupted (or not) and wakes it.
    pub fn set_interrupt(&self, on: bool) {
        self.interrupt.store(on, Ordering::SeqCst);
        if on {
            self.wake();
        }
    }

    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// Blocks until notified, interrupted or past `deadline`; consumes the notification.
    pub fn block(&self, deadline: Option<Instant>) -> Woken {
        let mut n = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.interrupted() {
                return Woken::Interrupted;
            }
            if *n {
                *n = false;
                return Woken::Notified;
            }
            match deadline {
                None => n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Woken::TimedOut;
                    }
                    n = self.cv.wait_timeout(n, d - now).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }

    /// Like `block`, but an interruption is reported as EINTR and a timeout as ETIMEDOUT.
    pub fn block_interruptible(&self, deadline: Option<Instant>) -> Result<(), Errno> {
        match self.block(deadline) {
            Woken::Notified => Ok(()),
            Woken::Interrupted => Err(Errno::EINTR),
            Woken::TimedOut => Err(Errno::ETIMEDOUT),
        }
    }
}

static NEXT_ENTRY: AtomicU64 = AtomicU64::new(1);

struct Entry {
    id: u64,
    waker: Arc<Waker>,
    mask: Events,
}

/// Tasks waiting for events on an object.
#[derive(Default)]
pub struct WaitQueue {
    entries: Mutex<Vec<Entry>>,
}

/// Keeps a waker registered until dropped.
pub struct Registration<'a> {
    queue: &'a WaitQueue,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut e = self.queue.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|x| x.id != self.id);
    }
}

/// A registration that owns its queue (for waits spanning many objects, e.g. poll).
pub struct OwnedRegistration {
    queue: Arc<WaitQueue>,
    id: u64,
}

impl Drop for OwnedRegistration {
    fn drop(&mut self) {
        let mut e = self.queue.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|x| x.id != self.id);
    }
}

impl WaitQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, waker: &Arc<Waker>, mask: Events) -> u64 {
        let id = NEXT_ENTRY.fetch_add(1, Ordering::Relaxed);
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.push(Entry { id, waker: waker.clone(), mask });
        id
    }

    pub fn register(&self, waker: &Arc<Waker>, mask: Events) -> Registration<'_> {
        Registration { queue: self, id: self.add(waker, mask) }
    }

    pub fn register_owned(self: &Arc<Self>, waker: &Arc<Waker>, mask: Events) -> OwnedRegistration {
        OwnedRegistration { queue: self.clone(), id: self.add(waker, mask) }
    }

    /// Wakes every waiter interested in any of `events`.
    pub fn notify(&self, events: Events) {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for x in e.iter() {
            if x.mask.contains(events) {
                x.waker.wake();
            }
        }
    }

    pub fn notify_all(&self) {
        self.notify(Events::ALL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wake_before_block_is_not_lost() {
        let w = Waker::new();
        let q = WaitQueue::new();
        let _r = q.register(&w, Events::IN);
        q.notify(Events::IN);
        assert_eq!(w.block(Some(Instant::now() + Duration::from_secs(5))), Woken::Notified);
    }

    #[test]
    fn uninterested_waiters_sleep_on() {
        let w = Waker::new();
        let q = WaitQueue::new();
        let _r = q.register(&w, Events::OUT);
        q.notify(Events::IN);
        assert_eq!(w.block(Some(Instant::now() + Duration::from_millis(20))), Woken::TimedOut);
    }

    #[test]
    fn interrupt_ends_a_block_from_another_thread() {
        let w = Waker::new();
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.block(None));
        std::thread::sleep(Duration::from_millis(20));
        w.set_interrupt(true);
        assert_eq!(t.join().unwrap(), Woken::Interrupted);
    }
}
