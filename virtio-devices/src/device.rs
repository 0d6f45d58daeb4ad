//! What a virtio device is to its transport.

use std::os::fd::RawFd;
use std::sync::Arc;

use crate::GuestMem;

/// Where a queue the driver set up lives in guest memory, and where the device resumes in it
/// (both 0 for a fresh queue; a restored machine's queues carry on from a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub position: QueuePosition,
}

/// How far the device has gone through a queue: the next available entry it will take and
/// the next used entry it will fill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueuePosition {
    pub next_avail: u16,
    pub next_used: u16,
}

/// How a device tells the driver that used buffers or its configuration changed.
pub trait Interrupt: Send + Sync {
    fn used_buffers(&self);
    fn config_changed(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("{0}")]
    Invalid(String),
    #[error("queue {index}: {why}")]
    Queue { index: usize, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads `data.len()` bytes at `offset` of a device's config space `config`; what lies past
/// its end reads as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(config.len());
    let end = start.saturating_add(data.len()).min(config.len());
    data[..end - start].copy_from_slice(&config[start..end]);
}

/// A virtio device behind a transport.
pub trait VirtioDevice: Send {
    fn device_type(&self) -> u32;
    /// The largest size of each queue (their count is the device's number of queues).
    fn queue_max_sizes(&self) -> &[u16];
    /// Features offered (including [`crate::VIRTIO_F_VERSION_1`]).
    fn features(&self) -> u64;
    /// The features the driver accepted (a subset of what was offered).
    fn ack_features(&mut self, features: u64);
    fn read_config(&self, offset: u64, data: &mut [u8]);
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// The driver finished setting up: start serving `queues` in `mem`.
    fn activate(
        &mut self,
        mem: GuestMem,
        queues: Vec<QueueConfig>,
        interrupt: Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError>;
    /// The driver notified queue `index`.
    fn queue_notify(&mut self, index: u16);
    /// Back to the state before activation.
    fn reset(&mut self);
    /// A descriptor, fixed for the device's life, that becomes readable when the device has
    /// host-side work (a tap with frames, a socket with data, a rate limiter's timer); the
    /// event loop then calls [`VirtioDevice::backend_ready`].
    fn backend_fd(&self) -> Option<RawFd> {
        None
    }
    fn backend_ready(&mut self) {}
    /// Counters for the VMM's metrics (bytes, requests, errors), by name.
    fn metrics(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Where an activated device stands in each of its queues (for a snapshot of a paused
    /// machine); `None` when the device does not track it itself (a vhost-user backend does),
    /// and the transport reads the used rings instead.
    fn queue_positions(&self) -> Option<Vec<QueuePosition>> {
        None
    }
    /// The machine was restored from a snapshot and this device re-activated: tell the driver
    /// what did not survive (vsock connections).
    fn restored(&mut self) {}
    /// Before a snapshot of the paused machine: whatever the device wrote on the host reaches
    /// stable storage (a disk's writes), so that the snapshot's disks match its memory.
    fn quiesce(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
