//! Advisory file locks across the processes of one sandbox, with Linux semantics:
//!
//! - BSD `flock` locks ([`flock`]): whole-file, shared or exclusive, owned by the open file
//!   description and released when its last descriptor closes.
//! - POSIX record locks (`fcntl` F_SETLK/F_SETLKW/F_GETLK, [`record`]): byte ranges owned by the
//!   process's descriptor table, released when the process closes any descriptor of the file
//!   (or exits); F_SETLKW reports EDEADLK on a wait cycle between processes.
//! - Open-file-description locks (F_OFD_*): byte ranges like POSIX ones, owned by the open
//!   file description; they conflict with POSIX locks.
//!
//! Locks hang off the file's identity ([`InodeKey`]: device and inode number as the sandbox
//! sees them), since the Sentry may build several inode objects for one file. The registry is
//! per kernel ([`LockRegistry`]); blocked lockers wait on the file's wait queue and give up
//! with ERESTARTSYS when a signal arrives, like every interruptible wait.

pub mod flock;
pub mod record;

use crate::sync::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::abi::Errno;
use crate::vfs::context::Context;
use crate::vfs::file::File;
use crate::vfs::inode::InodeKey;
use crate::waiter::{Events, WaitQueue};
use flock::FlockList;
use record::{Kind, Owner, Range, Record, RecordList};

/// How far the wait-for chain is followed looking for a deadlock (Linux's
/// MAX_DEADLK_ITERATIONS).
const MAX_DEADLOCK_STEPS: usize = 10;

#[track_caller]
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The identity locks use for `file`: its inode's, or for objects outside the mount tree
/// (pipes, sockets, host descriptors) what fstat reports.
pub fn key_of(file: &File) -> Result<InodeKey, Errno> {
    match &file.location {
        Some(l) => Ok(l.inode.key()),
        None => file.ops.stat().map(|st| (st.dev, st.ino)),
    }
}

#[derive(Default)]
struct LockState {
    records: RecordList,
    flocks: FlockList,
}

impl LockState {
    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.flocks.is_empty()
    }
}

/// The locks of one file.
pub struct InodeLocks {
    key: InodeKey,
    registry: Weak<LockRegistry>,
    state: Mutex<LockState>,
    /// Woken on every unlock, for blocked lockers.
    queue: WaitQueue,
}

impl InodeLocks {
    fn state(&self) -> MutexGuard<'_, LockState> {
        lock(&self.state)
    }

    fn changed(&self) {
        self.queue.notify_all();
    }

    /// Drops everything the open file description `file_id` holds here (flock and OFD locks):
    /// its last descriptor is closed.
    pub fn release_description(self: &Arc<Self>, file_id: u64) {
        let changed = {
            let mut st = self.state();
            let a = st.flocks.remove(file_id);
            let b = st.records.remove_owner(Owner::Ofd(file_id));
            a || b
        };
        if changed {
            self.changed();
        }
        if let Some(r) = self.registry.upgrade() {
            r.prune(self);
        }
    }
}

/// A record lock request, from a `struct flock` already checked and turned into a range.
#[derive(Clone, Copy, Debug)]
pub struct RecordRequest {
    pub owner: Owner,
    /// The caller's process id (recorded for F_GETLK; -1 for OFD locks).
    pub pid: i32,
    /// None: unlock.
    pub kind: Option<Kind>,
    pub range: Range,
}

/// Every lock of a sandbox, by file.
#[derive(Default)]
pub struct LockRegistry {
    files: Mutex<HashMap<InodeKey, Arc<InodeLocks>>>,
    /// POSIX owners blocked in F_SETLKW and the owner they wait for (deadlock detection).
    waits: Mutex<HashMap<u64, u64>>,
}

/// Removes a blocked owner's wait-for edge when its wait ends however it ends.
struct WaitEdge<'a> {
    registry: &'a LockRegistry,
    owner: Option<u64>,
}

impl Drop for WaitEdge<'_> {
    fn drop(&mut self) {
        if let Some(o) = self.owner {
            lock(&self.registry.waits).remove(&o);
        }
    }
}

impl LockRegistry {
    pub fn new() -> Arc<LockRegistry> {
        Arc::new(LockRegistry::default())
    }

    /// The locks of `key`, created on first use.
    pub fn get(self: &Arc<Self>, key: InodeKey) -> Arc<InodeLocks> {
        lock(&self.files)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(InodeLocks {
                    key,
                    registry: Arc::downgrade(self),
                    state: Mutex::new(LockState::default()),
                    queue: WaitQueue::new(),
                })
            })
            .clone()
    }

    fn find(&self, key: InodeKey) -> Option<Arc<InodeLocks>> {
        lock(&self.files).get(&key).cloned()
    }

    /// Forgets a file's entry once nothing is locked there and no one else refers to it.
    fn prune(&self, locks: &Arc<InodeLocks>) {
        let mut files = lock(&self.files);
        // Two references: the map's and the caller's.
        if Arc::strong_count(locks) <= 2
            && locks.state().is_empty()
            && files.get(&locks.key).is_some_and(|l| Arc::ptr_eq(l, locks))
        {
            files.remove(&locks.key);
        }
    }

    /// Whether nothing is locked anywhere (a close then has nothing to release).
    pub fn is_empty(&self) -> bool {
        lock(&self.files).is_empty()
    }

    /// The descriptor table `table_id` closed a descriptor of `file`: its process's POSIX locks
    /// on that file are gone (Linux's `locks_remove_posix`).
    pub fn release_posix(&self, table_id: u64, file: &File) {
        if self.is_empty() {
            return;
        }
        let Ok(key) = key_of(file) else { return };
        let Some(locks) = self.find(key) else { return };
        if locks.state().records.remove_owner(Owner::Posix(table_id)) {
            locks.changed();
        }
        self.prune(&locks);
    }

    /// F_GETLK/F_OFD_GETLK: the first lock that would keep `req` from being taken.
    pub fn test_record(&self, key: InodeKey, req: RecordRequest) -> Option<Record> {
        let kind = req.kind?;
        let locks = self.find(key)?;
        let st = locks.state();
        st.records.conflict(req.owner, kind, req.range)
    }

    /// Whether `owner` waiting for `holder` would close a cycle of waiting POSIX owners.
    fn would_deadlock(&self, owner: u64, holder: u64) -> bool {
        let waits = lock(&self.waits);
        let mut cur = holder;
        for _ in 0..MAX_DEADLOCK_STEPS {
            if cur == owner {
                return true;
            }
            match waits.get(&cur) {
                Some(&next) => cur = next,
                None => return false,
            }
        }
        false
    }

    /// F_SETLK(W)/F_OFD_SETLK(W): sets, changes or removes a record lock on the file of
    /// `locks`, waiting for conflicting locks to go when `wait`.
    pub fn set_record(
        &self,
        ctx: &dyn Context,
        locks: &Arc<InodeLocks>,
        req: RecordRequest,
        wait: bool,
    ) -> Result<(), Errno> {
        let mut edge = WaitEdge { registry: self, owner: None };
        let _reg = wait.then(|| locks.queue.register(ctx.waker(), Events::ALL));
        loop {
            {
                let mut st = locks.state();
                let conflict = req.kind.and_then(|k| st.records.conflict(req.owner, k, req.range));
                match conflict {
                    None => {
                        st.records.set(req.owner, req.pid, req.kind, req.range)?;
                        drop(st);
                        // An unlock, or a write lock turned read, may let others in.
                        locks.changed();
                        return Ok(());
                    }
                    Some(_) if !wait => return Err(Errno::EAGAIN),
                    Some(holder) => {
                        if let (Owner::Posix(me), Owner::Posix(them)) = (req.owner, holder.owner) {
                            if self.would_deadlock(me, them) {
                                return Err(Errno::EDEADLK);
                            }
                            lock(&self.waits).insert(me, them);
                            edge.owner = Some(me);
                        }
                    }
                }
            }
            ctx.block(None)?;
        }
    }

    /// flock(2) on `file` (whose locks are `locks`): `kind` None unlocks.
    pub fn flock(
        &self,
        ctx: &dyn Context,
        locks: &Arc<InodeLocks>,
        file_id: u64,
        kind: Option<Kind>,
        wait: bool,
    ) -> Result<(), Errno> {
        let Some(kind) = kind else {
            if locks.state().flocks.remove(file_id) {
                locks.changed();
            }
            return Ok(());
        };
        {
            let mut st = locks.state();
            match st.flocks.held(file_id) {
                Some(k) if k == kind => return Ok(()),
                // A conversion drops the old lock first (it is not atomic on Linux either).
                Some(_) => {
                    st.flocks.remove(file_id);
                    drop(st);
                    locks.changed();
                }
                None => {}
            }
        }
        let _reg = wait.then(|| locks.queue.register(ctx.waker(), Events::ALL));
        loop {
            {
                let mut st = locks.state();
                if !st.flocks.conflicts(file_id, kind) {
                    st.flocks.add(file_id, kind);
                    return Ok(());
                }
                if !wait {
                    return Err(Errno::EAGAIN);
                }
            }
            ctx.block(None)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::context::TestContext;

    fn req(owner: Owner, kind: Option<Kind>, start: i64, end: i64) -> RecordRequest {
        RecordRequest { owner, pid: 7, kind, range: Range { start, end } }
    }

    const KEY: InodeKey = (1, 2);

    #[test]
    fn a_wait_that_closes_a_cycle_is_edeadlk() {
        let reg = LockRegistry::new();
        let locks = reg.get(KEY);
        let ctx = TestContext::default();
        let (a, b) = (Owner::Posix(1), Owner::Posix(2));
        reg.set_record(&ctx, &locks, req(a, Some(Kind::Write), 0, 0), false).unwrap();
        reg.set_record(&ctx, &locks, req(b, Some(Kind::Write), 1, 1), false).unwrap();
        let r = reg.set_record(&ctx, &locks, req(a, Some(Kind::Write), 1, 1), false);
        assert_eq!(r, Err(Errno::EAGAIN));
        // b waits for a; a waiting for b would close the cycle.
        lock(&reg.waits).insert(2, 1);
        let r = reg.set_record(&ctx, &locks, req(a, Some(Kind::Write), 1, 1), true);
        assert_eq!(r, Err(Errno::EDEADLK));
        assert!(!lock(&reg.waits).contains_key(&1), "no edge left behind");
    }

    #[test]
    fn a_blocked_locker_gets_the_lock_at_unlock() {
        let reg = LockRegistry::new();
        let locks = reg.get(KEY);
        let ctx = TestContext::default();
        reg.set_record(&ctx, &locks, req(Owner::Ofd(1), Some(Kind::Write), 0, 9), false).unwrap();
        let (reg2, locks2) = (reg.clone(), locks.clone());
        let waiter = std::thread::spawn(move || {
            let ctx = TestContext::default();
            reg2.set_record(&ctx, &locks2, req(Owner::Posix(5), Some(Kind::Read), 5, 5), true)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        reg.set_record(&ctx, &locks, req(Owner::Ofd(1), None, 0, 9), false).unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(()));
        let holder = reg.test_record(KEY, req(Owner::Posix(6), Some(Kind::Write), 0, 9));
        assert_eq!(holder.map(|h| h.owner), Some(Owner::Posix(5)));
        let all = req(Owner::Posix(5), None, 0, record::OFFSET_MAX);
        reg.set_record(&ctx, &locks, all, false).unwrap();
        assert!(reg.test_record(KEY, req(Owner::Posix(6), Some(Kind::Write), 0, 9)).is_none());
    }

    #[test]
    fn an_interrupted_wait_gives_up() {
        let reg = LockRegistry::new();
        let locks = reg.get(KEY);
        let ctx = TestContext::default();
        reg.flock(&ctx, &locks, 1, Some(Kind::Write), false).unwrap();
        assert_eq!(reg.flock(&ctx, &locks, 2, Some(Kind::Read), false), Err(Errno::EAGAIN));
        let other = TestContext::default();
        other.0.set_interrupt(true);
        assert_eq!(reg.flock(&other, &locks, 2, Some(Kind::Read), true), Err(Errno::EINTR));
        locks.release_description(1);
        assert_eq!(reg.flock(&ctx, &locks, 2, Some(Kind::Read), false), Ok(()));
    }
}
