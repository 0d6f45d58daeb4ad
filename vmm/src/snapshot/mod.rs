//! Snapshots of a paused machine, and machines restored from them (Firecracker's model):
//! a state file and a memory file; a restore maps the memory file privately, so clones of
//! one snapshot share the pages they have not written.
//!
//! - [`params`]: the API's requests (PUT /snapshot/create, PUT /snapshot/load).
//! - [`state`]: what the state file holds; [`format`]: its framing (version, checksum).
//! - [`vcpu`], [`vm`]: vCPU and VM state in KVM, saved and restored.
//! - [`memory`]: guest memory into a sparse file, and back.
//! - [`cpu_features`]: refusing a snapshot whose CPU this host cannot be.
//! - [`take`]: taking a snapshot of a running, paused machine.
//! - [`load`]: what a restore starts from.

pub mod cpu_features;
pub mod format;
pub mod load;
pub mod memory;
pub mod params;
pub mod state;
pub mod take;
pub mod vcpu;
pub mod vm;

use std::path::PathBuf;

pub use load::Restore;
pub use params::{CreateParams, LoadParams, SnapshotType};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a snapshot file of this VMM")]
    NotASnapshot,
    #[error("the snapshot's state format is version {found}; this VMM reads version {supported}")]
    Version { found: u32, supported: u32 },
    #[error("the snapshot file is truncated: {found} of {expected} bytes")]
    Truncated { expected: u64, found: u64 },
    #[error("the snapshot file is corrupt: {0}")]
    Corrupt(String),
    #[error("the memory file {} is {found} bytes; the snapshot's machine has {expected}", path.display())]
    MemoryFileSize { path: PathBuf, found: u64, expected: u64 },
    #[error("this host cannot restore the snapshot: {0}")]
    Incompatible(String),
    #[error("{0}")]
    Invalid(String),
    #[error("KVM: {0}")]
    Kvm(String),
    #[error("{0}")]
    Io(String),
    #[error("encoding the state: {0}")]
    Encode(String),
}

impl SnapshotError {
    /// The error of KVM call `what`, for `map_err`.
    pub fn kvm(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> SnapshotError {
        move |e| SnapshotError::Kvm(format!("{what}: {e}"))
    }
}
