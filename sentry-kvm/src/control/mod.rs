//! The control channel of a pod sandbox: a Unix socket over which the node's runtime starts
//! containers and execs, signals and waits for processes, and reads statistics. Requests are
//! JSON; descriptors (a container's Gofer channel, stdio) travel with them as SCM_RIGHTS.

mod address;
pub mod client;
pub mod protocol;
pub mod server;

pub use client::ControlClient;
pub use server::ControlServer;
