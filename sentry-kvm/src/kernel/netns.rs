//! The sandbox's network namespace: host sockets the Sentry opens for the application live in
//! a namespace of the sandbox's own, with only loopback up unless a pod network is attached.

use crate::abi::Errno;

/// Moves the calling thread (and threads it starts afterwards) into a new network namespace
/// with the loopback interface up.
pub fn enter_new() -> Result<(), Errno> {
    // SAFETY: unshare affects only this thread's namespaces.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(Errno::last_host());
    }
    loopback_up()
}

/// Joins the network namespace at `path` (e.g. /var/run/netns/NAME).
pub fn enter_path(path: &std::path::Path) -> Result<(), Errno> {
    let f = std::fs::File::open(path).map_err(|e| Errno::from_io(&e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a namespace descriptor we opened.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(Errno::last_host());
    }
    Ok(())
}

fn loopback_up() -> Result<(), Errno> {
    // SAFETY: a throwaway datagram socket for the interface ioctls; checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(Errno::last_host());
    }
    // SAFETY: zeroed ifreq is valid; the name is NUL-terminated within IFNAMSIZ.
    let r = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        libc::close(s);
        r
    };
    if r != 0 {
        return Err(Errno::last_host());
    }
    Ok(())
}
