//! Message queues. Senders wait for room, receivers for a message of the type they select;
//! both wait on the queue's wait queue and re-check after every change. Queued text lives in
//! the Sentry, so besides each queue's msg_qbytes a sandbox-wide ceiling bounds it whatever
//! the sysctls are raised to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::creds::caps::Capability;
use crate::kernel::ipc::limits::IpcLimits;
use crate::kernel::ipc::perm::*;
use crate::kernel::ipc::shm::CtlOut;
use crate::kernel::task::Task;
use crate::waiter::{Events, WaitQueue};

pub const MSG_NOERROR: i32 = 0o10000;
pub const MSG_EXCEPT: i32 = 0o20000;
pub const MSG_COPY: i32 = 0o40000;

pub const MSG_STAT: i32 = 11;
pub const MSG_INFO: i32 = 12;
pub const MSG_STAT_ANY: i32 = 13;

/// Bytes of queued messages in the whole sandbox (text plus a header's worth each).
pub const MAX_QUEUED_BYTES: usize = 64 << 20;
const HEADER_COST: usize = 48;

struct Message {
    mtype: i64,
    text: Vec<u8>,
}

pub struct Queue {
    perm: IpcPerm,
    messages: VecDeque<Message>,
    cbytes: u64,
    qbytes: u64,
    stime: i64,
    rtime: i64,
    ctime: i64,
    lspid: i32,
    lrpid: i32,
    /// Senders wait for OUT, receivers for IN; removal wakes both.
    waiters: Arc<WaitQueue>,
}

impl IpcObject for Queue {
    fn perm(&self) -> &IpcPerm {
        &self.perm
    }
    fn perm_mut(&mut self) -> &mut IpcPerm {
        &mut self.perm
    }
}

impl Queue {
    /// struct msqid64_ds.
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(120);
        b.extend_from_slice(&self.perm.to_bytes());
        for v in [self.stime as u64, self.rtime as u64, self.ctime as u64, self.cbytes] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.messages.len() as u64).to_le_bytes());
        b.extend_from_slice(&self.qbytes.to_le_bytes());
        b.extend_from_slice(&self.lspid.to_le_bytes());
        b.extend_from_slice(&self.lrpid.to_le_bytes());
        b.extend_from_slice(&[0; 16]);
        b
    }

    fn fits(&self, len: u64) -> bool {
        len + self.cbytes <= self.qbytes && (self.messages.len() as u64) < self.qbytes
    }
}

/// Which message msgrcv takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// The first.
    Any,
    /// The first of this type.
    Equal(i64),
    /// The first not of this type (MSG_EXCEPT).
    NotEqual(i64),
    /// The first of the lowest type at most this (a negative msgtyp).
    LessEqual(i64),
    /// The n-th, left in place (MSG_COPY).
    Number(i64),
}

impl Select {
    pub fn of(msgtyp: i64, flags: i32) -> Select {
        if flags & MSG_COPY != 0 {
            Select::Number(msgtyp)
        } else if msgtyp == 0 {
            Select::Any
        } else if msgtyp < 0 {
            Select::LessEqual(msgtyp.checked_neg().unwrap_or(i64::MAX))
        } else if flags & MSG_EXCEPT != 0 {
            Select::NotEqual(msgtyp)
        } else {
            Select::Equal(msgtyp)
        }
    }

    fn find(self, q: &VecDeque<Message>) -> Option<usize> {
        match self {
            Select::Any => (!q.is_empty()).then_some(0),
            Select::Equal(t) => q.iter().position(|m| m.mtype == t),
            Select::NotEqual(t) => q.iter().position(|m| m.mtype != t),
            Select::LessEqual(t) => {
                let mut best: Option<usize> = None;
                for (i, m) in q.iter().enumerate() {
                    if m.mtype <= t && best.is_none_or(|b| m.mtype < q[b].mtype) {
                        best = Some(i);
                    }
                }
                best
            }
            Select::Number(n) => usize::try_from(n).ok().filter(|n| *n < q.len()),
        }
    }
}

#[derive(Default)]
struct MsgTable {
    ids: IdTable<Queue>,
    messages: usize,
    bytes: usize,
}

#[derive(Default)]
pub struct MsgRegistry {
    table: Mutex<MsgTable>,
}

impl MsgRegistry {
    fn lock(&self) -> MutexGuard<'_, MsgTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(
        &self,
        limits: &IpcLimits,
        creds: &Credentials,
        key: i32,
        flags: i32,
    ) -> Result<i32, Errno> {
        let mut t = self.lock();
        t.ids.get_or_create(
            key,
            flags,
            creds,
            |_| Ok(()),
            |ids| {
                let now = now();
                ids.add(limits.msgmni, key, flags, creds, |perm| Queue {
                    perm,
                    messages: VecDeque::new(),
                    cbytes: 0,
                    qbytes: limits.msgmnb.max(0) as u64,
                    stime: 0,
                    rtime: 0,
                    ctime: now,
                    lspid: 0,
                    lrpid: 0,
                    waiters: Arc::new(WaitQueue::new()),
                })
            },
        )
    }

    /// msgsnd: queues `text` with `mtype` (already checked positive), waiting for room
    /// unless IPC_NOWAIT.
    pub fn send(
        &self,
        task: &Task,
        creds: &Credentials,
        id: i32,
        mtype: i64,
        text: Vec<u8>,
        flags: i32,
    ) -> Result<(), Errno> {
        let len = text.len() as u64;
        let cost = text.len() + HEADER_COST;
        let mut registered: Option<(Arc<WaitQueue>, crate::waiter::OwnedRegistration)> = None;
        {
            let t = self.lock();
            t.ids.get(id)?.perm.check(creds, WRITE)?;
        }
        loop {
            {
                let mut t = self.lock();
                let q = t
                    .ids
                    .get(id)
                    .map_err(|_| if registered.is_some() { Errno::EIDRM } else { Errno::EINVAL })?;
                if q.fits(len) {
                    if t.bytes + cost > MAX_QUEUED_BYTES {
                        return Err(Errno::ENOMEM);
                    }
                    t.bytes += cost;
                    t.messages += 1;
                    let q = t.ids.get_mut(id)?;
                    q.messages.push_back(Message { mtype, text });
                    q.cbytes += len;
                    q.lspid = task.tgid();
                    q.stime = now();
                    q.waiters.notify(Events::IN);
                    return Ok(());
                }
                if flags & IPC_NOWAIT != 0 {
                    return Err(Errno::EAGAIN);
                }
                if registered.is_none() {
                    let wq = q.waiters.clone();
                    let reg = wq.register_owned(&task.waker, Events::OUT);
                    registered = Some((wq, reg));
                    continue;
                }
            }
            task.block(None).map_err(|_| Errno::EINTR)?;
        }
    }

    /// msgrcv: takes (or with MSG_COPY copies) the selected message, waiting for one unless
    /// IPC_NOWAIT. Returns its type and text, cut to `max` bytes with MSG_NOERROR.
    pub fn receive(
        &self,
        task: &Task,
        creds: &Credentials,
        id: i32,
        max: usize,
        select: Select,
        flags: i32,
    ) -> Result<(i64, Vec<u8>), Errno> {
        let mut registered: Option<(Arc<WaitQueue>, crate::waiter::OwnedRegistration)> = None;
        {
            let t = self.lock();
            t.ids.get(id)?.perm.check(creds, READ)?;
        }
        loop {
            {
                let mut t = self.lock();
                let q = t
                    .ids
                    .get_mut(id)
                    .map_err(|_| if registered.is_some() { Errno::EIDRM } else { Errno::EINVAL })?;
                if let Some(i) = select.find(&q.messages) {
                    let m = &q.messages[i];
                    if m.text.len() > max && flags & MSG_NOERROR == 0 {
                        return Err(Errno::E2BIG);
                    }
                    if let Select::Number(_) = select {
                        let n = m.text.len().min(max);
                        return Ok((m.mtype, m.text[..n].to_vec()));
                    }
                    let Some(mut m) = q.messages.remove(i) else { return Err(Errno::EIO) };
                    q.cbytes -= m.text.len() as u64;
                    q.lrpid = task.tgid();
                    q.rtime = now();
                    q.waiters.notify(Events::OUT);
                    let cost = m.text.len() + HEADER_COST;
                    t.bytes -= cost;
                    t.messages -= 1;
                    m.text.truncate(max);
                    return Ok((m.mtype, m.text));
                }
                if flags & IPC_NOWAIT != 0 {
                    return Err(Errno::ENOMSG);
                }
                if registered.is_none() {
                    let wq = q.waiters.clone();
                    let reg = wq.register_owned(&task.waker, Events::IN);
                    registered = Some((wq, reg));
                    continue;
                }
            }
            task.block(None).map_err(|_| Errno::EINTR)?;
        }
    }

    pub fn ctl(
        &self,
        limits: &IpcLimits,
        creds: &Credentials,
        id: i32,
        cmd: i32,
        arg: Option<&[u8]>,
    ) -> Result<CtlOut, Errno> {
        let mut t = self.lock();
        let out = |value, data| Ok(CtlOut { value, data });
        match cmd {
            IPC_INFO | MSG_INFO => {
                let (pool, map, tql) = if cmd == MSG_INFO {
                    let clamp = |v: usize| v.min(i32::MAX as usize) as i32;
                    (t.ids.len() as i32, clamp(t.messages), clamp(t.bytes))
                } else {
                    (32000 * 16384 / 1024, 16384, 16384)
                };
                let mut b: Vec<u8> =
                    [pool, map, limits.msgmax, limits.msgmnb, limits.msgmni, 16, tql]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect();
                b.extend_from_slice(&0xffffu16.to_le_bytes());
                b.extend_from_slice(&[0; 2]);
                out(t.ids.max_index(), Some(b))
            }
            MSG_STAT | MSG_STAT_ANY => {
                let q = t.ids.by_index(id)?;
                if cmd == MSG_STAT {
                    q.perm.check(creds, READ)?;
                }
                out(q.perm.id, Some(q.to_bytes()))
            }
            IPC_STAT => {
                let q = t.ids.get(id)?;
                q.perm.check(creds, READ)?;
                out(0, Some(q.to_bytes()))
            }
            IPC_SET => {
                let b = arg.ok_or(Errno::EFAULT)?;
                let qbytes = b
                    .get(88..96)
                    .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
                    .ok_or(Errno::EFAULT)?;
                let q = t.ids.get_mut(id)?;
                q.perm.check_owner(creds)?;
                if qbytes > limits.msgmnb.max(0) as u64 && !creds.has_cap(Capability::SYS_RESOURCE)
                {
                    return Err(Errno::EPERM);
                }
                q.perm.set(&PermArg::parse(b));
                q.qbytes = qbytes;
                q.ctime = now();
                q.waiters.notify_all();
                out(0, None)
            }
            IPC_RMID => {
                t.ids.get(id)?.perm.check_owner(creds)?;
                let Some(q) = t.ids.remove(id) else { return Err(Errno::EINVAL) };
                t.messages -= q.messages.len();
                t.bytes -= q.messages.iter().map(|m| m.text.len() + HEADER_COST).sum::<usize>();
                q.waiters.notify_all();
                out(0, None)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// /proc/sysvipc/msg.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let t = self.lock();
        let mut s = String::from(
            "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n",
        );
        for q in t.ids.iter() {
            let p = &q.perm;
            let _ = writeln!(
                s,
                "{:>10} {:>10}  {:>4o}  {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10}",
                p.key,
                p.id,
                p.mode,
                q.cbytes,
                q.messages.len(),
                q.lspid,
                q.lrpid,
                p.uid,
                p.gid,
                p.cuid,
                p.cgid,
                q.stime,
                q.rtime,
                q.ctime
            );
        }
        s
    }
}
