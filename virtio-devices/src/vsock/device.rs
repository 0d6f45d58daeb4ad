//! The virtio-vsock device: receive, transmit and event queues, the guest's CID, and packets
//! parsed with virtio-vsock and handed to the [`Muxer`].

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

use virtio_queue::QueueOwnedT;
use virtio_vsock::packet::{PKT_HEADER_SIZE, VsockPacket};

use super::muxer::{Muxer, MuxerStats};
use super::proto::{CONN_BUF, HOST_CID, Key, MAX_PAYLOAD, OP_RST, TYPE_STREAM};
use crate::active::Active;
use crate::queue;
use crate::{ActivateError, GuestMem, Interrupt, QueueConfig, VIRTIO_F_VERSION_1, VirtioDevice};

const RX: usize = 0;
const TX: usize = 1;
const EVENT: usize = 2;
/// `virtio_vsock_event.id`: the host forgot every connection (a restored machine).
const EVENT_TRANSPORT_RESET: u32 = 0;
const QUEUE_SIZES: &[u16] = &[256, 256, 64];

#[derive(Debug, Clone)]
pub struct VsockConfig {
    /// The guest's address (3 or more).
    pub guest_cid: u64,
    /// Where host programs connect; guest connections to port P go to `<uds_path>_<P>`.
    pub uds_path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("guest_cid {0} is reserved (use 3 or more)")]
    Cid(u64),
    #[error("listening on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct VsockStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub refused_chains: u64,
    pub muxer: MuxerStats,
}

pub struct Vsock {
    cid: u64,
    muxer: Muxer,
    active: Option<Active>,
    stats: VsockStats,
    /// A restored guest has a transport reset to handle: nothing reaches its receive queue
    /// until it has (it then refills the event queue and kicks it). Linux handles the event
    /// and new packets in separate work items, in either order, so a host connection made
    /// meanwhile could be accepted and then reset with the ones the snapshot forgot.
    reset_pending: bool,
}

impl Vsock {
    pub fn new(cfg: &VsockConfig) -> Result<Vsock, VsockError> {
        if cfg.guest_cid <= HOST_CID || cfg.guest_cid > u64::from(u32::MAX) {
            return Err(VsockError::Cid(cfg.guest_cid));
        }
        let muxer = Muxer::new(&cfg.uds_path)
            .map_err(|source| VsockError::Listen { path: cfg.uds_path.clone(), source })?;
        Ok(Vsock {
            cid: cfg.guest_cid,
            muxer,
            active: None,
            stats: VsockStats::default(),
            reset_pending: false,
        })
    }

    pub fn stats(&self) -> VsockStats {
        VsockStats { muxer: self.muxer.stats(), ..self.stats }
    }

    pub fn connection_count(&self) -> usize {
        self.muxer.connection_count()
    }

    /// Hands every packet the guest queued to the muxer.
    fn process_tx(&mut self) {
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[TX];
        let mut completed = false;
        while let Some(mut chain) = queue::pop(q, mem) {
            let head = chain.head_index();
            match VsockPacket::from_tx_virtq_chain(mem, &mut chain, MAX_PAYLOAD) {
                Err(e) => {
                    tracing::warn!("vsock: refusing a transmit chain: {e}");
                    self.stats.refused_chains += 1;
                }
                // Only stream packets from the guest to the host; others are dropped.
                Ok(p) if p.src_cid() != self.cid || p.dst_cid() != HOST_CID => {
                    self.stats.refused_chains += 1;
                }
                Ok(p) => {
                    self.stats.tx_packets += 1;
                    let key = Key { local: p.dst_port(), peer: p.src_port() };
                    if p.type_() != TYPE_STREAM {
                        if p.op() != OP_RST {
                            self.muxer.refuse(key);
                        }
                    } else {
                        let credit = (p.buf_alloc(), p.fwd_cnt());
                        self.muxer.from_guest(key, p.op(), p.flags(), credit, p.data_slice());
                    }
                }
            }
            queue::complete(q, mem, head, 0);
            completed = true;
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
        self.process_rx();
    }

    /// Fills receive buffers with what the muxer has for the guest.
    fn process_rx(&mut self) {
        if self.reset_pending {
            return;
        }
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[RX];
        let mut completed = false;
        while self.muxer.has_work() {
            let Some(mut chain) = queue::pop(q, mem) else { break };
            let head = chain.head_index();
            queue::mark_writable(&chain);
            let mut pkt = match VsockPacket::from_rx_virtq_chain(mem, &mut chain, MAX_PAYLOAD) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("vsock: refusing a receive chain: {e}");
                    self.stats.refused_chains += 1;
                    queue::complete(q, mem, head, 0);
                    completed = true;
                    continue;
                }
            };
            let Some(out) = self.muxer.next_for_guest(pkt.data_slice()) else {
                q.go_to_previous_position();
                break;
            };
            pkt.set_src_cid(HOST_CID)
                .set_dst_cid(self.cid)
                .set_src_port(out.key.local)
                .set_dst_port(out.key.peer)
                .set_len(out.len)
                .set_type(TYPE_STREAM)
                .set_op(out.op)
                .set_flags(out.flags)
                .set_buf_alloc(CONN_BUF)
                .set_fwd_cnt(out.fwd_cnt);
            queue::complete(q, mem, head, PKT_HEADER_SIZE as u32 + out.len);
            self.stats.rx_packets += 1;
            completed = true;
        }
        if completed {
            queue::notify(q, mem, interrupt);
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        crate::types::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn ack_features(&mut self, _features: u64) {}

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::device::read_config_bytes(&self.cid.to_le_bytes(), offset, data);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMem,
        queues: Vec<QueueConfig>,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError> {
        self.active = Some(Active::new(mem, &queues, QUEUE_SIZES, interrupt)?);
        Ok(())
    }

    fn queue_notify(&mut self, index: u16) {
        match usize::from(index) {
            RX => self.process_rx(),
            TX => self.process_tx(),
            EVENT if self.reset_pending => {
                self.reset_pending = false;
                self.process_rx();
            }
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.active = None;
        self.reset_pending = false;
        self.muxer.clear();
    }

    fn backend_fd(&self) -> Option<RawFd> {
        Some(self.muxer.poll_fd())
    }

    fn queue_positions(&self) -> Option<Vec<crate::QueuePosition>> {
        self.active.as_ref().map(crate::active::Active::positions)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("rx_packets", s.rx_packets),
            ("tx_packets", s.tx_packets),
            ("refused_chains", s.refused_chains),
            ("connections", s.muxer.connections),
            ("refused_connections", s.muxer.refused),
            ("resets", s.muxer.resets),
        ]
    }

    fn backend_ready(&mut self) {
        self.muxer.process_events();
        self.process_rx();
    }

    /// Connections do not survive a snapshot: the guest is told to drop its own, as on a
    /// transport reset, through a buffer it left in the event queue; new ones wait until it
    /// has.
    fn restored(&mut self) {
        self.muxer.clear();
        let Some(Active { mem, queues, interrupt }) = &mut self.active else { return };
        let q = &mut queues[EVENT];
        let Some(chain) = queue::pop(q, mem) else {
            tracing::warn!("vsock: no event buffer for the transport reset");
            return;
        };
        let head = chain.head_index();
        let mut written = 0;
        for d in chain {
            if d.is_write_only() && d.len() >= 4 {
                use vm_memory::Bytes;
                crate::dirty::mark(d.addr().0, 4);
                if mem.write_obj(EVENT_TRANSPORT_RESET.to_le(), d.addr()).is_ok() {
                    written = 4;
                }
                break;
            }
        }
        queue::complete(q, mem, head, written);
        queue::notify(q, mem, interrupt);
        self.reset_pending = written > 0;
    }
}
