//! The `ringfence` command line: parse, set up logging, dispatch.

#[cfg(feature = "dev")]
mod bench;
mod cli;
#[cfg(feature = "dev")]
mod lane;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    match cli::run(args.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringfence: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
