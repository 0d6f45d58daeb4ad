//! Subcommands, one module per area.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "dev")]
mod bench;
mod controlplane;
#[cfg(feature = "dev")]
mod dev;
mod image;
mod logging;
mod node;
mod sentry;
mod sentry_binary;
mod sentry_security;
mod sentry_stop;
mod server;
mod vm;
mod vm_agent;

pub use logging::init_logging;
pub use sentry::gofer_launcher;
pub use sentry_binary::{exec_sentry_binary, sentry_launcher};

/// The words before a Sentry subcommand: `ringfence sentry run` (`ringfence-sentry run` in the
/// small binary).
const SENTRY_COMMAND: &[&str] = &["sentry"];

#[derive(Parser)]
#[command(name = "ringfence", version, about = "Pods in KVM isolation boundaries")]
pub struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The Sentry runtime: Linux binaries under a user-space kernel in a KVM guest.
    #[command(subcommand)]
    Sentry(sentry::SentryCommand),
    /// The microVMM: boot a kernel in a KVM virtual machine.
    #[command(subcommand)]
    Vm(vm::VmCommand),
    /// Benchmarks: each prints a table with ratios against its peers (built with the `dev`
    /// feature).
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The Kubernetes-compatible API server (kubectl talks to it), with the scheduler and the
    /// controllers unless told otherwise.
    Server(server::ServerArgs),
    /// The scheduler alone, against a cluster's API server.
    Scheduler(controlplane::ComponentArgs),
    /// The controller manager alone, against a cluster's API server.
    Controllers(controlplane::ComponentArgs),
    /// Simulated nodes (no workloads): register, heartbeat, and run pods bound to them.
    SimNodes(controlplane::SimNodesArgs),
    /// The node's container runtime: the CRI gRPC API on a Unix socket.
    Cri(node::CriArgs),
    /// The node agent: registers the node and runs the pods bound to it through the CRI.
    Node(node::NodeArgs),
    /// A whole single-node cluster: API server, scheduler, controllers, CRI and node agent.
    Up(node::UpArgs),
    /// A node's images: import, pull, list, remove.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Tools for developing Ringfence (the nested-SVM test lane; built with the `dev`
    /// feature).
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Dev(dev::DevCommand),
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Sentry(c) => sentry::run(c),
        Command::Server(a) => server::run(a),
        #[cfg(feature = "dev")]
        Command::Bench(c) => bench::run(c),
        Command::Vm(c) => vm::run(c),
        Command::Scheduler(a) => controlplane::scheduler(a),
        Command::Controllers(a) => controlplane::controllers(a),
        Command::SimNodes(a) => controlplane::sim_nodes(a),
        Command::Image(c) => image::run(c),
        Command::Cri(a) => node::cri(a),
        Command::Node(a) => node::node(a),
        Command::Up(a) => node::up(a),
        #[cfg(feature = "dev")]
        Command::Dev(c) => dev::run(c),
    }
}
