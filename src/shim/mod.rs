//! `containerd-shim-ringfence-v1`: Ringfence as a containerd runtime (shim v2, ttrpc), the
//! `ringfence` binary invoked under that name. containerd's `io.containerd.ringfence.v1`
//! tasks run in Sentry sandboxes, or in microVMs when the runtime's config file says so: one
//! sandbox per pod of containerd's CRI plugin (the pod's sandbox container is the sandbox
//! itself, its containers run in it, each on its own rootfs), or one per standalone container
//! (`ctr run`).
//!
//! - [`lifecycle`]: start/delete actions and the daemon.
//! - [`task`]: the Task service; [`container`] and [`process`] its state.
//! - [`bundle`]: the OCI bundle's config; [`rootfs`] its mounts; [`stdio`] the FIFOs.
//! - [`config`]: the runtime config file (which sandbox class, what a microVM boots).
//! - [`pods`]: the sandboxes; [`events`]: what containerd is told; [`metrics`]: the task
//!   stats it reads.

mod bundle;
mod config;
mod container;
mod error;
mod events;
mod lifecycle;
mod metrics;
mod pods;
mod process;
mod rootfs;
mod stdio;
mod task;

/// The name containerd looks for on its PATH for runtime `io.containerd.ringfence.v1`.
pub const BINARY_NAME: &str = "containerd-shim-ringfence-v1";
const RUNTIME_ID: &str = "io.containerd.ringfence.v1";

/// Whether this process was started as the shim (a link named [`BINARY_NAME`]).
pub fn invoked_as_shim() -> bool {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .is_some_and(|p| p.file_name().is_some_and(|n| n == BINARY_NAME))
}

/// Runs the shim; returns only on success (errors end the process with status 1).
pub fn main() -> std::process::ExitCode {
    let config = containerd_shim::Config {
        // Logging is set up by the daemon itself (tracing into containerd's log FIFO).
        no_setup_logger: true,
        // The shim reaps only its own children (the Sentry, Gofers), each by its handle.
        no_reaper: true,
        no_sub_reaper: true,
        ..Default::default()
    };
    containerd_shim::run::<lifecycle::ShimLifecycle>(RUNTIME_ID, Some(config));
    std::process::ExitCode::SUCCESS
}
