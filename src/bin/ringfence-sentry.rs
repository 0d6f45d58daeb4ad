//! `ringfence-sentry`: the Sentry's commands (`run`, `sandbox`, `exec`, `check`, `gofer`) as a
//! binary of their own, a few MiB of code where `ringfence` has tens: `ringfence sentry ...`
//! executes it when it is installed beside `ringfence`, so that a sandbox's Sentry process
//! holds only what a Sentry runs. The commands are the same source as `ringfence sentry`'s.

use std::process::ExitCode;

use clap::Parser;

#[path = "../cli/logging.rs"]
mod logging;
#[path = "../cli/sentry.rs"]
mod sentry;
#[path = "../cli/sentry_security.rs"]
mod sentry_security;
#[path = "../cli/sentry_stop.rs"]
mod sentry_stop;

/// The words before a Sentry subcommand here: none.
const SENTRY_COMMAND: &[&str] = &[];

#[derive(Parser)]
#[command(name = "ringfence-sentry", version, about = "The Sentry runtime (ringfence sentry)")]
struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: sentry::SentryCommand,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    logging::init_logging(args.verbose);
    match sentry::run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringfence-sentry: {e:#}");
            ExitCode::from(1)
        }
    }
}
