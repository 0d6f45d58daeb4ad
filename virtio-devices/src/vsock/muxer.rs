//! The host side of vsock as Unix sockets, Firecracker's convention: a host program connects
//! to the device's socket and writes `CONNECT <port>\n`, and hears `OK <host port>\n` once the
//! guest accepted; a guest connecting to host port P reaches the socket `<path>_<P>`.
//!
//! The muxer owns every connection and the listener, watches them in its own epoll set, and
//! decides which packet the guest gets next: control packets first, then data from
//! connections with something to read and credit to send it, in turn.

use std::collections::{HashMap, VecDeque};
use std::num::Wrapping;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use vm_memory::VolatileSlice;
use vmm_sys_util::epoll::{EpollEvent, EventSet};

use super::connection::{ConnError, Connection, Read, State};
use super::proto::*;
use crate::poller::Poller;

const LISTENER: u64 = u64::MAX;
/// Tokens of host connections still sending their `CONNECT` line.
const HANDSHAKE: u64 = 1 << 32;
/// Host ports handed to host-initiated connections start here.
const FIRST_HOST_PORT: u32 = 1 << 30;
const MAX_CONNECTIONS: usize = 1024;
const MAX_LINE: usize = 32;

/// The header of a packet for the guest (CIDs are implied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub key: Key,
    pub op: u16,
    pub flags: u32,
    pub len: u32,
    pub fwd_cnt: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MuxerStats {
    pub connections: u64,
    pub refused: u64,
    pub resets: u64,
}

pub struct Muxer {
    path: PathBuf,
    listener: UnixListener,
    poller: Poller,
    conns: HashMap<Key, Connection>,
    by_fd: HashMap<RawFd, Key>,
    handshakes: HashMap<RawFd, UnixStream>,
    control: VecDeque<Control>,
    /// Connections that may have host data for the guest, in turn.
    readable: VecDeque<Key>,
    next_port: u32,
    stats: MuxerStats,
}

fn edge() -> EventSet {
    EventSet::IN | EventSet::OUT | EventSet::READ_HANG_UP | EventSet::EDGE_TRIGGERED
}

impl Muxer {
    pub fn new(path: &Path) -> std::io::Result<Muxer> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let poller = Poller::new()?;
        poller.add(listener.as_raw_fd(), LISTENER)?;
        Ok(Muxer {
            path: path.to_owned(),
            listener,
            poller,
            conns: HashMap::new(),
            by_fd: HashMap::new(),
            handshakes: HashMap::new(),
            control: VecDeque::new(),
            readable: VecDeque::new(),
            next_port: FIRST_HOST_PORT,
            stats: MuxerStats::default(),
        })
    }

    pub fn poll_fd(&self) -> RawFd {
        self.poller.as_raw_fd()
    }

    pub fn stats(&self) -> MuxerStats {
        self.stats
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether there is anything for the guest now.
    pub fn has_work(&self) -> bool {
        !self.control.is_empty() || !self.readable.is_empty()
    }

    fn add(&mut self, key: Key, conn: Connection) -> std::io::Result<()> {
        self.poller.add(conn.fd(), conn.fd() as u64)?;
        self.poller.set(conn.fd(), conn.fd() as u64, edge())?;
        self.by_fd.insert(conn.fd(), key);
        self.conns.insert(key, conn);
        self.stats.connections += 1;
        Ok(())
    }

    fn remove(&mut self, key: Key) {
        if let Some(c) = self.conns.remove(&key) {
            let _ = self.poller.remove(c.fd());
            self.by_fd.remove(&c.fd());
        }
    }

    /// Drops the connection and tells the guest.
    fn reset(&mut self, key: Key) {
        self.remove(key);
        self.stats.resets += 1;
        self.control.push_back(Control { key, op: OP_RST, flags: 0 });
    }

    /// Answers a packet the device will not take with RST.
    pub fn refuse(&mut self, key: Key) {
        self.stats.refused += 1;
        self.control.push_back(Control { key, op: OP_RST, flags: 0 });
    }

    fn mark_readable(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(&key) {
            c.readable = true;
        }
        self.requeue(key);
    }

    /// Puts a connection back in turn if it may have host data and the guest has room for
    /// it. Called whenever either may have changed: any packet from the guest carries new
    /// credit, not only CREDIT_UPDATE.
    fn requeue(&mut self, key: Key) {
        if let Some(c) = self.conns.get_mut(&key)
            && c.readable
            && !c.queued
            && c.state == State::Established
            && c.credit() > 0
        {
            c.queued = true;
            self.readable.push_back(key);
        }
    }

    /// Forgets every connection (the driver reset the device).
    pub fn clear(&mut self) {
        let keys: Vec<Key> = self.conns.keys().copied().collect();
        for k in keys {
            self.remove(k);
        }
        for fd in self.handshakes.keys() {
            let _ = self.poller.remove(*fd);
        }
        self.handshakes.clear();
        self.control.clear();
        self.readable.clear();
    }

    /// Handles whatever the host side has ready.
    pub fn process_events(&mut self) {
        let mut events = [EpollEvent::default(); 32];
        let n = self.poller.ready(&mut events);
        for e in &events[..n] {
            let token = e.data();
            if token == LISTENER {
                self.accept();
            } else if token & HANDSHAKE != 0 {
                self.handshake(token as u32 as RawFd);
            } else if let Some(&key) = self.by_fd.get(&(token as RawFd)) {
                let set = e.event_set();
                if set.intersects(EventSet::OUT) {
                    self.flush(key);
                }
                if set.intersects(EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP) {
                    self.mark_readable(key);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    let fd = s.as_raw_fd();
                    let ok = s.set_nonblocking(true).is_ok()
                        && self.poller.add(fd, HANDSHAKE | fd as u64).is_ok();
                    if ok {
                        self.handshakes.insert(fd, s);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("vsock: accepting on {}: {e}", self.path.display());
                    return;
                }
            }
        }
    }

    /// Reads a host program's `CONNECT <port>\n` (peeking, so that nothing after it is
    /// consumed) and asks the guest for that port.
    fn handshake(&mut self, fd: RawFd) {
        if !self.handshakes.contains_key(&fd) {
            return;
        }
        let mut buf = [0u8; MAX_LINE];
        // SAFETY: peeking into a stack buffer of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock {
            return;
        }
        let seen = &buf[..n.max(0) as usize];
        let Some(end) = seen.iter().position(|&b| b == b'\n') else {
            if n <= 0 || seen.len() == MAX_LINE {
                self.drop_handshake(fd, "closed or sent a line too long");
            }
            return;
        };
        let port = std::str::from_utf8(&seen[..end])
            .ok()
            .and_then(|l| l.trim_end_matches('\r').strip_prefix("CONNECT "))
            .and_then(|p| p.trim().parse::<u32>().ok());
        let Some(port) = port else {
            return self.drop_handshake(fd, "did not send CONNECT <port>");
        };
        // Consume the line itself.
        // SAFETY: reading `end + 1` bytes, already seen, into the same buffer.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), end + 1, 0) };
        let Some(stream) = self.handshakes.remove(&fd) else { return };
        let _ = self.poller.remove(fd);
        if self.conns.len() >= MAX_CONNECTIONS {
            self.stats.refused += 1;
            return;
        }
        let key = Key { local: self.allocate_port(), peer: port };
        if self.add(key, Connection::new(stream, State::HostInit)).is_ok() {
            self.control.push_back(Control { key, op: OP_REQUEST, flags: 0 });
        }
    }

    fn drop_handshake(&mut self, fd: RawFd, why: &str) {
        tracing::debug!("vsock: a host connection {why}");
        let _ = self.poller.remove(fd);
        self.handshakes.remove(&fd);
        self.stats.refused += 1;
    }

    fn allocate_port(&mut self) -> u32 {
        loop {
            let p = self.next_port;
            self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_HOST_PORT);
            if !self.conns.keys().any(|k| k.local == p) {
                return p;
            }
        }
    }

    fn flush(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(&key) else { return };
        match c.flush() {
            Ok(done) => {
                if c.owes_credit_update() {
                    self.control.push_back(Control { key, op: OP_CREDIT_UPDATE, flags: 0 });
                }
                if done && c.peer_shutdown & SHUTDOWN_SEND != 0 {
                    self.finish_peer_shutdown(key);
                }
            }
            Err(e) => {
                tracing::debug!("vsock: {e}");
                self.reset(key);
            }
        }
    }

    /// The guest will send nothing more and everything it sent reached the host.
    fn finish_peer_shutdown(&mut self, key: Key) {
        let Some(c) = self.conns.get(&key) else { return };
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        if c.peer_shutdown & SHUTDOWN_RCV != 0 {
            // Both directions closed: the connection is over.
            self.remove(key);
            self.control.push_back(Control { key, op: OP_RST, flags: 0 });
        }
    }

    /// A packet from the guest (already checked to be a stream packet from the guest's CID to
    /// the host's). `data` is its payload.
    pub fn from_guest(
        &mut self,
        key: Key,
        op: u16,
        flags: u32,
        credit: (u32, u32),
        data: Option<&VolatileSlice>,
    ) {
        if op == OP_REQUEST {
            return self.guest_connects(key, credit);
        }
        self.handle_from_guest(key, op, flags, credit, data);
        self.requeue(key);
    }

    fn handle_from_guest(
        &mut self,
        key: Key,
        op: u16,
        flags: u32,
        credit: (u32, u32),
        data: Option<&VolatileSlice>,
    ) {
        let Some(c) = self.conns.get_mut(&key) else {
            if op != OP_RST {
                self.control.push_back(Control { key, op: OP_RST, flags: 0 });
            }
            return;
        };
        c.update_peer_credit(credit.0, credit.1);
        match (op, c.state) {
            (OP_RESPONSE, State::HostInit) => {
                c.state = State::Established;
                // A fresh socket's buffer takes this short line whole.
                let ok = format!("OK {}\n", key.local);
                let mut s = &c.stream;
                let sent = std::io::Write::write(&mut s, ok.as_bytes());
                if sent.ok() != Some(ok.len()) {
                    self.reset(key);
                }
            }
            (OP_RW, State::Established) => {
                let Some(data) = data else { return };
                if c.peer_shutdown & SHUTDOWN_SEND != 0 {
                    return self.reset(key);
                }
                match c.send_to_host(data) {
                    Ok(()) => {
                        if c.owes_credit_update() {
                            self.control.push_back(Control { key, op: OP_CREDIT_UPDATE, flags: 0 });
                        }
                    }
                    Err(ConnError::Overflow) => {
                        tracing::warn!("vsock: the guest overran its credit on {key:?}");
                        self.reset(key);
                    }
                    Err(e) => {
                        tracing::debug!("vsock: {e}");
                        self.reset(key);
                    }
                }
            }
            // The new credit was taken above; from_guest puts the connection back in turn.
            (OP_CREDIT_UPDATE, State::Established) => {}
            (OP_CREDIT_REQUEST, State::Established) => {
                self.control.push_back(Control { key, op: OP_CREDIT_UPDATE, flags: 0 });
            }
            (OP_SHUTDOWN, _) => {
                c.peer_shutdown |= flags & (SHUTDOWN_RCV | SHUTDOWN_SEND);
                if c.peer_shutdown & SHUTDOWN_SEND != 0 && !c.has_pending() {
                    self.finish_peer_shutdown(key);
                }
            }
            (OP_RST, _) => self.remove(key),
            _ => self.reset(key),
        }
    }

    fn guest_connects(&mut self, key: Key, credit: (u32, u32)) {
        if self.conns.contains_key(&key) || self.conns.len() >= MAX_CONNECTIONS {
            self.stats.refused += 1;
            self.control.push_back(Control { key, op: OP_RST, flags: 0 });
            return;
        }
        let target = format!("{}_{}", self.path.display(), key.local);
        let stream = UnixStream::connect(&target).and_then(|s| s.set_nonblocking(true).map(|()| s));
        match stream {
            Ok(s) => {
                let mut c = Connection::new(s, State::Established);
                c.update_peer_credit(credit.0, credit.1);
                if self.add(key, c).is_ok() {
                    self.control.push_back(Control { key, op: OP_RESPONSE, flags: 0 });
                    return;
                }
                self.control.push_back(Control { key, op: OP_RST, flags: 0 });
            }
            Err(e) => {
                tracing::debug!("vsock: the guest's connection to {target}: {e}");
                self.stats.refused += 1;
                self.control.push_back(Control { key, op: OP_RST, flags: 0 });
            }
        }
    }

    /// The next packet for the guest, its payload (if any) read into `data`.
    pub fn next_for_guest(&mut self, data: Option<&VolatileSlice>) -> Option<Outgoing> {
        if let Some(ctl) = self.control.pop_front() {
            let fwd_cnt = match self.conns.get_mut(&ctl.key) {
                Some(c) => {
                    c.fwd_cnt_sent = c.fwd_cnt;
                    c.fwd_cnt.0
                }
                None => 0,
            };
            return Some(Outgoing { key: ctl.key, op: ctl.op, flags: ctl.flags, len: 0, fwd_cnt });
        }
        let data = data?;
        while let Some(key) = self.readable.pop_front() {
            let Some(c) = self.conns.get_mut(&key) else { continue };
            c.queued = false;
            let credit = c.credit() as usize;
            if c.state != State::Established || credit == 0 || c.peer_shutdown & SHUTDOWN_RCV != 0 {
                continue;
            }
            let room = data.len().min(credit).min(MAX_PAYLOAD as usize);
            let Ok(window) = data.subslice(0, room) else { continue };
            match c.read_from_host(&window) {
                Read::Data(n) => {
                    c.rx_cnt += Wrapping(n as u32);
                    c.fwd_cnt_sent = c.fwd_cnt;
                    let fwd_cnt = c.fwd_cnt.0;
                    // There may be more: take a turn again later.
                    if c.credit() > 0 {
                        c.queued = true;
                        self.readable.push_back(key);
                    }
                    return Some(Outgoing { key, op: OP_RW, flags: 0, len: n as u32, fwd_cnt });
                }
                Read::WouldBlock => c.readable = false,
                Read::Eof => {
                    c.readable = false;
                    if !c.host_eof {
                        c.host_eof = true;
                        let both = SHUTDOWN_RCV | SHUTDOWN_SEND;
                        self.control.push_back(Control { key, op: OP_SHUTDOWN, flags: both });
                        return self.next_for_guest(Some(data));
                    }
                }
            }
        }
        None
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
