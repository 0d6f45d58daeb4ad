//! Files backed by host descriptors handed to the sandbox: its stdin, stdout and stderr.

use std::any::Any;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::abi::Errno;
use crate::abi::errno::SysResult;
use crate::abi::stat::{S_IFCHR, S_IFIFO, S_IFREG, S_IFSOCK, Stat, Timespec};
use crate::vfs::context::Context;
use crate::vfs::file::FileOps;
use crate::waiter::Events;

/// How often a blocked read re-checks for signals while the host descriptor stays quiet.
const POLL_SLICE: Duration = Duration::from_millis(20);

pub struct HostFile {
    fd: OwnedFd,
    seekable: bool,
    tty: bool,
    /// What /proc/PID/fd shows for it.
    name: Vec<u8>,
}

impl HostFile {
    pub fn new(fd: OwnedFd) -> Arc<HostFile> {
        // SAFETY: fstat into a zeroed struct on a descriptor we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let ok = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0;
        let seekable = ok && st.st_mode & libc::S_IFMT == libc::S_IFREG;
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(fd.as_raw_fd()) } == 1;
        let name = if ok { link_name(&st) } else { b"anon_inode:[host]".to_vec() };
        Arc::new(HostFile { fd, seekable, tty, name })
    }

    /// The name /proc/PID/fd shows for this descriptor.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    fn poll(&self, events: i16, timeout: Duration) -> i16 {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
        if n > 0 { p.revents } else { 0 }
    }

    fn wait(&self, ctx: &dyn Context, events: i16) -> Result<(), Errno> {
        loop {
            if self.poll(events, POLL_SLICE) != 0 {
                return Ok(());
            }
            if ctx.interrupted() {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }
}

/// The name Linux would show for a host object, without revealing host paths: pipes and
/// sockets by inode, well-known character devices by their /dev name.
fn link_name(st: &libc::stat) -> Vec<u8> {
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let name = match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO => format!("pipe:[{}]", st.st_ino),
        libc::S_IFSOCK => format!("socket:[{}]", st.st_ino),
        libc::S_IFCHR => match (major, minor) {
            (1, 3) => "/dev/null".into(),
            (1, 5) => "/dev/zero".into(),
            (1, 7) => "/dev/full".into(),
            (1, 8) => "/dev/random".into(),
            (1, 9) => "/dev/urandom".into(),
            (5, 0) => "/dev/tty".into(),
            (5, 1) => "/dev/console".into(),
            (136..=143, n) => format!("/dev/pts/{}", (major - 136) * 256 + n),
            (4, n) => format!("/dev/tty{n}"),
            (m, n) => format!("/dev/char/{m}:{n}"),
        },
        // A host file's path is the host's business: shown by identity, as pipes are.
        _ => format!("host-file:[{}]", st.st_ino),
    };
    name.into_bytes()
}

fn host_result(n: isize) -> Result<usize, Errno> {
    if n < 0 { Err(Errno::last_host()) } else { Ok(n as usize) }
}

impl FileOps for HostFile {
    fn seekable(&self) -> bool {
        self.seekable
    }

    // A regular file given as stdio is shared with whoever else writes it (a shell appending
    // to a log): reads and writes go through the host's file position, not the sandbox's.
    fn read_at(&self, _ctx: &dyn Context, buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        // SAFETY: reading into `buf` from our descriptor.
        host_result(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn write_at(&self, _ctx: &dyn Context, data: &[u8], _off: u64) -> Result<usize, Errno> {
        // SAFETY: writing `data` to our descriptor.
        host_result(unsafe { libc::write(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })
    }

    fn seek(&self, offset: i64, whence: u32, _current: u64) -> Option<Result<u64, Errno>> {
        if !self.seekable {
            return None;
        }
        // SAFETY: lseek on our descriptor.
        let r = unsafe { libc::lseek(self.fd.as_raw_fd(), offset, whence as i32) };
        Some(if r < 0 { Err(Errno::last_host()) } else { Ok(r as u64) })
    }

    fn read(&self, ctx: &dyn Context, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if !nonblock {
            self.wait(ctx, libc::POLLIN)?;
        } else if self.poll(libc::POLLIN, Duration::ZERO) == 0 {
            return Err(Errno::EAGAIN);
        }
        // SAFETY: reading into `buf` from our descriptor.
        host_result(unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    fn write(&self, ctx: &dyn Context, data: &[u8], nonblock: bool) -> Result<usize, Errno> {
        let mut done = 0;
        while done < data.len() {
            if nonblock && self.poll(libc::POLLOUT, Duration::ZERO) == 0 {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if !nonblock && let Err(e) = self.wait(ctx, libc::POLLOUT) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            // SAFETY: writing the unwritten tail of `data`.
            let n = unsafe {
                libc::write(self.fd.as_raw_fd(), data[done..].as_ptr().cast(), data.len() - done)
            };
            match host_result(n) {
                Ok(n) => done += n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(Errno::EPIPE) => {
                    ctx.sigpipe();
                    return if done > 0 { Ok(done) } else { Err(Errno::EPIPE) };
                }
                Err(e) => return if done > 0 { Ok(done) } else { Err(e) },
            }
        }
        Ok(done)
    }

    fn readiness(&self) -> Events {
        let r = self.poll(libc::POLLIN | libc::POLLOUT, Duration::ZERO);
        Events(r as u16 as u32)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        // SAFETY: fstat into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) } != 0 {
            return Err(Errno::last_host());
        }
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => S_IFREG,
            libc::S_IFSOCK => S_IFSOCK,
            libc::S_IFCHR => S_IFCHR,
            _ => S_IFIFO,
        };
        let now = Timespec::now();
        Ok(Stat {
            dev: crate::abi::stat::makedev(0, 13),
            ino: st.st_ino,
            nlink: 1,
            mode: kind | (st.st_mode & 0o777),
            rdev: st.st_rdev,
            size: if kind == S_IFREG { st.st_size } else { 0 },
            blksize: 4096,
            atime: now,
            mtime: now,
            ctime: now,
            ..Default::default()
        })
    }

    fn ioctl(&self, ctx: &dyn Context, cmd: u32, arg: u64) -> SysResult {
        const TCGETS: u32 = 0x5401;
        const TCSETS: u32 = 0x5402;
        const TCSETSW: u32 = 0x5403;
        const TCSETSF: u32 = 0x5404;
        const TIOCGWINSZ: u32 = 0x5413;
        const TIOCSWINSZ: u32 = 0x5414;
        const TIOCGPGRP: u32 = 0x540f;
        const TIOCSPGRP: u32 = 0x5410;
        const FIONREAD: u32 = 0x541b;
        if !self.tty && cmd != FIONREAD {
            return Err(Errno::ENOTTY);
        }
        match cmd {
            TCGETS | TIOCGWINSZ | FIONREAD => {
                let size = match cmd {
                    // The kernel's struct termios (36 bytes), not the C library's larger one:
                    // the caller's buffer may hold no more.
                    TCGETS => crate::abi::termios::Termios::SIZE,
                    TIOCGWINSZ => 8,
                    _ => 4,
                };
                let mut buf = vec![0u8; 64];
                // SAFETY: the buffer is larger than what each of these ioctls writes.
                let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd as _, buf.as_mut_ptr()) };
                if r < 0 {
                    return Err(Errno::last_host());
                }
                ctx.copy_out(arg, &buf[..size])?;
                Ok(0)
            }
            TCSETS | TCSETSW | TCSETSF | TIOCSWINSZ => {
                let size = if cmd == TIOCSWINSZ { 8 } else { crate::abi::termios::Termios::SIZE };
                let mut buf = [0u8; 64];
                ctx.copy_in(arg, &mut buf[..size])?;
                // SAFETY: the buffer holds the structure the ioctl reads.
                let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), cmd as _, buf.as_ptr()) };
                if r < 0 {
                    return Err(Errno::last_host());
                }
                Ok(0)
            }
            // Job control on the host terminal is not offered: the sandbox's foreground
            // process group is its own.
            TIOCGPGRP => {
                ctx.copy_out(arg, &ctx.process_group().to_le_bytes())?;
                Ok(0)
            }
            TIOCSPGRP => Ok(0),
            _ => Err(Errno::ENOTTY),
        }
    }

    // The same host object again: the host descriptor is shared (the Sentry may not open
    // host paths); O_TRUNC empties a regular file as a shell's `> /dev/stdout` does on Linux.
    fn reopen(self: Arc<Self>, flags: u32) -> Result<Arc<dyn FileOps>, Errno> {
        if flags & crate::abi::stat::O_TRUNC != 0 && self.seekable {
            // SAFETY: ftruncate on our own descriptor.
            if unsafe { libc::ftruncate(self.fd.as_raw_fd(), 0) } != 0 {
                return Err(Errno::last_host());
            }
        }
        Ok(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
