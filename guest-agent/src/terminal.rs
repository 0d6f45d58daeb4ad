//! Pseudo-terminals for processes started with `terminal` (a CRI `tty`): the slave becomes
//! the process's stdio and controlling terminal, the agent keeps the master, whose output is
//! the process's stdout and into which its stdin is typed; the host resizes it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A new pty pair: (master, slave).
pub fn open() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the locals; no name, termios or size given.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: F_SETFD on a descriptor we own: the process gets the slave as its stdio
        // only, never the master or a stray copy.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

/// Sets the window size of the terminal of `master` (its foreground group gets SIGWINCH).
pub fn resize(master: &impl AsRawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid local.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In the forked child before exec: a new session whose controlling terminal is the slave
/// already on descriptor 0. Only system calls, so safe between fork and exec.
pub fn take_as_controlling() -> std::io::Result<()> {
    // SAFETY: setsid and ioctl have no memory effects beyond the kernel's.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn a_pair_echoes_typed_lines_and_takes_a_size() {
        let (master, slave) = open().unwrap();
        resize(&master, 33, 101).unwrap();
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one winsize into a valid local.
        assert_eq!(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) }, 0);
        assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
        let mut m = std::fs::File::from(master);
        let mut s = std::fs::File::from(slave);
        m.write_all(b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        // Both are there already: the reads do not block.
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\n");
        let n = m.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\r\n");
    }
}
