//! Pseudo-terminals: a master side (the terminal emulator, a CRI exec stream, `script`) and a
//! slave side (/dev/pts/N, the program's terminal) joined by a line discipline. A pty is a
//! kernel object: host code can drive the master as a program in the sandbox does.

use crate::sync::{Mutex, MutexGuard};
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

mod control;

use super::ldisc::{Effects, LineDiscipline};
use super::signal_group;
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::{SIG_IGN, SIGCONT, SIGHUP, SIGTTIN, SIGTTOU, SIGWINCH, Signal};
use crate::abi::stat::{O_NOCTTY, S_IFCHR, Stat, Timespec, makedev};
use crate::abi::termios::{ICANON, TOSTOP, VMIN, VTIME, Winsize};
use crate::kernel::Kernel;
use crate::kernel::task::{Task, current, task_of};
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::waiter::{Events, WaitQueue};

/// Output waiting for the master's reader before the slave's writers are held back.
const OUTPUT_MAX: usize = 64 << 10;

/// The device numbers Linux gives the slave of pty `index` (Unix98 ptys, major 136..143).
pub fn slave_rdev(index: u32) -> u64 {
    makedev(136 + index / 256, index % 256)
}

/// The devpts filesystem's device number.
pub fn devpts_dev() -> u64 {
    makedev(0, 22)
}

struct PtyState {
    ldisc: LineDiscipline,
    /// The slave's output (and echo) waiting for the master's reader.
    to_master: VecDeque<u8>,
    winsize: Winsize,
    /// TIOCSPTLCK: the slave cannot be opened until unlocked (unlockpt).
    locked: bool,
    master_open: bool,
    slaves: usize,
    slave_opened: bool,
    /// The session this is the controlling terminal of, and its foreground process group.
    session: Option<i32>,
    foreground: Option<i32>,
    owner: (u32, u32),
}

pub struct Pty {
    index: u32,
    state: Mutex<PtyState>,
    /// Woken on every change either side may wait for.
    queue: Arc<WaitQueue>,
    kernel: Weak<Kernel>,
    /// Run when the pty goes (frees its index).
    on_drop: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            f();
        }
    }
}

/// The caller's process: its id, process group and session.
struct Caller {
    tgid: i32,
    pgid: i32,
    sid: i32,
}

fn caller_of(task: &Task) -> Result<Caller, Errno> {
    let tasks = task.kernel.tasks();
    let p = tasks.proc(task.tgid()).ok_or(Errno::ESRCH)?;
    Ok(Caller { tgid: task.tgid(), pgid: p.pgid, sid: p.sid })
}

impl Pty {
    pub(super) fn new(
        index: u32,
        kernel: Weak<Kernel>,
        owner: (u32, u32),
        on_drop: Box<dyn FnOnce() + Send>,
    ) -> Arc<Pty> {
        Arc::new(Pty {
            index,
            state: Mutex::new(PtyState {
                ldisc: LineDiscipline::default(),
                to_master: VecDeque::new(),
                winsize: Winsize::default(),
                locked: true,
                master_open: true,
                slaves: 0,
                slave_opened: false,
                session: None,
                foreground: None,
                owner,
            }),
            queue: Arc::new(WaitQueue::new()),
            kernel,
            on_drop: Mutex::new(Some(on_drop)),
        })
    }

    #[track_caller]
    fn lock(&self) -> MutexGuard<'_, PtyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// The path of the slave side.
    pub fn slave_path(&self) -> Vec<u8> {
        format!("/dev/pts/{}", self.index).into_bytes()
    }

    /// What stat shows for the slave (its /dev/pts node and open descriptors alike, so that
    /// ttyname can match them).
    pub fn slave_stat(&self) -> Stat {
        let (uid, gid) = self.lock().owner;
        let now = Timespec::now();
        Stat {
            dev: devpts_dev(),
            ino: u64::from(self.index) + 3,
            nlink: 1,
            mode: S_IFCHR | 0o620,
            uid,
            gid,
            rdev: slave_rdev(self.index),
            blksize: 1024,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        }
    }

    /// Lets the slave be opened (unlockpt).
    pub fn unlock(&self) {
        self.lock().locked = false;
    }

    /// Makes this the controlling terminal of session `sid` with `pgid` in the foreground (a
    /// process started by host code with this pty as its stdio).
    pub fn attach_session(&self, sid: i32, pgid: i32) {
        let mut st = self.lock();
        st.session = Some(sid);
        st.foreground = Some(pgid);
    }

    /// The controlling process (session leader) of this terminal's session exited: the
    /// session loses its terminal, whose foreground group gets SIGHUP, as on Linux.
    pub fn controlling_process_exited(&self) {
        let foreground = {
            let mut st = self.lock();
            st.session = None;
            st.foreground.take()
        };
        self.signal_foreground(foreground, &[SIGHUP]);
    }

    /// The session this pty is the controlling terminal of.
    pub fn session(&self) -> Option<i32> {
        self.lock().session
    }

    /// Opens the slave side. A session leader without a controlling terminal that opens one
    /// without O_NOCTTY acquires it, as on Linux.
    pub fn open_slave(self: &Arc<Self>, flags: u32) -> Result<Arc<PtySlave>, Errno> {
        {
            let mut st = self.lock();
            if st.locked || !st.master_open {
                return Err(Errno::EIO);
            }
            st.slaves += 1;
            st.slave_opened = true;
        }
        let slave = Arc::new(PtySlave { pty: self.clone() });
        if flags & O_NOCTTY == 0
            && let Some(task) = current()
            && let Ok(me) = caller_of(&task)
            && me.sid == me.tgid
            && !has_controlling_terminal(&task, me.sid)
        {
            let mut st = self.lock();
            if st.session.is_none() {
                st.session = Some(me.sid);
                st.foreground = Some(me.pgid);
            }
        }
        self.queue.notify_all();
        Ok(slave)
    }

    /// Sends `sig` to the foreground process group (outside the pty's lock).
    fn signal_foreground(&self, foreground: Option<i32>, signals: &[Signal]) {
        if let Some(pg) = foreground {
            for &s in signals {
                signal_group(&self.kernel, pg, s);
            }
        }
    }

    /// Typed input, as the master's writer sends it. Blocks while the input queue is full.
    pub fn write_input(&self, ctx: Option<&dyn Context>, data: &[u8], nonblock: bool) -> SysResult {
        let mut done = 0;
        loop {
            let _reg = ctx.map(|c| self.queue.register(c.waker(), Events::ALL));
            let (fx, fg) = {
                let mut st = self.lock();
                let mut fx = Effects::default();
                done += st.ldisc.receive(&data[done..], &mut fx);
                st.to_master.extend(fx.echo.iter());
                (fx, st.foreground)
            };
            if !fx.echo.is_empty() || done > 0 {
                self.queue.notify_all();
            }
            self.signal_foreground(fg, &fx.signals);
            if done == data.len() {
                return Ok(done as u64);
            }
            if nonblock || ctx.is_none() {
                return if done > 0 { Ok(done as u64) } else { Err(Errno::EAGAIN) };
            }
            if let Some(c) = ctx
                && let Err(e) = c.block(None)
            {
                return if done > 0 { Ok(done as u64) } else { Err(e) };
            }
        }
    }

    /// The terminal's output, as the master's reader takes it. EIO once every slave
    /// descriptor is closed and nothing is left, as Linux reports.
    pub fn read_output(
        &self,
        ctx: Option<&dyn Context>,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, Errno> {
        loop {
            let _reg = ctx.map(|c| self.queue.register(c.waker(), Events::ALL));
            {
                let mut st = self.lock();
                if !st.to_master.is_empty() {
                    let n = buf.len().min(st.to_master.len());
                    for (d, s) in buf.iter_mut().zip(st.to_master.drain(..n)) {
                        *d = s;
                    }
                    drop(st);
                    self.queue.notify_all();
                    return Ok(n);
                }
                if st.slave_opened && st.slaves == 0 {
                    return Err(Errno::EIO);
                }
            }
            match ctx {
                Some(c) if !nonblock => c.block(None)?,
                _ => return Err(Errno::EAGAIN),
            }
        }
    }

    fn master_closed(&self) {
        let (session, fg) = {
            let mut st = self.lock();
            st.master_open = false;
            (st.session.take(), st.foreground.take())
        };
        self.queue.notify_all();
        // A hang-up: the session leader and the foreground group hear of it.
        if let Some(sid) = session {
            signal_group(&self.kernel, sid, SIGHUP);
            signal_group(&self.kernel, sid, SIGCONT);
        }
        if fg != session {
            self.signal_foreground(fg, &[SIGHUP]);
        }
    }

    fn slave_read(
        &self,
        ctx: &dyn Context,
        buf: &mut [u8],
        nonblock: bool,
    ) -> Result<usize, Errno> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.check_background(ctx, SIGTTIN)?;
        let mut deadline: Option<Instant> = None;
        loop {
            let _reg = self.queue.register(ctx.waker(), Events::ALL);
            {
                let mut st = self.lock();
                let t = st.ldisc.termios;
                let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
                if t.lflag(ICANON) {
                    if let Some(data) = st.ldisc.read(buf.len()) {
                        drop(st);
                        return Ok(self.deliver(buf, &data));
                    }
                    if !st.master_open {
                        return Ok(0);
                    }
                } else {
                    // Non-canonical reads wait for VMIN bytes, or VTIME tenths of a second
                    // (from the first byte when VMIN is set, from the start otherwise).
                    let (vmin, vtime) = (usize::from(t.cc[VMIN]), u64::from(t.cc[VTIME]));
                    let queued = st.ldisc.queued();
                    if queued > 0
                        && (queued >= vmin.min(buf.len()) || timed_out)
                        && let Some(data) = st.ldisc.read(buf.len())
                    {
                        drop(st);
                        return Ok(self.deliver(buf, &data));
                    }
                    if !st.master_open || (vmin == 0 && (vtime == 0 || timed_out)) {
                        return Ok(0);
                    }
                    if vtime > 0 && deadline.is_none() && (vmin == 0 || queued > 0) {
                        deadline = Some(Instant::now() + Duration::from_millis(vtime * 100));
                    }
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            match ctx.block(deadline) {
                Ok(()) | Err(Errno::ETIMEDOUT) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies what a slave read took into `buf` and wakes writers held back by a full queue.
    fn deliver(&self, buf: &mut [u8], data: &[u8]) -> usize {
        buf[..data.len()].copy_from_slice(data);
        self.queue.notify_all();
        data.len()
    }

    fn slave_write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        if self.lock().ldisc.termios.lflag(TOSTOP) {
            self.check_background(ctx, SIGTTOU)?;
        }
        let mut done = 0;
        loop {
            let _reg = self.queue.register(ctx.waker(), Events::ALL);
            {
                let mut st = self.lock();
                if !st.master_open {
                    return if done > 0 { Ok(done) } else { Err(Errno::EIO) };
                }
                let room = OUTPUT_MAX.saturating_sub(st.to_master.len());
                if room > 0 {
                    let n = room.min(data.len() - done);
                    let out = st.ldisc.output(&data[done..done + n]);
                    st.to_master.extend(out);
                    done += n;
                    drop(st);
                    self.queue.notify_all();
                    if done == data.len() {
                        return Ok(done);
                    }
                    continue;
                }
            }
            if nonblock {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if let Err(e) = ctx.block(None) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
    }

    fn master_readiness(&self) -> Events {
        let st = self.lock();
        let mut ev = Events::default();
        if !st.to_master.is_empty() {
            ev = ev | Events::IN | Events::RDNORM;
        } else if st.slave_opened && st.slaves == 0 {
            ev = ev | Events::IN | Events::HUP;
        }
        if st.ldisc.room() > 0 {
            ev = ev | Events::OUT | Events::WRNORM;
        }
        ev
    }

    /// Job control: a process of this terminal's session outside its foreground group that
    /// reads it (or changes it, or writes with TOSTOP) sends `sig` to its group and stops
    /// until continued, when the call starts again. Reading with SIGTTIN ignored or blocked
    /// is EIO instead; the other operations just go ahead.
    pub(super) fn check_background(&self, ctx: &dyn Context, sig: Signal) -> Result<(), Errno> {
        let Ok(task) = task_of(ctx) else { return Ok(()) };
        let Ok(me) = caller_of(task) else { return Ok(()) };
        let (session, foreground) = {
            let st = self.lock();
            (st.session, st.foreground)
        };
        if session != Some(me.sid) || foreground.is_none_or(|f| f == me.pgid) {
            return Ok(());
        }
        let ignored =
            task.tg().handlers().lock().unwrap_or_else(|e| e.into_inner()).get(sig).handler
                == SIG_IGN;
        if ignored || task.sig().mask.has(sig) {
            return if sig == SIGTTIN { Err(Errno::EIO) } else { Ok(()) };
        }
        signal_group(&self.kernel, me.pgid, sig);
        Err(Errno::ERESTARTSYS)
    }

    fn slave_readiness(&self) -> Events {
        let st = self.lock();
        if !st.master_open {
            return Events::IN | Events::OUT | Events::HUP;
        }
        let mut ev = Events::default();
        if st.ldisc.readable() {
            ev = ev | Events::IN | Events::RDNORM;
        }
        if st.to_master.len() < OUTPUT_MAX {
            ev = ev | Events::OUT | Events::WRNORM;
        }
        ev
    }

    /// Sets the window size; the foreground group gets SIGWINCH when it changes.
    pub fn set_winsize(&self, ws: Winsize) {
        let (changed, fg) = {
            let mut st = self.lock();
            let changed = st.winsize != ws;
            st.winsize = ws;
            (changed, st.foreground)
        };
        if changed {
            self.signal_foreground(fg, &[SIGWINCH]);
        }
    }
}

fn has_controlling_terminal(task: &Task, sid: i32) -> bool {
    task.kernel.devpts.controlling(sid).is_some()
}

/// The master side of a pty.
pub struct PtyMaster {
    pty: Arc<Pty>,
}

impl PtyMaster {
    pub(super) fn new(pty: Arc<Pty>) -> Arc<PtyMaster> {
        Arc::new(PtyMaster { pty })
    }

    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }

    /// Reads the terminal's output from a host thread (no task to block): waits up to
    /// `timeout` for some; EAGAIN if none came, EIO once the slave side is closed.
    pub fn read_from_host(&self, buf: &mut [u8], timeout: Duration) -> Result<usize, Errno> {
        let deadline = Instant::now() + timeout;
        let waker = crate::waiter::Waker::new();
        loop {
            let _reg = self.pty.queue.register(&waker, Events::ALL);
            match self.pty.read_output(None, buf, true) {
                Err(Errno::EAGAIN) if Instant::now() < deadline => {
                    waker.block(Some(deadline));
                }
                r => return r,
            }
        }
    }

    /// Types `data` from a host thread; takes what fits (EAGAIN when nothing does).
    pub fn write_from_host(&self, data: &[u8]) -> Result<usize, Errno> {
        self.pty.write_input(None, data, true).map(|n| n as usize)
    }

    /// Types `data` from a host thread, waiting up to `timeout` for room when the input
    /// queue is full; EAGAIN if none came.
    pub fn write_from_host_within(&self, data: &[u8], timeout: Duration) -> Result<usize, Errno> {
        let deadline = Instant::now() + timeout;
        let waker = crate::waiter::Waker::new();
        loop {
            let _reg = self.pty.queue.register(&waker, Events::ALL);
            match self.write_from_host(data) {
                Err(Errno::EAGAIN) if Instant::now() < deadline => {
                    waker.block(Some(deadline));
                }
                r => return r,
            }
        }
    }
}

impl Drop for PtyMaster {
    fn drop(&mut self) {
        self.pty.master_closed();
    }
}

impl FileOps for PtyMaster {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        self.pty.read_output(Some(ctx), buf, nonblock)
    }
    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        self.pty.write_input(Some(ctx), data, nonblock).map(|n| n as usize)
    }
    fn readiness(&self) -> Events {
        self.pty.master_readiness()
    }
    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.pty.queue.clone())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        let now = Timespec::now();
        Ok(Stat {
            dev: devpts_dev(),
            ino: 2,
            nlink: 1,
            mode: S_IFCHR | 0o666,
            rdev: makedev(5, 2),
            blksize: 1024,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        })
    }
    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> SysResult {
        self.pty.ioctl(ctx, true, cmd, arg)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One open descriptor of a pty's slave side.
pub struct PtySlave {
    pty: Arc<Pty>,
}

impl PtySlave {
    pub fn pty(&self) -> &Arc<Pty> {
        &self.pty
    }
}

impl Drop for PtySlave {
    fn drop(&mut self) {
        self.pty.lock().slaves -= 1;
        self.pty.queue.notify_all();
    }
}

impl FileOps for PtySlave {
    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        self.pty.slave_read(ctx, buf, nonblock)
    }
    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        self.pty.slave_write(ctx, data, nonblock)
    }
    fn readiness(&self) -> Events {
        self.pty.slave_readiness()
    }
    fn wait_queue(&self) -> Option<Arc<WaitQueue>> {
        Some(self.pty.queue.clone())
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(self.pty.slave_stat())
    }
    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> SysResult {
        self.pty.ioctl(ctx, false, cmd, arg)
    }
    fn reopen(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        Ok(self.pty.open_slave(flags)?)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
