//! The node's container runtime, behind the CRI (runtime.v1) gRPC API on a Unix socket.
//!
//! - [`runtime`]: the engine: pod sandboxes and containers, their state and lifecycle.
//! - [`handler`]: the seam to what actually isolates a pod (`sentry`, `microvm`).
//! - [`leftovers`]: what sandboxes record so that a restarted runtime can take them down;
//!   [`mounts`]: the bind mounts it makes.
//! - [`network`]: a network namespace per pod sandbox, attached by [`cni`] plugins;
//!   [`cgroup`]: its CPU limit.
//! - [`image_source`]: the seam to the node's images ([`image_source::ImageSource`]: what a
//!   container runs from, what the image service lists); [`store_images`] implements it over
//!   the `images` crate's store ([`store_images::StoreImages`]).
//! - [`pid_namespace`]: which PID namespace a container runs in (its own, the pod's, another's).
//! - [`logs`]: container logs in the CRI file format.
//! - [`streaming`]: the exec, attach and port-forward server the CRI hands out URLs for;
//!   [`port_forward`] and exec/attach ([`spdy_channels`]) over [`spdy`]; [`terminal`]: resize
//!   messages and `TERM` of `tty` sessions.
//! - [`server`]: the gRPC services.

pub mod cgroup;
pub mod cni;
pub mod handler;
pub mod host_ports;
pub mod identity;
pub mod image_source;
pub mod leftovers;
pub mod logs;
pub mod mounts;
pub mod network;
pub mod pid_namespace;
pub mod pod_options;
pub mod port_forward;
pub mod runtime;
pub mod security;
pub mod server;
pub mod spdy;
pub mod spdy_channels;
pub mod store_images;
pub mod streaming;
pub mod terminal;

/// Errors of the runtime, mapped to gRPC status codes at the server.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("pod network: {0}")]
    Network(String),
    #[error("image: {0}")]
    Image(String),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<CriError> for tonic::Status {
    fn from(e: CriError) -> tonic::Status {
        let msg = e.to_string();
        match e {
            CriError::NotFound(_) => tonic::Status::not_found(msg),
            CriError::Invalid(_) => tonic::Status::invalid_argument(msg),
            CriError::AlreadyExists(_) => tonic::Status::already_exists(msg),
            _ => tonic::Status::internal(msg),
        }
    }
}

/// Nanoseconds since the Unix epoch (CRI timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A random 64-hex-digit identifier, as container runtimes use.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    // SAFETY: getrandom into a local buffer.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}
