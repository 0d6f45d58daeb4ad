//! What a virtio device is to its transport.

/// Where a queue the driver set up lives in guest memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueConfig {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
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
    /// The driver finished setting up: start serving `queues`.
    fn activate(
        &mut self,
        queues: Vec<QueueConfig>,
        interrupt: std::sync::Arc<dyn Interrupt>,
    ) -> Result<(), ActivateError>;
    /// The driver notified queue `index`.
    fn queue_notify(&mut self, index: u16);
    /// Back to the state before activation.
    fn reset(&mut self);
}
