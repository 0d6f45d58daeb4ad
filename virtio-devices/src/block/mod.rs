//! virtio-blk backed by a raw image file: reads, writes, flush, GET_ID, discard and write
//! zeroes, optionally read-only and rate limited.
//!
//! - [`request`]: a request parsed and checked against the disk (no I/O).
//! - [`device`]: the device: config space, queue processing, file I/O.

pub mod device;
pub mod request;

pub use device::{Block, BlockConfig, BlockError, BlockStats};
