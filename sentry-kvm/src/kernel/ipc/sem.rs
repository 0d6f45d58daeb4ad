//! Semaphore sets. semop applies all of its operations or none; a caller that must wait
//! queues on the set, and whoever changes the set completes the queued operations that can
//! now run on the waiters' behalf, earliest first (one that still cannot run does not hold
//! back later ones, as on Linux). SEM_UNDO adjustments are kept per process and applied when
//! it exits.

use crate::sync::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::kernel::ipc::limits::IpcLimits;
use crate::kernel::ipc::perm::*;
use crate::vfs::context::Context;
use crate::waiter::Waker;

pub const SEM_UNDO: i16 = 0x1000;
pub const SEMVMX: i32 = 32767;
/// semadj stays within a short.
const SEMAEM: i32 = SEMVMX;

pub const GETPID: i32 = 11;
pub const GETVAL: i32 = 12;
pub const GETALL: i32 = 13;
pub const GETNCNT: i32 = 14;
pub const GETZCNT: i32 = 15;
pub const SETVAL: i32 = 16;
pub const SETALL: i32 = 17;
pub const SEM_STAT: i32 = 18;
pub const SEM_INFO: i32 = 19;
pub const SEM_STAT_ANY: i32 = 20;

/// The Sentry's own ceilings, whatever the sysctls say: semaphores in all sets and undo
/// entries of all processes (each costs Sentry memory, not guest memory).
const MAX_SEMS: i64 = 1 << 22;
const MAX_UNDO_ENTRIES: usize = 1 << 20;
/// Most operations one semop may carry (the buffer is copied into the Sentry).
pub const MAX_SOPS: usize = 1 << 16;

/// One operation (struct sembuf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemBuf {
    pub num: u16,
    pub op: i16,
    pub flags: i16,
}

impl SemBuf {
    pub fn parse(b: &[u8]) -> SemBuf {
        SemBuf {
            num: u16::from_le_bytes([b[0], b[1]]),
            op: i16::from_le_bytes([b[2], b[3]]),
            flags: i16::from_le_bytes([b[4], b[5]]),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Sem {
    val: i32,
    pid: i32,
}

/// A semop waiting on a set.
struct Waiter {
    ops: Vec<SemBuf>,
    tgid: i32,
    pid: i32,
    /// The operation it waits on (GETNCNT/GETZCNT count these).
    blocking: SemBuf,
    outcome: Mutex<Option<Result<(), Errno>>>,
    waker: Arc<Waker>,
}

impl Waiter {
    fn finish(&self, r: Result<(), Errno>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.waker.wake();
    }
    fn outcome(&self) -> Option<Result<(), Errno>> {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct SemSet {
    perm: IpcPerm,
    sems: Vec<Sem>,
    otime: i64,
    ctime: i64,
    queue: Vec<Arc<Waiter>>,
}

impl IpcObject for SemSet {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl SemSet {
    /// struct semid64_ds.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(104);
        b.extend_from_slice(&self.perm.to_bytes());
        for v in [self.otime as u64, 0, self.ctime as u64, 0, self.sems.len() as u64, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    fn count(&self, num: usize, zero: bool) -> usize {
        self.queue
            .iter()
            .filter(|w| {
                usize::from(w.blocking.num) == num
                    && if zero { w.blocking.op == 0 } else { w.blocking.op < 0 }
            })
            .count()
    }
}

/// How a try at a semop ended.
enum Attempt {
    /// New values and adjustments to commit.
    Done(Vec<(usize, i32)>),
    /// Operation `i` must wait.
    Wait(usize),
    Failed(Errno),
}

/// Tries `ops` on `sems` as one atomic step (on a copy), with the process's adjustments.
fn attempt(sems: &[Sem], adj: Option<&HashMap<u16, i32>>, ops: &[SemBuf]) -> Attempt {
    let mut vals: Vec<(usize, i32)> = Vec::new();
    let mut adjs: HashMap<u16, i32> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        let n = usize::from(o.num);
        let cur = vals.iter().rev().find(|(k, _)| *k == n).map_or(sems[n].val, |(_, v)| *v);
        let op = i32::from(o.op);
        if (op == 0 && cur != 0) || cur + op < 0 {
            return if o.flags as i32 & IPC_NOWAIT != 0 {
                Attempt::Failed(Errno::EAGAIN)
            } else {
                Attempt::Wait(i)
            };
        }
        if cur + op > SEMVMX {
            return Attempt::Failed(Errno::ERANGE);
        }
        if o.flags & SEM_UNDO != 0 {
            let before = adjs
                .get(&o.num)
                .copied()
                .unwrap_or_else(|| adj.and_then(|a| a.get(&o.num).copied()).unwrap_or(0));
            let after = before - op;
            if !(-SEMAEM - 1..=SEMAEM).contains(&after) {
                return Attempt::Failed(Errno::ERANGE);
            }
            adjs.insert(o.num, after);
        }
        vals.push((n, cur + op));
    }
    Attempt::Done(vals)
}

#[derive(Default)]
struct SemTable {
    ids: IdTable<SemSet>,
    used_sems: i64,
    /// SEM_UNDO adjustments: process -> set id -> semaphore -> adjustment (never zero).
    undo: HashMap<i32, HashMap<i32, HashMap<u16, i32>>>,
    undo_entries: usize,
}

impl SemTable {
    /// Commits `ops` done by `tgid`/`pid` with the values `vals` from [`attempt`].
    fn commit(&mut self, id: i32, ops: &[SemBuf], vals: &[(usize, i32)], tgid: i32, pid: i32) {
        let Ok(set) = self.ids.get_mut(id) else { return };
        for (n, v) in vals {
            set.sems[*n].val = *v;
        }
        for o in ops {
            set.sems[usize::from(o.num)].pid = pid;
        }
        set.otime = now();
        for o in ops.iter().filter(|o| o.flags & SEM_UNDO != 0) {
            let per_set = self.undo.entry(tgid).or_default().entry(id).or_default();
            let slot = per_set.entry(o.num).or_insert(0);
            let was_zero = *slot == 0;
            *slot -= i32::from(o.op);
            if *slot == 0 {
                per_set.remove(&o.num);
                if !was_zero {
                    self.undo_entries -= 1;
                }
            } else if was_zero {
                self.undo_entries += 1;
            }
        }
    }

    /// Whether committing `ops` for `tgid` could add undo entries past the ceiling.
    fn undo_room(&self, ops: &[SemBuf]) -> bool {
        let new = ops.iter().filter(|o| o.flags & SEM_UNDO != 0).count();
        self.undo_entries + new <= MAX_UNDO_ENTRIES
    }

    /// Completes queued operations of set `id` that can now run, earliest first, until none
    /// can.
    fn run_queue(&mut self, id: i32) {
        loop {
            let Ok(set) = self.ids.get(id) else { return };
            let mut progress = None;
            for (i, w) in set.queue.iter().enumerate() {
                let adj = self.undo.get(&w.tgid).and_then(|m| m.get(&id));
                match attempt(&set.sems, adj, &w.ops) {
                    Attempt::Wait(_) => continue,
                    Attempt::Done(vals) => {
                        progress = Some((i, Ok(vals)));
                        break;
                    }
                    Attempt::Failed(e) => {
                        progress = Some((i, Err(e)));
                        break;
                    }
                }
            }
            let Some((i, r)) = progress else { return };
            let Ok(set) = self.ids.get_mut(id) else { return };
            let w = set.queue.remove(i);
            match r {
                Ok(vals) if self.undo_room(&w.ops) => {
                    self.commit(id, &w.ops, &vals, w.tgid, w.pid);
                    w.finish(Ok(()));
                }
                Ok(_) => w.finish(Err(Errno::ENOMEM)),
                Err(e) => w.finish(Err(e)),
            }
        }
    }

    /// Drops every adjustment for set `id` (all of them, or one semaphore's).
    fn clear_undo(&mut self, id: i32, num: Option<u16>) {
        let mut dropped = 0;
        for per_proc in self.undo.values_mut() {
            if let Some(per_set) = per_proc.get_mut(&id) {
                match num {
                    Some(n) => dropped += usize::from(per_set.remove(&n).is_some()),
                    None => dropped += per_set.len(),
                }
                if num.is_none() || per_set.is_empty() {
                    per_proc.remove(&id);
                }
            }
        }
        self.undo.retain(|_, m| !m.is_empty());
        self.undo_entries -= dropped;
    }
}

#[derive(Default)]
pub struct SemRegistry {
    table: Mutex<SemTable>,
}

/// What semctl's fourth argument (union semun) carries, read by the syscall layer.
pub enum SemArg<'a> {
    None,
    Val(i32),
    Bytes(&'a [u8]),
}

impl SemRegistry {
    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, SemTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(
        &self,
        limits: &IpcLimits,
        creds: &Credentials,
        key: i32,
        nsems: i32,
        flags: i32,
    ) -> Result<i32, Errno> {
        if nsems < 0 || nsems > limits.semmsl {
            return Err(Errno::EINVAL);
        }
        let mut t = self.lock();
        let used = t.used_sems;
        let mut added = 0;
        let id = t.ids.get_or_create(
            key,
            flags,
            creds,
            |s| if nsems as usize > s.sems.len() { Err(Errno::EINVAL) } else { Ok(()) },
            |ids| {
                if nsems == 0 {
                    return Err(Errno::EINVAL);
                }
                let total = used + i64::from(nsems);
                if total > i64::from(limits.semmns) || total > MAX_SEMS {
                    return Err(Errno::ENOSPC);
                }
                let now = now();
                let id = ids.add(limits.semmni, key, flags, creds, |perm| SemSet {
                    perm,
                    sems: vec![Sem::default(); nsems as usize],
                    otime: 0,
                    ctime: now,
                    queue: Vec::new(),
                })?;
                added = i64::from(nsems);
                Ok(id)
            },
        )?;
        t.used_sems += added;
        Ok(id)
    }

    /// semop/semtimedop for the caller's process (which holds the SEM_UNDO adjustments).
    pub fn op(
        &self,
        ctx: &dyn Context,
        caller: Caller<'_>,
        id: i32,
        ops: Vec<SemBuf>,
        deadline: Option<Instant>,
    ) -> Result<(), Errno> {
        let (creds, tgid, pid) = (caller.creds, caller.pid, caller.pid);
        let waiter = {
            let mut t = self.lock();
            let set = t.ids.get(id)?;
            let max = ops.iter().map(|o| usize::from(o.num)).max().unwrap_or(0);
            if max >= set.sems.len() {
                return Err(Errno::EFBIG);
            }
            let alter = ops.iter().any(|o| o.op != 0);
            set.perm.check(creds, if alter { WRITE } else { READ })?;
            let adj = t.undo.get(&tgid).and_then(|m| m.get(&id));
            match attempt(&set.sems, adj, &ops) {
                Attempt::Done(vals) => {
                    if !t.undo_room(&ops) {
                        return Err(Errno::ENOMEM);
                    }
                    t.commit(id, &ops, &vals, tgid, pid);
                    if alter {
                        t.run_queue(id);
                    }
                    return Ok(());
                }
                Attempt::Failed(e) => return Err(e),
                Attempt::Wait(i) => {
                    let w = Arc::new(Waiter {
                        blocking: ops[i],
                        ops,
                        tgid,
                        pid,
                        outcome: Mutex::new(None),
                        waker: ctx.waker().clone(),
                    });
                    t.ids.get_mut(id)?.queue.push(w.clone());
                    w
                }
            }
        };
        loop {
            if let Some(r) = waiter.outcome() {
                return r;
            }
            if let Err(e) = ctx.block(deadline) {
                let mut t = self.lock();
                if let Some(r) = waiter.outcome() {
                    return r;
                }
                if let Ok(set) = t.ids.get_mut(id) {
                    set.queue.retain(|w| !Arc::ptr_eq(w, &waiter));
                }
                return Err(if e == Errno::ETIMEDOUT { Errno::EAGAIN } else { Errno::EINTR });
            }
        }
    }

    /// Applies and forgets the SEM_UNDO adjustments of exiting process `tgid`.
    pub fn exit(&self, tgid: i32) {
        let mut t = self.lock();
        let Some(per_proc) = t.undo.remove(&tgid) else { return };
        for (id, adj) in per_proc {
            t.undo_entries -= adj.len();
            let Ok(set) = t.ids.get_mut(id) else { continue };
            for (num, a) in adj {
                if let Some(s) = set.sems.get_mut(usize::from(num)) {
                    s.val = (s.val + a).clamp(0, SEMVMX);
                    s.pid = tgid;
                }
            }
            set.otime = now();
            t.run_queue(id);
        }
    }

    pub fn ctl(
        &self,
        limits: &IpcLimits,
        caller: Caller<'_>,
        id: i32,
        num: i32,
        cmd: i32,
        arg: SemArg<'_>,
    ) -> Result<CtlOut, Errno> {
        let Caller { creds, pid } = caller;
        let mut t = self.lock();
        let out = |value, data| Ok(CtlOut { value, data });
        match cmd {
            IPC_INFO | SEM_INFO => {
                let semmns_default = 32000 * 32000;
                let (semusz, semaem) = if cmd == SEM_INFO {
                    (t.ids.len() as i32, t.used_sems.min(i64::from(i32::MAX)) as i32)
                } else {
                    (20, SEMAEM)
                };
                let info = [
                    semmns_default,
                    limits.semmni,
                    limits.semmns,
                    semmns_default,
                    limits.semmsl,
                    limits.semopm,
                    500,
                    semusz,
                    SEMVMX,
                    semaem,
                ];
                let b = info.iter().flat_map(|v| v.to_le_bytes()).collect();
                out(t.ids.max_index(), Some(b))
            }
            IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
                let by = match cmd {
                    IPC_STAT => StatBy::Id,
                    SEM_STAT => StatBy::Index,
                    _ => StatBy::IndexAny,
                };
                let (s, value) = t.ids.stat(creds, id, by)?;
                out(value, Some(s.to_bytes()))
            }
            IPC_SET => {
                let SemArg::Bytes(b) = arg else { return Err(Errno::EFAULT) };
                let s = t.ids.get_mut(id)?;
                s.perm.check_owner(creds)?;
                s.perm.set(&PermArg::parse(b));
                s.ctime = now();
                out(0, None)
            }
            IPC_RMID => {
                t.ids.get(id)?.perm.check_owner(creds)?;
                let Some(set) = t.ids.remove(id) else { return Err(Errno::EINVAL) };
                t.used_sems -= set.sems.len() as i64;
                for w in &set.queue {
                    w.finish(Err(Errno::EIDRM));
                }
                t.clear_undo(id, None);
                out(0, None)
            }
            SETVAL => {
                let SemArg::Val(v) = arg else { return Err(Errno::EINVAL) };
                if !(0..=SEMVMX).contains(&v) {
                    return Err(Errno::ERANGE);
                }
                let s = t.ids.get_mut(id)?;
                let n = usize::try_from(num).ok().filter(|n| *n < s.sems.len());
                let n = n.ok_or(Errno::EINVAL)?;
                s.perm.check(creds, WRITE)?;
                s.sems[n] = Sem { val: v, pid };
                s.ctime = now();
                t.clear_undo(id, Some(n as u16));
                t.run_queue(id);
                out(0, None)
            }
            SETALL => {
                let SemArg::Bytes(b) = arg else { return Err(Errno::EFAULT) };
                let s = t.ids.get_mut(id)?;
                s.perm.check(creds, WRITE)?;
                let vals: Vec<i32> = b
                    .chunks_exact(2)
                    .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                if vals.len() != s.sems.len() {
                    return Err(Errno::EFAULT);
                }
                if vals.iter().any(|v| *v > SEMVMX) {
                    return Err(Errno::ERANGE);
                }
                for (sem, v) in s.sems.iter_mut().zip(vals) {
                    *sem = Sem { val: v, pid };
                }
                s.ctime = now();
                t.clear_undo(id, None);
                t.run_queue(id);
                out(0, None)
            }
            GETALL => {
                let s = t.ids.get(id)?;
                s.perm.check(creds, READ)?;
                let b = s.sems.iter().flat_map(|x| (x.val as u16).to_le_bytes()).collect();
                out(0, Some(b))
            }
            GETVAL | GETPID | GETNCNT | GETZCNT => {
                let s = t.ids.get(id)?;
                s.perm.check(creds, READ)?;
                let n = usize::try_from(num).ok().filter(|n| *n < s.sems.len());
                let n = n.ok_or(Errno::EINVAL)?;
                let v = match cmd {
                    GETVAL => s.sems[n].val,
                    GETPID => s.sems[n].pid,
                    GETNCNT => s.count(n, false) as i32,
                    _ => s.count(n, true) as i32,
                };
                out(v, None)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// How many semaphores set `id` has (for GETALL/SETALL's buffer size).
    pub fn nsems(&self, id: i32) -> Result<usize, Errno> {
        Ok(self.lock().ids.get(id)?.sems.len())
    }

    /// /proc/sysvipc/sem.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let t = self.lock();
        let mut s = String::from(
            "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n",
        );
        for set in t.ids.iter() {
            let p = &set.perm;
            let _ = writeln!(
                s,
                "{:>10} {:>10}  {:>4o} {:>10} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10}",
                p.key,
                p.id,
                p.mode,
                set.sems.len(),
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                set.otime,
                set.ctime
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::context::TestContext;
    use std::thread::JoinHandle;
    use std::time::Duration;

    fn set(nsems: i32) -> (Arc<SemRegistry>, i32) {
        let reg = Arc::new(SemRegistry::default());
        let limits = IpcLimits::default();
        let id = reg.get(&limits, &Credentials::root(), IPC_PRIVATE, nsems, 0o600).unwrap();
        (reg, id)
    }

    fn ctl(reg: &SemRegistry, id: i32, num: i32, cmd: i32, arg: SemArg<'_>) -> i32 {
        let creds = Credentials::root();
        let caller = Caller { creds: &creds, pid: 1 };
        reg.ctl(&IpcLimits::default(), caller, id, num, cmd, arg).unwrap().value
    }

    fn op(reg: &SemRegistry, id: i32, pid: i32, ops: &[(u16, i16, i16)]) -> Result<(), Errno> {
        let creds = Credentials::root();
        let ops = ops.iter().map(|&(num, op, flags)| SemBuf { num, op, flags }).collect();
        let ctx = TestContext::default();
        reg.op(
            &ctx,
            Caller { creds: &creds, pid },
            id,
            ops,
            Some(Instant::now() + Duration::from_secs(10)),
        )
    }

    /// A semop on its own thread, waiting (GETNCNT counts it) once this returns.
    fn waiter(
        reg: &Arc<SemRegistry>,
        id: i32,
        pid: i32,
        num: u16,
        by: i16,
    ) -> JoinHandle<Result<(), Errno>> {
        let before = ctl(reg, id, i32::from(num), GETNCNT, SemArg::None);
        let r = reg.clone();
        let h = std::thread::spawn(move || op(&r, id, pid, &[(num, -by, 0)]));
        let end = Instant::now() + Duration::from_secs(10);
        while ctl(reg, id, i32::from(num), GETNCNT, SemArg::None) != before + 1 {
            assert!(Instant::now() < end, "the waiter never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
        h
    }

    #[test]
    fn waiters_that_can_run_complete_in_arrival_order() {
        let (reg, id) = set(1);
        let first = waiter(&reg, id, 10, 0, 1);
        let second = waiter(&reg, id, 11, 0, 1);
        op(&reg, id, 1, &[(0, 1, 0)]).unwrap();
        assert_eq!(first.join().unwrap(), Ok(()));
        assert_eq!(ctl(&reg, id, 0, GETNCNT, SemArg::None), 1, "the later one still waits");
        assert_eq!(ctl(&reg, id, 0, GETPID, SemArg::None), 10);
        op(&reg, id, 1, &[(0, 1, 0)]).unwrap();
        assert_eq!(second.join().unwrap(), Ok(()));
        // As on Linux, one that cannot run does not hold back a later one that can.
        let big = waiter(&reg, id, 12, 0, 2);
        let small = waiter(&reg, id, 13, 0, 1);
        op(&reg, id, 1, &[(0, 1, 0)]).unwrap();
        assert_eq!(small.join().unwrap(), Ok(()));
        op(&reg, id, 1, &[(0, 2, 0)]).unwrap();
        assert_eq!(big.join().unwrap(), Ok(()));
        assert_eq!(ctl(&reg, id, 0, GETVAL, SemArg::None), 0);
    }

    #[test]
    fn undo_is_applied_at_exit_within_range() {
        let (reg, id) = set(2);
        op(&reg, id, 5, &[(0, 3, SEM_UNDO), (1, 1, 0)]).unwrap();
        op(&reg, id, 5, &[(1, -1, SEM_UNDO)]).unwrap();
        assert_eq!(
            op(&reg, id, 5, &[(0, -32000, SEM_UNDO | IPC_NOWAIT as i16)]),
            Err(Errno::EAGAIN)
        );
        reg.exit(5);
        assert_eq!(ctl(&reg, id, 0, GETVAL, SemArg::None), 0);
        assert_eq!(ctl(&reg, id, 1, GETVAL, SemArg::None), 1);
        assert_eq!(ctl(&reg, id, 0, GETPID, SemArg::None), 5);
        // Adjustments stay within a short.
        ctl(&reg, id, 0, SETVAL, SemArg::Val(SEMVMX));
        assert_eq!(op(&reg, id, 6, &[(0, -SEMVMX as i16, SEM_UNDO)]), Ok(()));
        assert_eq!(op(&reg, id, 6, &[(0, 1, 0)]), Ok(()));
        assert_eq!(op(&reg, id, 6, &[(0, -1, SEM_UNDO)]), Err(Errno::ERANGE));
    }

    #[test]
    fn removal_wakes_waiters_with_eidrm() {
        let (reg, id) = set(1);
        let w = waiter(&reg, id, 10, 0, 1);
        ctl(&reg, id, 0, IPC_RMID, SemArg::None);
        assert_eq!(w.join().unwrap(), Err(Errno::EIDRM));
        assert_eq!(reg.table.lock().unwrap().undo_entries, 0);
    }
}
