//! A device's own epoll set: everything its host side waits on (a tap, sockets, rate-limiter
//! timers) behind one descriptor that the VMM's event loop watches
//! ([`crate::VirtioDevice::backend_fd`]). Sources come and go without the VMM knowing.

use std::os::fd::{AsRawFd, RawFd};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

pub struct Poller {
    epoll: Epoll,
}

impl Poller {
    pub fn new() -> std::io::Result<Poller> {
        Ok(Poller { epoll: Epoll::new()? })
    }

    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> std::io::Result<()> {
        self.epoll.ctl(ControlOperation::Add, fd, EpollEvent::new(EventSet::IN, token))
    }

    /// Watches `fd` for `events` (none: ignored until armed again).
    pub fn set(&self, fd: RawFd, token: u64, events: EventSet) -> std::io::Result<()> {
        self.epoll.ctl(ControlOperation::Modify, fd, EpollEvent::new(events, token))
    }

    pub fn remove(&self, fd: RawFd) -> std::io::Result<()> {
        self.epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default())
    }

    /// Fills `out` with the tokens (and their events) ready now, without waiting; returns
    /// how many.
    pub fn ready(&self, out: &mut [EpollEvent]) -> usize {
        self.epoll.wait(0, out).unwrap_or_else(|e| {
            tracing::warn!("device poller: {e}");
            0
        })
    }
}

impl AsRawFd for Poller {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}
