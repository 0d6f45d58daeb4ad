//! `ringfence-vmm`: the microVMM as a process of its own, small enough to start in a few
//! milliseconds and a few MiB (what `ringfence vm run` executes). Same arguments as
//! `ringfence vm run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::sync::{Arc, Mutex};

use vmm::api::{Api, Drive, Entropy, FsDevice, NetworkInterface, Start, Vsock};
use vmm::cpuid::Template;
use vmm::exit::{ExitReason, ExitSignal};
use vmm::resources::{BootSource, MachineConfig, MachineOptions, ResourceError, VmResources};
use vmm::snapshot::{LoadParams, Restore};
use vmm::vm::Program;

#[derive(Parser)]
#[command(
    name = "ringfence-vmm",
    about = "Boot a kernel in a KVM microVM",
    args_override_self = true
)]
struct Args {
    /// ELF (with or without a PVH note) or bzImage; boots right away (with --api-sock, the
    /// API then serves the running machine: pause, snapshot, resume).
    #[arg(long, conflicts_with = "config_file")]
    kernel: Option<PathBuf>,
    /// Serve the Firecracker-compatible API here and boot on `InstanceStart`.
    #[arg(long)]
    api_sock: Option<PathBuf>,
    /// Boot from a configuration file (Firecracker's JSON shape) right away.
    #[arg(long, conflicts_with = "restore")]
    config_file: Option<PathBuf>,
    /// Restore from a snapshot right away instead of booting: a JSON file holding the body
    /// of PUT /snapshot/load (`snapshot_path`, `mem_backend`, `resume_vm`, overrides). The
    /// machine's devices are the snapshot's; its files are opened before a jail is entered.
    #[arg(long, conflicts_with_all = ["kernel", "disk", "net", "vsock", "entropy", "fs"])]
    restore: Option<PathBuf>,
    /// With --config-file: serve no API (the default when no --api-sock is given).
    #[arg(long)]
    no_api: bool,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 128)]
    mem: u64,
    /// Guest memory from a memfd (4 KiB pages) rather than anonymous memory.
    #[arg(long)]
    memfd: bool,
    /// Guest memory in 2 MiB huge pages (a hugetlb memfd; the host must have them free).
    #[arg(long)]
    huge_pages: bool,
    /// Where the serial console goes: `stdout` (its input then comes from stdin, a terminal
    /// there put in raw mode while the machine runs) or a file path.
    #[arg(long, default_value = "stdout")]
    serial: String,
    #[arg(long, default_value_t = 1)]
    vcpus: u8,
    /// Kernel command line (Linux boot protocol).
    #[arg(long, default_value = vmm::linux_boot::DEFAULT_CMDLINE)]
    cmdline: String,
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// A raw disk image as a virtio-blk device (`PATH` or `PATH:ro`), /dev/vda, /dev/vdb, ...
    /// in order; repeatable.
    #[arg(long, value_parser = parse_disk)]
    disk: Vec<(PathBuf, bool)>,
    /// A virtio-net device on a host tap: `TAP` or `TAP,MAC`; repeatable.
    #[arg(long, value_parser = parse_net)]
    net: Vec<(String, Option<String>)>,
    /// A virtio-vsock device: `CID,PATH` (host programs connect to PATH and write
    /// `CONNECT <port>`; the guest's connections to port P reach `PATH_P`).
    #[arg(long, value_parser = parse_vsock)]
    vsock: Option<(u32, PathBuf)>,
    /// A virtio-rng device fed from the host's getrandom.
    #[arg(long)]
    entropy: bool,
    /// A shared directory (virtio-fs): `TAG,SOCKET`, the vhost-user socket of a daemon such
    /// as virtiofsd serving it; the guest mounts it with `mount -t virtiofs TAG DIR`.
    /// Repeatable.
    #[arg(long, value_parser = parse_fs)]
    fs: Vec<(String, PathBuf)>,
    /// `nested-host`, `none` or a JSON CPU template file. Without one, a host whose KVM is
    /// `kvm_pvm` (guest kernel code emulated) gets `nested-host` and the kernel command-line
    /// words Linux needs there (`noxsave clearcpuid=308,151`); `none` turns that off.
    #[arg(long)]
    cpu_template: Option<String>,
    /// Run jailed: this directory becomes `/` (kernel and initrd copied in, /dev/kvm made),
    /// in new mount and PID namespaces, as --uid/--gid, inherited descriptors closed. The
    /// API socket is created at the jail's root.
    #[arg(long)]
    jail: Option<PathBuf>,
    #[arg(long, default_value_t = 65534)]
    uid: u32,
    #[arg(long, default_value_t = 65534)]
    gid: u32,
    /// With --jail: a cgroup limit `FILE=VALUE` (e.g. `cpu.max=50000`, `pids.max=64`,
    /// `memory.limit_in_bytes=256M` on cgroup v1); repeatable.
    #[arg(long, requires = "jail")]
    cgroup: Vec<vmm::jail_cgroup::Limit>,
    /// Write metrics (JSON lines) here on FlushMetrics and at exit.
    #[arg(long)]
    metrics_path: Option<PathBuf>,
    /// Run without the per-thread seccomp filters (debugging only).
    #[arg(long)]
    no_seccomp: bool,
}

fn parse_disk(s: &str) -> Result<(PathBuf, bool), String> {
    match s.strip_suffix(":ro") {
        Some(p) => Ok((PathBuf::from(p), true)),
        None => Ok((PathBuf::from(s), false)),
    }
}

fn parse_net(s: &str) -> Result<(String, Option<String>), String> {
    match s.split_once(',') {
        Some((tap, mac)) => Ok((tap.into(), Some(mac.into()))),
        None => Ok((s.into(), None)),
    }
}

fn parse_fs(s: &str) -> Result<(String, PathBuf), String> {
    let (tag, socket) = s.split_once(',').ok_or("expected TAG,SOCKET")?;
    Ok((tag.to_owned(), PathBuf::from(socket)))
}

fn parse_vsock(s: &str) -> Result<(u32, PathBuf), String> {
    let (cid, path) = s.split_once(',').ok_or("expected CID,PATH")?;
    let cid = cid.parse().map_err(|_| format!("{cid:?} is not a CID"))?;
    Ok((cid, PathBuf::from(path)))
}

/// The descriptors behind guest memory (a jail must not close them under the mapping).
fn memory_fds(mem: &vmm::memory::GuestMem) -> Vec<i32> {
    use std::os::fd::AsRawFd;
    use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
    mem.iter().filter_map(|r| r.file_offset().map(|f| f.file().as_raw_fd())).collect()
}

fn fail(msg: String) -> ExitCode {
    eprintln!("ringfence-vmm: {msg}");
    ExitCode::from(1)
}

/// Logs through `vmm::logger`: stderr, or the file PUT /logger names, at its level.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter, fmt};
    let layer = fmt::layer()
        .with_writer(|| vmm::logger::Writer)
        .with_ansi(false)
        .with_filter(filter::filter_fn(|m| vmm::logger::enabled(m.level(), m.target())));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// What the command line itself describes: the machine flags, a kernel given with --kernel,
/// and the devices of --disk, --net, --vsock and --entropy.
fn command_line_resources(a: &Args) -> Result<VmResources, ResourceError> {
    let mut r = VmResources::default();
    r.set_machine_config(MachineConfig {
        vcpu_count: a.vcpus,
        mem_size_mib: a.mem,
        ..Default::default()
    })?;
    if let Some(k) = &a.kernel {
        r.set_boot_source(BootSource {
            kernel_image_path: k.clone(),
            boot_args: None,
            initrd_path: a.initrd.clone(),
        })?;
    }
    for (i, (path, read_only)) in a.disk.iter().enumerate() {
        let d = Drive {
            drive_id: format!("disk{i}"),
            path_on_host: path.clone(),
            is_root_device: false,
            is_read_only: *read_only,
            partuuid: None,
            cache_type: None,
            io_engine: None,
            rate_limiter: None,
        };
        r.put_drive(d, None)?;
    }
    for (i, (tap, mac)) in a.net.iter().enumerate() {
        let iface = NetworkInterface {
            iface_id: format!("eth{i}"),
            host_dev_name: tap.clone(),
            guest_mac: mac.clone(),
            rx_rate_limiter: None,
            tx_rate_limiter: None,
        };
        r.put_network_interface(iface, None)?;
    }
    if let Some((guest_cid, uds_path)) = a.vsock.clone() {
        r.set_vsock(Vsock { vsock_id: None, guest_cid, uds_path })?;
    }
    if a.entropy {
        r.set_entropy(Entropy::default());
    }
    for (i, (tag, socket)) in a.fs.iter().enumerate() {
        let fs = FsDevice {
            fs_id: format!("fs{i}"),
            tag: tag.clone(),
            socket: socket.clone(),
            num_request_queues: 1,
            queue_size: 1024,
        };
        r.put_fs(fs, None)?;
    }
    Ok(r)
}

/// The CPU template the command line chose, read before a jail hides its file: `None` when
/// it chose none (the machine configuration or the host then decide).
fn command_line_template(a: &Args) -> Result<Option<Template>, String> {
    match a.cpu_template.as_deref() {
        None => Ok(None),
        Some("none") => Ok(Some(Template::default())),
        Some("nested-host") => Ok(Some(Template::nested_host())),
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Template::from_json(&t).map_err(|e| e.to_string()))
            .map(Some)
            .map_err(|e| format!("CPU template {path}: {e}")),
    }
}

fn main() -> ExitCode {
    init_logging();
    match run(Args::parse()) {
        Ok(code) => code,
        Err(msg) => fail(msg),
    }
}

fn run(a: Args) -> Result<ExitCode, String> {
    let serial_file = match a.serial.as_str() {
        "stdout" => None,
        path => {
            Some(std::fs::File::create(path).map_err(|e| format!("serial output {path}: {e}"))?)
        }
    };
    // Opened before a jail: it must stay open through it.
    let mut keep_fds: Vec<i32> = serial_file.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    let serial: Box<dyn std::io::Write + Send> = match serial_file {
        None => Box::new(std::io::stdout()),
        Some(f) => Box::new(f),
    };
    // Looked at before a jail hides /sys.
    let host = vmm::host::HostKvm::detect();
    let template = command_line_template(&a)?;
    let mut resources = command_line_resources(&a).map_err(|e| e.to_string())?;
    if let Some(path) = &a.config_file {
        let file = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| VmResources::from_json(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        resources.machine_config = file.machine_config.clone();
        resources.add(file).map_err(|e| format!("config file {}: {e}", path.display()))?;
    }
    if a.kernel.is_none() && a.config_file.is_none() && a.api_sock.is_none() && a.restore.is_none()
    {
        return Err("give --kernel, --config-file, --restore or --api-sock".into());
    }
    // A restore from the command line: the snapshot read and its memory mapped now, before a
    // jail hides their files; the devices are the snapshot's.
    let mut restore = match &a.restore {
        Some(path) => {
            let params = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<LoadParams>(&t).map_err(|e| e.to_string()))
                .map_err(|e| format!("restore file {}: {e}", path.display()))?;
            let r = Restore::open(&params).map_err(|e| e.to_string())?;
            resources = r.state.resources.clone();
            keep_fds.extend(memory_fds(&r.memory));
            Some(r)
        }
        None => None,
    };
    if let Some(p) = &a.metrics_path {
        vmm::metrics::set_sink(p).map_err(|e| format!("metrics {}: {e}", p.display()))?;
        keep_fds.extend(vmm::metrics::sink_fd());
    }
    let mut api_sock = a.api_sock.clone();
    if let Some(root) = &a.jail {
        // Inside, the kernel (and initrd) sit at the root; the API socket too.
        let mut files = Vec::new();
        // (A restored machine boots nothing: its kernel is in its memory.)
        if let (Some(b), None) = (&resources.boot_source, &restore) {
            files.push(b.kernel_image_path.clone());
            files.extend(b.initrd_path.clone());
        }
        let jail = vmm::jail::JailConfig {
            root: root.clone(),
            uid: a.uid,
            gid: a.gid,
            files,
            // Disks, and the sockets of shared directories' daemons, are bound in.
            disks: resources
                .drives
                .iter()
                .map(|d| d.path_on_host.clone())
                .chain(resources.fs.iter().map(|f| f.socket.clone()))
                .collect(),
            tun: !resources.network_interfaces.is_empty() || a.api_sock.is_some(),
            cgroups: a.cgroup.clone(),
            keep_fds,
        };
        let (inside, disks_inside) = vmm::jail::enter(&jail).map_err(|e| e.to_string())?;
        let mut inside_paths = disks_inside.into_iter();
        for (d, p) in resources.drives.iter_mut().zip(inside_paths.by_ref()) {
            d.path_on_host = p;
        }
        for (f, p) in resources.fs.iter_mut().zip(inside_paths) {
            f.socket = p;
        }
        if let (Some(b), None) = (resources.boot_source.as_mut(), &restore) {
            b.kernel_image_path = inside[0].clone();
            b.initrd_path = inside.get(1).cloned();
        }
        api_sock = api_sock.and_then(|s| s.file_name().map(|n| std::path::Path::new("/").join(n)));
    }
    let exit = ExitSignal::new().map_err(|e| e.to_string())?;
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
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut sig = 0;
                // SAFETY: waiting on the set blocked above.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    exit.raise(ExitReason::Signal(sig));
                }
            })
            .map_err(|e| e.to_string())?;
    }
    let control = Arc::new(vmm::control::MachineControl::default());
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    let starting_now = resources.boot_source.is_some();
    if let (Some(sock), false) = (&api_sock, a.no_api) {
        let mut api = Api::new(resources.clone());
        if starting_now {
            api.set_started();
            api.set_paused(restore.as_ref().is_some_and(|r| !r.resume));
        }
        let api = Arc::new(Mutex::new(api));
        vmm::api::server::serve(sock, api, start_tx, control.clone(), !a.no_seccomp)
            .map_err(|e| format!("API socket {}: {e}", sock.display()))?;
    }
    // Until InstanceStart, a snapshot to load, or a signal. A snapshot that cannot be loaded
    // is answered with why, and the VMM waits on.
    let mut loaded = None;
    if !starting_now {
        loop {
            if exit.raised() {
                return Ok(ExitCode::from(0));
            }
            match start_rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(Start::Boot(r)) => {
                    resources = r;
                    break;
                }
                Ok(Start::Restore(params, reply)) => match Restore::open(&params) {
                    Ok(r) => {
                        resources = r.state.resources.clone();
                        restore = Some(r);
                        loaded = Some(reply);
                        break;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                },
                Err(_) => {}
            }
        }
    }
    if let (Some(b), None) = (resources.boot_source.as_mut(), &restore) {
        b.boot_args.get_or_insert_with(|| a.cmdline.clone());
    }
    if a.huge_pages {
        resources.machine_config.huge_pages = vmm::api::HugePages::TwoMiB;
    }
    // A console on stdout reads stdin too; a terminal there goes raw until the end.
    let on_stdout = a.serial == "stdout";
    let opts = MachineOptions {
        serial,
        serial_input: on_stdout.then_some(0),
        seccomp: !a.no_seccomp,
        memfd: a.memfd,
        template,
        control,
    };
    let built = resources.machine(opts, host).map_err(|e| e.to_string());
    if let Some(reply) = loaded {
        let _ = reply.send(built.as_ref().map(|_| ()).map_err(Clone::clone));
    }
    let (config, mut program) = built?;
    if let Some(r) = restore {
        program = Program::Restore(Box::new(r));
    }
    let _raw = if on_stdout { vmm::terminal::RawTerminal::enter() } else { None };
    let reason = vmm::vm::run_with(config, program, exit).map_err(|e| e.to_string())?;
    if !matches!(reason, ExitReason::Reset | ExitReason::Shutdown | ExitReason::Halt) {
        eprintln!("ringfence-vmm: the machine ended: {reason:?}");
    }
    if let Err(e) = vmm::metrics::flush() {
        eprintln!("ringfence-vmm: writing metrics: {e}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(ExitCode::from(reason.exit_code().clamp(0, 255) as u8))
}
