//! `ringfence sentry ...`: the Sentry runtime.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SentryCommand {
    /// Checks that this host can run Sentry sandboxes and measures a syscall round trip.
    Check,
}

pub fn run(cmd: SentryCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SentryCommand::Check => {
            let report = sentry_kvm::platform::kvm::selftest::run()
                .context("the KVM platform self-test failed")?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
