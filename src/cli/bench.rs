//! `ringfence bench ...`: benchmarks that print tables with ratios against their peers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::bench::api::{self, BackendKind, BenchConfig};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The API server on the embedded store and on etcd: throughput, latency, watch fan-out.
    Api(ApiArgs),
    /// The Sentry against runc and runsc (ptrace): start-to-exit, syscalls, fork+exec, memory.
    Sentry(SentryArgs),
}

#[derive(Args)]
pub struct SentryArgs {
    /// Sandbox starts per runtime for the start-to-exit median.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// getpid calls per runtime (open+read+close runs a quarter as many).
    #[arg(long, default_value_t = 20_000)]
    iterations: u64,
    /// fork+exec+wait cycles per runtime.
    #[arg(long, default_value_t = 100)]
    forks: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Backends {
    Both,
    Embedded,
    Etcd,
}

#[derive(Args)]
pub struct ApiArgs {
    /// Objects stored before measuring.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// Watchers for the fan-out phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Total rate of the paced mutation phases.
    #[arg(long, default_value_t = 200)]
    qps: u32,
    #[arg(long, value_enum, default_value_t = Backends::Both)]
    backend: Backends,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Sentry(a) => {
            let cfg = crate::bench::sentry::BenchConfig {
                runs: a.runs.max(1),
                iterations: a.iterations.max(4),
                fork_iterations: a.forks.max(1),
            };
            let rows = crate::bench::sentry::run(&cfg)?;
            print!("{}", crate::bench::sentry::render(&rows, &cfg));
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Api(a) => {
            let backends = match a.backend {
                Backends::Both => vec![BackendKind::Embedded, BackendKind::Etcd],
                Backends::Embedded => vec![BackendKind::Embedded],
                Backends::Etcd => vec![BackendKind::Etcd],
            };
            let cfg = BenchConfig {
                objects: a.objects,
                clients: a.clients.max(1),
                watchers: a.watchers.max(1),
                duration: Duration::from_secs(a.seconds.max(1)),
                paced_qps: a.qps.max(1),
                backends,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let rows = runtime.block_on(api::run(cfg.clone()))?;
            print!("{}", api::render(&rows, &cfg));
            Ok(ExitCode::SUCCESS)
        }
    }
}
