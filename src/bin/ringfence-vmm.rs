//! `ringfence-vmm`: the microVMM as a process of its own, small enough to start in a few
//! milliseconds and a few MiB (what `ringfence vm run` executes). Same arguments as
//! `ringfence vm run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use vmm::vm::{ExitReason, ExitSignal, Program, VmConfig};

#[derive(Parser)]
#[command(name = "ringfence-vmm", about = "Boot a kernel in a KVM microVM")]
struct Args {
    /// ELF (with or without a PVH note) or bzImage.
    #[arg(long)]
    kernel: PathBuf,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    mem: u64,
    /// Where the serial console goes: `stdout` or a file path.
    #[arg(long, default_value = "stdout")]
    serial: String,
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Kernel command line (Linux boot protocol).
    #[arg(long, default_value = "console=ttyS0 reboot=k panic=1")]
    cmdline: String,
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// `nested-host` or a JSON CPU template file.
    #[arg(long)]
    cpu_template: Option<String>,
}

fn fail(msg: String) -> ExitCode {
    eprintln!("ringfence-vmm: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let a = Args::parse();
    let serial: Box<dyn std::io::Write + Send> = match a.serial.as_str() {
        "stdout" => Box::new(std::io::stdout()),
        path => match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(format!("serial output {path}: {e}")),
        },
    };
    let template = match a.cpu_template.as_deref() {
        None => Default::default(),
        Some("nested-host") => vmm::cpuid::Template::nested_host(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| vmm::cpuid::Template::from_json(&t).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => return fail(format!("CPU template {path}: {e}")),
        },
    };
    let exit = match ExitSignal::new() {
        Ok(e) => e,
        Err(e) => return fail(e.to_string()),
    };
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
        let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut sig = 0;
            // SAFETY: waiting on the set blocked above.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                exit.raise(ExitReason::Signal(sig));
            }
        });
        if let Err(e) = spawned {
            return fail(e.to_string());
        }
    }
    let mut config = VmConfig::new(a.mem << 20, serial);
    config.vcpus = a.vcpus;
    config.cmdline = a.cmdline;
    config.initrd = a.initrd;
    config.template = template;
    let reason = match vmm::vm::run_with(config, Program::Kernel(a.kernel), exit) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if !matches!(reason, ExitReason::Reset | ExitReason::Shutdown | ExitReason::Halt) {
        eprintln!("ringfence-vmm: the machine ended: {reason:?}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    ExitCode::from(reason.exit_code().clamp(0, 255) as u8)
}
