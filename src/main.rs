//! The `ringfence` command line: parse, set up logging, dispatch.

#[cfg(feature = "dev")]
mod bench;
mod cli;
#[cfg(feature = "dev")]
mod lane;
mod shim;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A link named containerd-shim-ringfence-v1: containerd's runtime shim.
    if shim::invoked_as_shim() {
        return shim::main();
    }
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    if let cli::Command::Sentry(_) = args.command {
        cli::exec_sentry_binary();
    }
    match cli::run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringfence: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
