//! The virtio-net device: a receive and a transmit queue over a tap, offloads negotiated with
//! the tap, frames moved between the tap and guest memory without copies or allocations.
//! Received frames may span several receive chains (mergeable buffers): the driver then posts
//! one small buffer per descriptor instead of chains of pages sized for the largest frame.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use virtio_bindings::bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF,
};
use virtio_queue::QueueOwnedT;
use vmm_sys_util::epoll::{EpollEvent, EventSet};

use super::tap::{Tap, TapError, VNET_HDR_LEN};
use crate::active::Active;
use crate::iov;
use crate::poller::Poller;
use crate::queue::{self, Buffer};
use crate::rate_limiter::{RateLimiter, RateLimiterConfig, RateLimiterError};
use crate::{ActivateError, GuestMem, Interrupt, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice};

const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZES: &[u16] = &[256, 256];
/// Linux uses at most MAX_SKB_FRAGS + 2 descriptors per frame.
const MAX_BUFFERS: usize = 64;
/// The header and the largest GSO frame.
const MAX_TX_FRAME: u64 = VNET_HDR_LEN as u64 + 65_550;
/// The header and the largest frame without receive offloads: a 9000-byte MTU, Ethernet and
/// VLAN headers.
const MAX_PLAIN_FRAME: u64 = VNET_HDR_LEN as u64 + 9_018;
/// Where a received frame's header says over how many chains it was spread.
const NUM_BUFFERS_OFFSET: u64 = 10;
const TAP: u64 = 0;
const RX_TIMER: u64 = 1;
const TX_TIMER: u64 = 2;

#[derive(Debug, Clone, Default)]
pub struct NetConfig {
    /// The host tap (created if missing and allowed).
    pub tap: String,
    /// The guest's MAC address; a random locally administered one if absent.
    pub mac: Option<[u8; 6]>,
    pub rx_rate_limiter: Option<RateLimiterConfig>,
    pub tx_rate_limiter: Option<RateLimiterConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Tap(#[from] TapError),
    #[error(transparent)]
    RateLimiter(#[from] RateLimiterError),
    #[error("the device's poller: {0}")]
    Poller(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub refused: u64,
    pub throttled: u64,
}

pub struct Net {
    tap: Tap,
    mac: [u8; 6],
    offered: u64,
    acked: u64,
    poller: Poller,
    tap_armed: bool,
    rx_limiter: Option<RateLimiter>,
    tx_limiter: Option<RateLimiter>,
    active: Option<Active>,
    bufs: Vec<Buffer>,
    /// Mergeable receive: the chains popped for the next frame (head, capacity), in order,
    /// their buffers back to back in `rx_bufs`.
    rx_chains: Vec<(u16, u64)>,
    rx_bufs: Vec<Buffer>,
    stats: NetStats,
}

fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: getrandom writes at most 6 bytes into `mac`.
    unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
    mac
}

impl Net {
    pub fn new(cfg: &NetConfig) -> Result<Net, NetError> {
        Net::with_tap(Tap::open(&cfg.tap)?, cfg)
    }

    /// A device on `tap` (opened already, or a [`Tap::socket_pair`]); `cfg.tap` is unused.
    pub fn with_tap(tap: Tap, cfg: &NetConfig) -> Result<Net, NetError> {
        let mut offered = VIRTIO_F_VERSION_1
            | 1 << VIRTIO_NET_F_MAC
            | 1 << VIRTIO_NET_F_CSUM
            | 1 << VIRTIO_NET_F_HOST_TSO4
            | 1 << VIRTIO_NET_F_HOST_TSO6
            | 1 << VIRTIO_NET_F_MRG_RXBUF;
        // The guest may take checksum and TSO offloads only if the tap can hand them over.
        if tap.set_offload(libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6).is_ok() {
            offered |= 1 << VIRTIO_NET_F_GUEST_CSUM
                | 1 << VIRTIO_NET_F_GUEST_TSO4
                | 1 << VIRTIO_NET_F_GUEST_TSO6;
        }
        // Until the driver says what it takes (not possible on a socket pair).
        let _ = tap.set_offload(0);
        let poller = Poller::new()?;
        // Disarmed until the driver is ready to receive.
        poller.add(tap.as_raw_fd(), TAP)?;
        poller.set(tap.as_raw_fd(), TAP, EventSet::empty())?;
        let rx_limiter = cfg.rx_rate_limiter.as_ref().map(RateLimiter::new).transpose()?;
        let tx_limiter = cfg.tx_rate_limiter.as_ref().map(RateLimiter::new).transpose()?;
        for (l, token) in [(&rx_limiter, RX_TIMER), (&tx_limiter, TX_TIMER)] {
            if let Some(l) = l {
                poller.add(l.timer_fd(), token)?;
            }
        }
        Ok(Net {
            tap,
            mac: cfg.mac.unwrap_or_else(random_mac),
            offered,
            acked: 0,
            poller,
            tap_armed: false,
            rx_limiter,
            tx_limiter,
            active: None,
            bufs: Vec::with_capacity(MAX_BUFFERS),
            rx_chains: Vec::new(),
            rx_bufs: Vec::new(),
            stats: NetStats::default(),
        })
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn arm_tap(&mut self, on: bool) {
        if self.tap_armed == on {
            return;
        }
        let events = if on { EventSet::IN } else { EventSet::empty() };
        match self.poller.set(self.tap.as_raw_fd(), TAP, events) {
            Ok(()) => self.tap_armed = on,
            Err(e) => tracing::warn!("virtio-net: watching the tap: {e}"),
        }
    }

    /// Moves frames from the tap into receive buffers until either runs out.
    pub fn process_rx(&mut self) {
        if self.acked & (1 << VIRTIO_NET_F_MRG_RXBUF) != 0 {
            return self.process_rx_mergeable();
        }
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[RX];
        let mut iovs =
            [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; iov::MAX_IOVECS];
        let mut completed = false;
        let mut want_tap = false;
        loop {
            if self.rx_limiter.as_ref().is_some_and(RateLimiter::is_blocked) {
                break;
            }
            // No buffers: wait for the driver to add some (it notifies the queue).
            let Some(chain) = queue::pop(q, mem) else { break };
            let head = chain.head_index();
            let capacity = receive_capacity(chain, mem, &mut self.bufs);
            let Some(total) = capacity.filter(|&c| c >= VNET_HDR_LEN as u64) else {
                self.stats.refused += 1;
                queue::complete(q, mem, head, 0);
                completed = true;
                continue;
            };
            let read = iov::iovecs(mem, self.bufs.iter(), 0, total, &mut iovs)
                .and_then(|n| self.tap.read_frame(&iovs[..n]));
            match read {
                Ok(Some(len)) => {
                    // Without mergeable buffers a frame is always in one chain.
                    let one = 1u16.to_le_bytes();
                    if let Err(e) =
                        iov::write_bytes(mem, self.bufs.iter(), NUM_BUFFERS_OFFSET, &one)
                    {
                        tracing::warn!("virtio-net: {e}");
                    }
                    queue::complete(q, mem, head, len as u32);
                    completed = true;
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += len as u64;
                    if let Some(l) = &mut self.rx_limiter {
                        l.charge(len as u64);
                    }
                }
                Ok(None) => {
                    q.go_to_previous_position();
                    want_tap = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!("virtio-net: reading the tap: {e}");
                    q.go_to_previous_position();
                    want_tap = true;
                    break;
                }
            }
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
        self.arm_tap(want_tap);
    }

    /// The largest frame (with its header) the tap may hand over, given the offloads acked.
    fn max_rx_frame(&self) -> u64 {
        let gso = 1 << VIRTIO_NET_F_GUEST_TSO4 | 1 << VIRTIO_NET_F_GUEST_TSO6;
        if self.acked & gso != 0 { MAX_TX_FRAME } else { MAX_PLAIN_FRAME }
    }

    /// [`Self::process_rx`] with mergeable buffers: chains are popped until they can hold the
    /// largest frame, the frame is read across them, and the chains it did not reach go back
    /// to the ring. Fewer buffers than a largest frame needs: wait for the driver to add some.
    fn process_rx_mergeable(&mut self) {
        let need = self.max_rx_frame();
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[RX];
        let mut iovs =
            [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; iov::MAX_IOVECS];
        let mut completed = false;
        let mut want_tap = false;
        'frames: loop {
            if self.rx_limiter.as_ref().is_some_and(RateLimiter::is_blocked) {
                break;
            }
            self.rx_chains.clear();
            self.rx_bufs.clear();
            let mut capacity = 0;
            while capacity < need {
                let Some(chain) = queue::pop(q, mem) else {
                    for _ in &self.rx_chains {
                        q.go_to_previous_position();
                    }
                    break 'frames;
                };
                let head = chain.head_index();
                // The first chain holds the whole header; none is empty or readable, and the
                // frame's iovecs fit one call. A bad chain is refused with those popped
                // before it (the driver drops them as short frames and posts new ones).
                let least = if self.rx_chains.is_empty() { VNET_HDR_LEN as u64 } else { 1 };
                let fits = receive_capacity(chain, mem, &mut self.bufs)
                    .filter(|&c| c >= least)
                    .filter(|_| self.rx_bufs.len() + self.bufs.len() <= iov::MAX_IOVECS);
                let Some(len) = fits else {
                    self.stats.refused += 1;
                    for &(h, _) in self.rx_chains.iter().chain([(head, 0)].iter()) {
                        queue::complete(q, mem, h, 0);
                    }
                    completed = true;
                    continue 'frames;
                };
                self.rx_chains.push((head, len));
                self.rx_bufs.extend_from_slice(&self.bufs);
                capacity += len;
            }
            let read = iov::iovecs(mem, self.rx_bufs.iter(), 0, capacity, &mut iovs)
                .and_then(|n| self.tap.read_frame(&iovs[..n]));
            let len = match read {
                Ok(Some(len)) => len as u64,
                Ok(None) | Err(_) => {
                    if let Err(e) = read {
                        tracing::warn!("virtio-net: reading the tap: {e}");
                    }
                    for _ in &self.rx_chains {
                        q.go_to_previous_position();
                    }
                    want_tap = true;
                    break;
                }
            };
            // The chains the frame reached, at least the first; the header says how many
            // before the driver can see any of them.
            let mut used = 1;
            let mut reached = self.rx_chains[0].1;
            while reached < len && used < self.rx_chains.len() {
                reached += self.rx_chains[used].1;
                used += 1;
            }
            let n = (used as u16).to_le_bytes();
            if let Err(e) = iov::write_bytes(mem, self.rx_bufs.iter(), NUM_BUFFERS_OFFSET, &n) {
                tracing::warn!("virtio-net: {e}");
            }
            let mut left = len;
            for &(head, cap) in &self.rx_chains[..used] {
                let part = left.min(cap);
                queue::complete(q, mem, head, part as u32);
                left -= part;
            }
            for _ in used..self.rx_chains.len() {
                q.go_to_previous_position();
            }
            completed = true;
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += len;
            if let Some(l) = &mut self.rx_limiter {
                l.charge(len);
            }
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
        self.arm_tap(want_tap);
    }

    /// Sends every frame the driver queued, unless the rate limiter says wait.
    pub fn process_tx(&mut self) {
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[TX];
        let mut iovs =
            [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; iov::MAX_IOVECS];
        let mut completed = false;
        while self.tx_limiter.as_ref().is_none_or(|l| !l.is_blocked()) {
            let Some(chain) = queue::pop(q, mem) else { break };
            let head = chain.head_index();
            let ok = match queue::gather(chain, mem, MAX_BUFFERS, &mut self.bufs) {
                Err(e) => {
                    tracing::warn!("virtio-net: refusing a transmit chain: {e}");
                    false
                }
                Ok(()) => self.bufs.iter().all(|b| !b.writable),
            };
            let total: u64 = self.bufs.iter().map(|b| u64::from(b.len)).sum();
            if !ok || total < VNET_HDR_LEN as u64 || total > MAX_TX_FRAME {
                self.stats.refused += 1;
                queue::complete(q, mem, head, 0);
                completed = true;
                continue;
            }
            if let Some(l) = &mut self.tx_limiter
                && !l.consume(total)
            {
                self.stats.throttled += 1;
                q.go_to_previous_position();
                break;
            }
            let sent = iov::iovecs(mem, self.bufs.iter(), 0, total, &mut iovs)
                .and_then(|n| self.tap.write_frame(&iovs[..n]));
            match sent {
                Ok(_) => {
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += total;
                }
                Err(e) => {
                    tracing::debug!("virtio-net: a frame was dropped: {e}");
                    self.stats.tx_dropped += 1;
                }
            }
            queue::complete(q, mem, head, 0);
            completed = true;
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
    }
}

/// Gathers a receive chain into `bufs`: its capacity, or `None` (logged when malformed) if the
/// device may not write all of it.
fn receive_capacity(
    chain: virtio_queue::DescriptorChain<&GuestMem>,
    mem: &GuestMem,
    bufs: &mut Vec<Buffer>,
) -> Option<u64> {
    match queue::gather(chain, mem, MAX_BUFFERS, bufs) {
        Err(e) => {
            tracing::warn!("virtio-net: refusing a receive chain: {e}");
            None
        }
        Ok(()) if bufs.iter().all(|b| b.writable) => {
            Some(bufs.iter().map(|b| u64::from(b.len)).sum())
        }
        Ok(()) => None,
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        crate::types::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        self.offered
    }

    fn ack_features(&mut self, features: u64) {
        self.acked = features & self.offered;
        let mut offload = 0;
        for (feature, flag) in [
            (VIRTIO_NET_F_GUEST_CSUM, libc::TUN_F_CSUM),
            (VIRTIO_NET_F_GUEST_TSO4, libc::TUN_F_TSO4),
            (VIRTIO_NET_F_GUEST_TSO6, libc::TUN_F_TSO6),
        ] {
            if self.acked & (1 << feature) != 0 {
                offload |= flag;
            }
        }
        if let Err(e) = self.tap.set_offload(offload) {
            tracing::warn!("virtio-net: {e}");
        }
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::device::read_config_bytes(&self.mac, offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // The MAC is the device's to choose (VIRTIO_NET_F_CTRL_MAC_ADDR is not offered).
    }

    fn activate(
        &mut self,
        mem: GuestMem,
        queues: Vec<QueueConfig>,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError> {
        self.active = Some(Active::new(mem, &queues, QUEUE_SIZES, interrupt)?);
        self.arm_tap(true);
        Ok(())
    }

    fn queue_notify(&mut self, index: u16) {
        match usize::from(index) {
            RX => self.process_rx(),
            TX => self.process_tx(),
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.active = None;
        self.arm_tap(false);
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.poller.as_raw_fd())
    }

    fn queue_positions(&self) -> Option<Vec<crate::QueuePosition>> {
        self.active.as_ref().map(crate::active::Active::positions)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("rx_frames", s.rx_frames),
            ("rx_bytes", s.rx_bytes),
            ("tx_frames", s.tx_frames),
            ("tx_bytes", s.tx_bytes),
            ("tx_dropped", s.tx_dropped),
            ("refused", s.refused),
            ("throttled", s.throttled),
        ]
    }

    fn backend_ready(&mut self) {
        let mut events = [EpollEvent::default(); 4];
        let n = self.poller.ready(&mut events);
        for e in &events[..n] {
            match e.data() {
                TAP => self.process_rx(),
                RX_TIMER => {
                    if let Some(l) = &mut self.rx_limiter {
                        l.timer_fired();
                    }
                    self.process_rx();
                }
                TX_TIMER => {
                    if let Some(l) = &mut self.tx_limiter {
                        l.timer_fired();
                    }
                    self.process_tx();
                }
                _ => {}
            }
        }
    }
}
