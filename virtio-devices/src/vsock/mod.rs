//! virtio-vsock with the host side as Unix sockets (Firecracker's convention), stream
//! sockets with credit-based flow control.
//!
//! - [`proto`]: the wire protocol's constants and connection keys.
//! - [`connection`]: one connection's state and credit, and the bytes owed to the host.
//! - [`muxer`]: the listener and every connection; which packet the guest gets next.
//! - [`device`]: the device: queues, packets parsed with virtio-vsock.

pub mod connection;
pub mod device;
pub mod muxer;
pub mod proto;

pub use device::{Vsock, VsockConfig, VsockError, VsockStats};
