//! virtio devices, seen by the VMM through one small trait ([`VirtioDevice`]); the transport
//! (virtio-mmio) lives in the VMM. Every field a guest writes is hostile input: chains are
//! checked once ([`queue::gather`]) before a device reads a byte of them.
//!
//! - [`device`]: the [`VirtioDevice`] trait, queue setup and the interrupt a device raises.
//! - [`dirty`]: the guest pages devices write (for Diff snapshots).
//! - [`queue`]: queues built from the driver's setup, chains gathered and checked, completion.
//! - [`active`]: what an activated device holds (memory, queues, interrupt).
//! - [`iov`]: chain buffers as host memory; vectored file I/O straight into guest memory.
//! - [`poller`]: a device's own epoll set behind one descriptor the VMM watches.
//! - [`rate_limiter`]: token buckets (bandwidth and ops) with a timer.
//! - [`block`]: virtio-blk on a raw image file.
//! - [`fs`]: virtio-fs, a frontend for a vhost-user daemon (virtiofsd) sharing a directory.
//! - [`net`]: virtio-net on a tap.
//! - [`rng`]: virtio-rng from getrandom.
//! - [`vsock`]: virtio-vsock with Unix sockets on the host.
//! - `testing` (feature): a mock-queue driver for tests and benchmarks, and `fuzz_seeds`:
//!   well-formed starting inputs for the fuzz targets.

pub mod active;
pub mod block;
pub mod device;
pub mod dirty;
pub mod fs;
#[cfg(feature = "testing")]
pub mod fuzz_seeds;
pub mod iov;
pub mod net;
pub mod poller;
pub mod queue;
pub mod rate_limiter;
pub mod rng;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vsock;

pub use device::{ActivateError, Interrupt, QueueConfig, QueuePosition, VirtioDevice};

/// Guest memory as devices see it (the VMM's memory is the same type).
pub type GuestMem = vm_memory::GuestMemoryMmap<()>;

/// Device type ids (virtio 1.x, section 5).
pub mod types {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const ENTROPY: u32 = 4;
    pub const VSOCK: u32 = 19;
    pub const FS: u32 = 26;
}

/// Feature bits every modern device offers.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
