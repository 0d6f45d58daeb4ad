//! The guest agent: PID 1 of a Ringfence microVM, serving the agent API over vsock, and the
//! protocol the host speaks to it.
//!
//! The host links only [`proto`], [`client`], [`exit`] and [`unix_grpc`] (which every gRPC
//! server of the project on a Unix socket uses); the rest runs inside the guest.

pub mod child_steps;
pub mod client;
pub mod cmdline;
pub mod console_shell;
pub mod container;
pub mod exit;
pub mod forward;
pub mod init;
pub mod launch;
pub mod netlink;
pub mod network;
pub mod process;
pub mod reaper;
pub mod refresh;
pub mod security;
pub mod service;
pub mod stats;
pub mod steps;
pub mod sysctl;
pub mod terminal;
pub mod unix_grpc;

/// The generated types and stubs of `proto/agent.proto`.
pub mod proto {
    tonic::include_proto!("ringfence.agent.v1");
}

/// The vsock port the agent listens on.
pub const AGENT_PORT: u32 = 1024;

/// The vsock port of port forwarding ([`forward`]).
pub const FORWARD_PORT: u32 = 1025;

/// The agent's version, reported by Health.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
