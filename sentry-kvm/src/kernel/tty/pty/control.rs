//! Terminal control, the ioctls both sides of a pty share (attributes, window size, job
//! control: controlling terminal, foreground process group, session) and the master's own
//! (pty number, lock, opening the peer).

use std::sync::Arc;

use super::{Pty, caller_of, has_controlling_terminal};
use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::signal::{SIGCONT, SIGHUP, SIGTTOU};
use crate::abi::stat::{O_CLOEXEC, O_NOCTTY};
use crate::abi::termios::{Termios, Winsize};
use crate::kernel::task::{Task, task_of};
use crate::kernel::tty::ioctl;
use crate::vfs::context::Context;
use crate::vfs::file::File;

impl Pty {
    /// The ioctls both sides share (terminal attributes, size, job control), and the master's
    /// own (pty number, lock, peer).
    pub(super) fn ioctl(
        self: &Arc<Self>,
        ctx: &dyn Context,
        master: bool,
        cmd: u32,
        arg: u64,
    ) -> SysResult {
        // Changing the terminal from a background job stops it first (SIGTTOU).
        let changes = matches!(
            cmd,
            ioctl::TCSETS | ioctl::TCSETSW | ioctl::TCSETSF | ioctl::TCFLSH | ioctl::TIOCSPGRP
        );
        if !master && changes {
            self.check_background(ctx, SIGTTOU)?;
        }
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
                let pg = task_of(ctx).map_or(pg, |t| t.pid_seen(pg));
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
                // A group the caller cannot name is in none of its sessions.
                let pgrp = task.pid_global(pgrp).ok_or(Errno::EPERM)?;
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
                let sid = task_of(ctx).map_or(sid, |t| t.pid_seen(sid));
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
