//! `ringfence vm ...`: the microVMM for humans. `vm run` executes the small `ringfence-vmm`
//! binary installed next to this one (as Firecracker is its own process), with the same
//! arguments.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boots a kernel (ELF, with a PVH note or not, or bzImage) and runs until the guest
    /// resets, powers off or faults; the exit status says which (0; 3 for a guest fault;
    /// 128+n for signal n). See `ringfence-vmm --help` for the options.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

pub fn run(cmd: VmCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VmCommand::Run { args } => {
            let exe = std::env::current_exe().context("locating the ringfence binary")?;
            let vmm = exe.with_file_name("ringfence-vmm");
            let err = std::process::Command::new(&vmm).args(args).exec();
            Err(err).with_context(|| format!("running {}", vmm.display()))
        }
    }
}
