//! Message queues. Senders wait for room on the queue's wait queue; receivers wait in line,
//! and a sender hands its message straight to the first waiting receiver that selects it (one
//! whose buffer is too small gets E2BIG instead), so receivers are served in arrival order.
//! Queued text lives in the Sentry, so besides each queue's msg_qbytes a sandbox-wide ceiling
//! bounds it whatever the sysctls are raised to.

use crate::sync::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::abi::Errno;
use crate::creds::Credentials;
use crate::creds::caps::Capability;
use crate::kernel::ipc::limits::IpcLimits;
use crate::kernel::ipc::perm::*;
use crate::vfs::context::Context;
use crate::waiter::{Events, WaitQueue, Waker};

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

/// A msgrcv waiting for a message.
struct Receiver {
    select: Select,
    /// Longest text it takes (unbounded with MSG_NOERROR: it cuts longer ones itself).
    max: usize,
    pid: i32,
    outcome: Mutex<Option<Result<Message, Errno>>>,
    waker: Arc<Waker>,
}

impl Receiver {
    fn finish(&self, r: Result<Message, Errno>) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        self.waker.wake();
    }

    fn take(&self) -> Option<Result<Message, Errno>> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
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
    /// Receivers waiting, earliest first.
    receivers: Vec<Arc<Receiver>>,
    /// Senders waiting for room.
    senders: Arc<WaitQueue>,
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

    /// Whether a waiting receiver takes `m` (MSG_COPY never waits).
    fn matches(self, m: &Message) -> bool {
        match self {
            Select::Any => true,
            Select::Equal(t) => m.mtype == t,
            Select::NotEqual(t) => m.mtype != t,
            Select::LessEqual(t) => m.mtype <= t,
            Select::Number(_) => false,
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
    #[track_caller]
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
                    receivers: Vec::new(),
                    senders: Arc::new(WaitQueue::new()),
                })
            },
        )
    }

    /// msgsnd: hands `text` with `mtype` (already checked positive) to the first waiting
    /// receiver that selects it, or queues it, waiting for room unless IPC_NOWAIT.
    pub fn send(
        &self,
        ctx: &dyn Context,
        caller: Caller<'_>,
        id: i32,
        mtype: i64,
        text: Vec<u8>,
        flags: i32,
    ) -> Result<(), Errno> {
        let len = text.len() as u64;
        let mut message = Some(Message { mtype, text });
        let mut registered: Option<crate::waiter::OwnedRegistration> = None;
        loop {
            {
                let mut t = self.lock();
                let gone = if registered.is_some() { Errno::EIDRM } else { Errno::EINVAL };
                let q = t.ids.get_mut(id).map_err(|_| gone)?;
                q.perm.check(caller.creds, WRITE)?;
                if q.fits(len) {
                    let now = now();
                    q.lspid = caller.pid;
                    q.stime = now;
                    let m = message.take().ok_or(Errno::EIO)?;
                    let mut i = 0;
                    while i < q.receivers.len() {
                        if !q.receivers[i].select.matches(&m) {
                            i += 1;
                            continue;
                        }
                        let r = q.receivers.remove(i);
                        if m.text.len() > r.max {
                            r.finish(Err(Errno::E2BIG));
                            continue;
                        }
                        q.lrpid = r.pid;
                        q.rtime = now;
                        r.finish(Ok(m));
                        return Ok(());
                    }
                    let cost = m.text.len() + HEADER_COST;
                    if t.bytes + cost > MAX_QUEUED_BYTES {
                        return Err(Errno::ENOMEM);
                    }
                    t.bytes += cost;
                    t.messages += 1;
                    let q = t.ids.get_mut(id)?;
                    q.cbytes += len;
                    q.messages.push_back(m);
                    return Ok(());
                }
                if flags & IPC_NOWAIT != 0 {
                    return Err(Errno::EAGAIN);
                }
                if registered.is_none() {
                    registered = Some(q.senders.register_owned(ctx.waker(), Events::OUT));
                    continue;
                }
            }
            ctx.block(None).map_err(|_| Errno::EINTR)?;
        }
    }

    /// msgrcv: takes (or with MSG_COPY copies) the selected message, waiting in line for one
    /// unless IPC_NOWAIT. Returns its type and text, cut to `max` bytes with MSG_NOERROR.
    pub fn receive(
        &self,
        ctx: &dyn Context,
        caller: Caller<'_>,
        id: i32,
        max: usize,
        select: Select,
        flags: i32,
    ) -> Result<(i64, Vec<u8>), Errno> {
        let mut waited = false;
        loop {
            let receiver = {
                let mut t = self.lock();
                let gone = if waited { Errno::EIDRM } else { Errno::EINVAL };
                let q = t.ids.get_mut(id).map_err(|_| gone)?;
                q.perm.check(caller.creds, READ)?;
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
                    q.lrpid = caller.pid;
                    q.rtime = now();
                    q.senders.notify(Events::OUT);
                    t.bytes -= m.text.len() + HEADER_COST;
                    t.messages -= 1;
                    m.text.truncate(max);
                    return Ok((m.mtype, m.text));
                }
                if flags & IPC_NOWAIT != 0 {
                    return Err(Errno::ENOMSG);
                }
                let r = Arc::new(Receiver {
                    select,
                    max: if flags & MSG_NOERROR != 0 { usize::MAX } else { max },
                    pid: caller.pid,
                    outcome: Mutex::new(None),
                    waker: ctx.waker().clone(),
                });
                q.receivers.push(r.clone());
                r
            };
            waited = true;
            let outcome = loop {
                if let Some(o) = receiver.take() {
                    break o;
                }
                if ctx.block(None).is_err() {
                    let mut t = self.lock();
                    if let Some(o) = receiver.take() {
                        break o;
                    }
                    if let Ok(q) = t.ids.get_mut(id) {
                        q.receivers.retain(|r| !Arc::ptr_eq(r, &receiver));
                    }
                    return Err(Errno::EINTR);
                }
            };
            match outcome {
                Ok(mut m) => {
                    m.text.truncate(max);
                    return Ok((m.mtype, m.text));
                }
                // The queue's permissions changed: look again.
                Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receivers waiting on queue `id` (for tests that need a receiver in line first).
    #[cfg(test)]
    fn receivers(&self, id: i32) -> usize {
        self.lock().ids.get(id).map_or(0, |q| q.receivers.len())
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
                    let text: u64 = t.ids.iter().map(|q| q.cbytes).sum();
                    (t.ids.len() as i32, clamp(t.messages), clamp(text as usize))
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
            IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
                let by = match cmd {
                    IPC_STAT => StatBy::Id,
                    MSG_STAT => StatBy::Index,
                    _ => StatBy::IndexAny,
                };
                let (q, value) = t.ids.stat(creds, id, by)?;
                out(value, Some(q.to_bytes()))
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
                // Receivers look again under the new permissions; senders may have room.
                for r in q.receivers.drain(..) {
                    r.finish(Err(Errno::EAGAIN));
                }
                q.senders.notify_all();
                out(0, None)
            }
            IPC_RMID => {
                t.ids.get(id)?.perm.check_owner(creds)?;
                let Some(q) = t.ids.remove(id) else { return Err(Errno::EINVAL) };
                t.messages -= q.messages.len();
                t.bytes -= q.messages.iter().map(|m| m.text.len() + HEADER_COST).sum::<usize>();
                for r in &q.receivers {
                    r.finish(Err(Errno::EIDRM));
                }
                q.senders.notify_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::context::TestContext;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    type Received = Result<(i64, Vec<u8>), Errno>;

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn queue() -> (Arc<MsgRegistry>, i32) {
        let reg = Arc::new(MsgRegistry::default());
        let id = reg.get(&IpcLimits::default(), &Credentials::root(), IPC_PRIVATE, 0o600).unwrap();
        (reg, id)
    }

    /// A receiver on its own thread, in line once this returns.
    fn receiver(
        reg: &Arc<MsgRegistry>,
        id: i32,
        max: usize,
        select: Select,
        flags: i32,
        ctx: TestContext,
    ) -> JoinHandle<Received> {
        let before = reg.receivers(id);
        let r = reg.clone();
        let h = std::thread::spawn(move || {
            let creds = Credentials::root();
            r.receive(&ctx, Caller { creds: &creds, pid: 7 }, id, max, select, flags)
        });
        wait_until("the receiver to wait", || reg.receivers(id) == before + 1);
        h
    }

    fn send(reg: &MsgRegistry, id: i32, mtype: i64, text: &[u8]) {
        let creds = Credentials::root();
        let caller = Caller { creds: &creds, pid: 9 };
        reg.send(&TestContext::default(), caller, id, mtype, text.to_vec(), 0).unwrap();
    }

    #[test]
    fn waiting_receivers_are_served_in_arrival_order() {
        let (reg, id) = queue();
        let a = receiver(&reg, id, 64, Select::Any, 0, TestContext::default());
        let b = receiver(&reg, id, 64, Select::Any, 0, TestContext::default());
        send(&reg, id, 1, b"first");
        send(&reg, id, 2, b"second");
        assert_eq!(a.join().unwrap(), Ok((1, b"first".to_vec())));
        assert_eq!(b.join().unwrap(), Ok((2, b"second".to_vec())));
        let stat = reg.ctl(&IpcLimits::default(), &Credentials::root(), id, IPC_STAT, None);
        let data = stat.unwrap().data.unwrap();
        assert_eq!(&data[80..88], &0u64.to_le_bytes(), "handed over, never queued");
    }

    #[test]
    fn a_receiver_whose_buffer_is_too_small_gets_e2big_and_the_message_moves_on() {
        let (reg, id) = queue();
        let small = receiver(&reg, id, 2, Select::Any, 0, TestContext::default());
        let fives = receiver(&reg, id, 64, Select::Equal(5), 0, TestContext::default());
        let cuts = receiver(&reg, id, 2, Select::LessEqual(3), MSG_NOERROR, TestContext::default());
        send(&reg, id, 5, b"hello");
        assert_eq!(small.join().unwrap(), Err(Errno::E2BIG));
        assert_eq!(fives.join().unwrap(), Ok((5, b"hello".to_vec())));
        assert_eq!(reg.receivers(id), 1);
        send(&reg, id, 3, b"xyz");
        assert_eq!(cuts.join().unwrap(), Ok((3, b"xy".to_vec())));
    }

    #[test]
    fn removal_and_signals_end_a_wait() {
        let (reg, id) = queue();
        let ctx = TestContext::default();
        let waker = ctx.0.clone();
        let interrupted = receiver(&reg, id, 64, Select::Any, 0, ctx);
        waker.set_interrupt(true);
        assert_eq!(interrupted.join().unwrap(), Err(Errno::EINTR));
        assert_eq!(reg.receivers(id), 0, "an interrupted receiver leaves the line");
        let removed = receiver(&reg, id, 64, Select::Any, 0, TestContext::default());
        reg.ctl(&IpcLimits::default(), &Credentials::root(), id, IPC_RMID, None).unwrap();
        assert_eq!(removed.join().unwrap(), Err(Errno::EIDRM));
    }
}
