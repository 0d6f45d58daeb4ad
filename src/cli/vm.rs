//! `ringfence vm ...`: the microVMM for humans.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use vmm::vm::{ExitReason, ExitSignal, Program, VmConfig};

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boots a kernel (ELF, with a PVH note or not, or bzImage) and runs until the guest
    /// resets, powers off or faults; the exit status says which.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    #[arg(long)]
    pub kernel: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    pub mem: u64,
    /// Where the serial console goes: `stdout` or a file path.
    #[arg(long, default_value = "stdout")]
    pub serial: String,
    #[arg(long, default_value_t = 1)]
    pub vcpus: u8,
    /// Kernel command line (Linux boot protocol).
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=1")]
    pub cmdline: String,
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// CPU template: `nested-host` (masks what this project's nested KVM hosts cannot emulate)
    /// or a JSON file (`{"cpuid_modifiers": [{"leaf": 1, "register": "ecx", "clear": 8192}]}`).
    #[arg(long)]
    pub cpu_template: Option<String>,
}

pub fn run(cmd: VmCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VmCommand::Run(a) => run_vm(a),
    }
}

fn run_vm(a: RunArgs) -> anyhow::Result<ExitCode> {
    let serial: Box<dyn std::io::Write + Send> = match a.serial.as_str() {
        "stdout" => Box::new(std::io::stdout()),
        path => {
            Box::new(std::fs::File::create(path).with_context(|| format!("serial output {path}"))?)
        }
    };
    let exit = ExitSignal::new()?;
    // SIGTERM and SIGINT end the machine cleanly; the vCPU threads inherit the blocked mask.
    // SAFETY: building and applying a signal mask on this still single-threaded process.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    {
        let exit = exit.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut sig = 0;
            // SAFETY: waiting on the set blocked above.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                exit.raise(ExitReason::Signal(sig));
            }
        })?;
    }
    let template = match a.cpu_template.as_deref() {
        None => Default::default(),
        Some("nested-host") => vmm::cpuid::Template::nested_host(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("CPU template {path}"))?;
            vmm::cpuid::Template::from_json(&text)?
        }
    };
    let mut config = VmConfig::new(a.mem << 20, serial);
    config.vcpus = a.vcpus;
    config.cmdline = a.cmdline;
    config.initrd = a.initrd;
    config.template = template;
    let reason = vmm::vm::run_with(config, Program::Kernel(a.kernel), exit)?;
    if !matches!(reason, ExitReason::Reset | ExitReason::Shutdown | ExitReason::Halt) {
        eprintln!("ringfence vm: the machine ended: {reason:?}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(ExitCode::from(reason.exit_code().clamp(0, 255) as u8))
}
