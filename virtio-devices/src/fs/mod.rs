//! virtio-fs: a host directory shared with the guest, served by a vhost-user daemon (such as
//! `virtiofsd`) that speaks FUSE with the guest's driver straight through the queues. The
//! device here only connects the two: it hands the daemon the guest memory and the rings, and
//! relays notifications both ways.

mod device;

pub use device::Fs;

use std::path::PathBuf;

/// The longest tag the guest can mount by (virtio 1.2, 5.11.4).
pub const TAG_MAX: usize = 36;

/// A shared directory: the tag the guest mounts it by, and the daemon's vhost-user socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    pub tag: String,
    pub socket: PathBuf,
    /// Request queues (the high-priority queue comes on top).
    pub request_queues: u16,
    pub queue_size: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("tag {0:?}: 1 to {TAG_MAX} bytes")]
    BadTag(String),
    #[error("vhost-user socket {path}: {why}")]
    Connect { path: PathBuf, why: String },
    #[error("vhost-user: {0}")]
    Protocol(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
