//! virtio devices, seen by the VMM through one small trait ([`VirtioDevice`]); the transport
//! (virtio-mmio) lives in the VMM. The devices themselves (blk, net, vsock, rng over
//! virtio-queue) are issue 5.

pub mod device;

pub use device::{ActivateError, Interrupt, QueueConfig, VirtioDevice};

/// Device type ids (virtio 1.x, section 5).
pub mod types {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const ENTROPY: u32 = 4;
    pub const VSOCK: u32 = 19;
}

/// Feature bits every modern device offers.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
