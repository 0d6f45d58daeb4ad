//! Pseudo-terminals: a master side (the terminal emulator, a CRI exec stream, `script`) and a
//! slave side (/dev/pts/N, the program's terminal) joined by a line discipline. A pty is a
//! kernel object: host code can drive the master as a program in the sandbox does.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::ldisc::{Effects, LineDiscipline};
use super::{ioctl, signal_group};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::{SIGCONT, SIGHUP, SIGWINCH, Signal};
use crate::abi::stat::{O_CLOEXEC, O_NOCTTY, S_IFCHR, Stat, Timespec, makedev};
use crate::abi::termios::{ICANON, Termios, VMIN, VTIME, Winsize};
use crate::kernel::Kernel;
use crate::kernel::task::{Task, current, task_of};
use crate::vfs::context::Context;
use crate::vfs::file::{File, FileOps};
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

    /// The ioctls both sides share (terminal attributes, size, job control), and the master's
    /// own (pty number, lock, peer).
    fn ioctl(self: &Arc<Self>, ctx: &dyn Context, master: bool, cmd: u32, arg: u64) -> SysResult {
        match cmd {
            ioctl::TCGETS => {
                let t = self.lock().ldisc.termios;
                ctx.copy_out(arg, &t.to_bytes())?;
                Ok(0)
            }
            ioctl::TCSETS | ioctl::TCSETSW | ioctl::TCSETSF => {
                let mut b = [0u8; Termios::SIZE];
                ctx.copy_in(arg, &mut b)?;
                {
                    let mut st = self.lock();
                    if cmd == ioctl::TCSETSF {
                        st.ldisc.flush_input();
                    }
                    st.ldisc.set_termios(Termios::from_bytes(&b));
                }
                self.queue.notify_all();
                Ok(0)
            }
            ioctl::TIOCGWINSZ => {
                let ws = self.lock().winsize;
                ctx.copy_out(arg, &ws.to_bytes())?;
                Ok(0)
            }
            ioctl::TIOCSWINSZ => {
                let mut b = [0u8; Winsize::SIZE];
                ctx.copy_in(arg, &mut b)?;
                self.set_winsize(Winsize::from_bytes(&b));
                Ok(0)
            }
            ioctl::FIONREAD => {
                let n = {
                    let st = self.lock();
                    if master { st.to_master.len() } else { st.ldisc.queued() }
                };
                ctx.copy_out(arg, &(n as u32).to_le_bytes())?;
                Ok(0)
            }
            ioctl::TIOCOUTQ => {
                let n = if master { 0 } else { self.lock().to_master.len() };
                ctx.copy_out(arg, &(n as u32).to_le_bytes())?;
                Ok(0)
            }
            ioctl::TCFLSH => {
                let mut st = self.lock();
                match arg {
                    0 => st.ldisc.flush_input(),
                    1 => st.to_master.clear(),
                    2 => {
                        st.ldisc.flush_input();
                        st.to_master.clear();
                    }
                    _ => return Err(Errno::EINVAL),
                }
                drop(st);
                self.queue.notify_all();
                Ok(0)
            }
            ioctl::TCSBRK | ioctl::TCXONC | ioctl::TIOCEXCL | ioctl::TIOCNXCL => Ok(0),
            ioctl::TIOCGPTN if master => {
                ctx.copy_out(arg, &self.index.to_le_bytes())?;
                Ok(0)
            }
            ioctl::TIOCSPTLCK if master => {
                let mut b = [0u8; 4];
                ctx.copy_in(arg, &mut b)?;
                self.lock().locked = i32::from_le_bytes(b) != 0;
                Ok(0)
            }
            ioctl::TIOCGPTLCK if master => {
                let locked = i32::from(self.lock().locked);
                ctx.copy_out(arg, &locked.to_le_bytes())?;
                Ok(0)
            }
            ioctl::TIOCGPTPEER if master => {
                let task = task_of(ctx)?;
                let flags = arg as u32;
                let slave = self.open_slave(flags | O_NOCTTY)?;
                let file =
                    File::new(slave, flags & !(O_NOCTTY | O_CLOEXEC), None, self.slave_path());
                let fd =
                    task.files().install(file, flags & O_CLOEXEC != 0, 0, task.tg().rlimit(7).0)?;
                Ok(fd as u64)
            }
            ioctl::TIOCSCTTY => self.set_controlling(task_of(ctx)?, arg == 1),
            ioctl::TIOCNOTTY if !master => {
                let me = caller_of(task_of(ctx)?)?;
                let fg = {
                    let mut st = self.lock();
                    if st.session != Some(me.sid) {
                        return Err(Errno::ENOTTY);
                    }
                    if me.sid != me.tgid {
                        return Ok(0);
                    }
                    st.session = None;
                    st.foreground.take()
                };
                self.signal_foreground(fg, &[SIGHUP, SIGCONT]);
                Ok(0)
            }
            ioctl::TIOCGPGRP => {
                let me = if master { None } else { Some(caller_of(task_of(ctx)?)?) };
                let (session, foreground) = {
                    let st = self.lock();
                    (st.session, st.foreground)
                };
                if let Some(me) = me
                    && session != Some(me.sid)
                {
                    return Err(Errno::ENOTTY);
                }
                let pg = foreground.unwrap_or(0);
                ctx.copy_out(arg, &pg.to_le_bytes())?;
                Ok(0)
            }
            ioctl::TIOCSPGRP => {
                let task = task_of(ctx)?;
                let me = caller_of(task)?;
                let mut b = [0u8; 4];
                ctx.copy_in(arg, &mut b)?;
                let pgrp = i32::from_le_bytes(b);
                if pgrp < 0 {
                    return Err(Errno::EINVAL);
                }
                if self.lock().session != Some(me.sid) {
                    return Err(Errno::ENOTTY);
                }
                if !task.kernel.tasks().group_in_session(pgrp, me.sid) {
                    return Err(Errno::EPERM);
                }
                self.lock().foreground = Some(pgrp);
                Ok(0)
            }
            ioctl::TIOCGSID => {
                let sid = self.lock().session.ok_or(Errno::ENOTTY)?;
                ctx.copy_out(arg, &sid.to_le_bytes())?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// TIOCSCTTY: makes this the caller's session's controlling terminal. `steal` takes it
    /// from another session (root only).
    fn set_controlling(&self, task: &Task, steal: bool) -> SysResult {
        let me = caller_of(task)?;
        if me.sid != me.tgid {
            return Err(Errno::EPERM);
        }
        if self.lock().session == Some(me.sid) {
            return Ok(0);
        }
        if has_controlling_terminal(task, me.sid) {
            return Err(Errno::EPERM);
        }
        let mut st = self.lock();
        if st.session.is_some() && !(steal && task.creds().euid == 0) {
            return Err(Errno::EPERM);
        }
        st.session = Some(me.sid);
        st.foreground = Some(me.pgid);
        Ok(0)
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
