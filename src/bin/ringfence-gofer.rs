//! `ringfence-gofer`: a sandbox's Gofer as a small process of its own (what the Sentry starts
//! for its root filesystem and each volume; `ringfence sentry gofer` is the same, in the whole
//! binary). It serves file requests on descriptor 3, the channel the Sentry passed it, from
//! the directory `--root`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[path = "../cli/logging.rs"]
mod logging;

#[derive(Parser)]
#[command(name = "ringfence-gofer", about = "Serve a directory to a Sentry (started by it)")]
struct Args {
    #[arg(long)]
    root: PathBuf,
    /// Serve changes too (a read-write volume).
    #[arg(long)]
    writable: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init_logging(0);
    // SAFETY: descriptor 3 is the channel the Sentry passed us; we take ownership.
    let sock = unsafe { OwnedFd::from_raw_fd(sentry_kvm::gofer::client::GOFER_FD) };
    match sentry_kvm::gofer::server::serve(&args.root, sock, args.writable) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfence-gofer: {e}");
            ExitCode::from(1)
        }
    }
}
