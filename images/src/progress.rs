//! How a pull reports its progress (the CLI draws bars; the CRI server logs).

use crate::digest::Digest;

pub trait Progress: Send + Sync {
    /// A blob of `total` bytes starts downloading.
    fn started(&self, _blob: &Digest, _total: u64) {}
    /// `bytes` more of it arrived.
    fn advanced(&self, _blob: &Digest, _bytes: u64) {}
    /// It is stored (or was already).
    fn finished(&self, _blob: &Digest) {}
    /// A step without a byte count, e.g. "unpacking".
    fn step(&self, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
