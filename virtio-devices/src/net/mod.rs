//! virtio-net backed by a host tap device.
//!
//! - [`tap`]: the tap, with virtio-net headers and offloads.
//! - [`device`]: the device: receive and transmit queues, MAC, rate limiters.

pub mod device;
pub mod tap;

pub use device::{Net, NetConfig, NetError, NetStats};
