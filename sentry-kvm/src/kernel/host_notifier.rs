//! Readiness of host descriptors (the sockets the Sentry makes in the sandbox's network
//! namespace) delivered to wait queues, as gVisor's fdnotifier does: one host epoll instance
//! and a thread blocked on it, so that the workload's poll, select and epoll_wait wake the
//! moment a host socket becomes ready instead of re-checking on a timer.

use crate::sync::Mutex;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock, Weak};

use crate::waiter::{Events, WaitQueue};

struct Notifier {
    epoll: OwnedFd,
    queues: Mutex<HashMap<RawFd, Weak<WaitQueue>>>,
}

/// The process's notifier, started on first use (none if the host refuses an epoll
/// instance or a thread: waiters then fall back to re-checking on a timer).
fn notifier() -> Option<&'static Notifier> {
    static N: OnceLock<Option<Notifier>> = OnceLock::new();
    N.get_or_init(|| {
        // SAFETY: plain epoll_create1; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            tracing::warn!("host readiness notifier: {}", std::io::Error::last_os_error());
            return None;
        }
        // SAFETY: just created and owned here.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Some(Notifier { epoll, queues: Mutex::new(HashMap::new()) })
    })
    .as_ref()
    .filter(|n| start_thread(n))
}

/// Starts the thread that delivers events (once).
fn start_thread(n: &'static Notifier) -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    *STARTED.get_or_init(|| {
        let spawned =
            std::thread::Builder::new().name("host-notifier".into()).spawn(move || deliver(n));
        match spawned {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("host readiness notifier thread: {e}");
                false
            }
        }
    })
}

fn deliver(n: &Notifier) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    loop {
        // SAFETY: `events` has room for the 64 entries asked for.
        let got = unsafe {
            libc::epoll_wait(n.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1)
        };
        if got < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            tracing::warn!("host readiness notifier: {}", std::io::Error::last_os_error());
            return;
        }
        let queues = n.queues.lock().unwrap_or_else(|e| e.into_inner());
        for e in &events[..got as usize] {
            let (fd, ready) = (e.u64 as RawFd, e.events);
            if let Some(q) = queues.get(&fd).and_then(Weak::upgrade) {
                q.notify(Events(ready));
            }
        }
    }
}

/// Has `queue` notified whenever host descriptor `fd` becomes readable, writable or hung
/// up. False when there is no notifier (the caller then polls).
pub fn watch(fd: RawFd, queue: &Arc<WaitQueue>) -> bool {
    let Some(n) = notifier() else { return false };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: fd as u64,
    };
    let mut queues = n.queues.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: `ev` is a valid event; `fd` is open (owned by the caller).
    let r = unsafe { libc::epoll_ctl(n.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if r != 0 {
        return false;
    }
    queues.insert(fd, Arc::downgrade(queue));
    true
}

/// Stops watching `fd`; call before closing it (its number may be reused at once).
pub fn unwatch(fd: RawFd) {
    let Some(n) = notifier() else { return };
    let mut queues = n.queues.lock().unwrap_or_else(|e| e.into_inner());
    if queues.remove(&fd).is_some() {
        // SAFETY: removing a descriptor this module added; a null event is allowed for DEL.
        unsafe {
            libc::epoll_ctl(n.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::Waker;
    use std::time::{Duration, Instant};

    #[test]
    fn a_host_socket_becoming_readable_wakes_its_waiter_at_once() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the pair.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: just created.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let queue = Arc::new(WaitQueue::new());
        assert!(watch(a.as_raw_fd(), &queue));
        let waker = Waker::new();
        let _reg = queue.register_owned(&waker, Events::IN);
        // Writable at once is an edge already reported: take it.
        waker.block(Some(Instant::now() + Duration::from_millis(50)));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: one byte from a valid buffer to an open socket.
            unsafe { libc::write(b.as_raw_fd(), b"x".as_ptr().cast(), 1) };
            b
        });
        let start = Instant::now();
        let woken = waker.block(Some(start + Duration::from_secs(5)));
        assert_eq!(woken, crate::waiter::Woken::Notified);
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
        unwatch(a.as_raw_fd());
        drop(writer.join());
    }
}
