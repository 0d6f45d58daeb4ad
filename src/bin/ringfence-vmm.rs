//! `ringfence-vmm`: the microVMM as a process of its own, small enough to start in a few
//! milliseconds and a few MiB (what `ringfence vm run` executes). Same arguments as
//! `ringfence vm run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use std::sync::{Arc, Mutex};

use vmm::api::{
    Api, BootSource, Drive, Entropy, InstanceConfig, MachineConfig, NetworkInterface, Vsock,
};
use vmm::vm::{ExitReason, ExitSignal, Program, VmConfig};

#[derive(Parser)]
#[command(
    name = "ringfence-vmm",
    about = "Boot a kernel in a KVM microVM",
    args_override_self = true
)]
struct Args {
    /// ELF (with or without a PVH note) or bzImage; boots right away, without an API.
    #[arg(long, conflicts_with_all = ["api_sock", "config_file"])]
    kernel: Option<PathBuf>,
    /// Serve the Firecracker-compatible API here and boot on `InstanceStart`.
    #[arg(long)]
    api_sock: Option<PathBuf>,
    /// Boot from a configuration file (Firecracker's JSON shape) right away.
    #[arg(long)]
    config_file: Option<PathBuf>,
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

fn parse_vsock(s: &str) -> Result<(u32, PathBuf), String> {
    let (cid, path) = s.split_once(',').ok_or("expected CID,PATH")?;
    let cid = cid.parse().map_err(|_| format!("{cid:?} is not a CID"))?;
    Ok((cid, PathBuf::from(path)))
}

/// The API's machine configuration onto the VMM's.
fn apply(config: &mut VmConfig, m: &MachineConfig) {
    config.vcpus = m.vcpu_count;
    config.memory_bytes = m.mem_size_mib << 20;
    if m.huge_pages == vmm::api::HugePages::TwoMiB {
        config.memory_backing = vmm::memory::Backing::HugePages2M;
    }
    match m.cpu_template.as_deref() {
        Some("nested-host") => config.template = vmm::cpuid::Template::nested_host(),
        Some(_) => config.template = Default::default(),
        // What the command line chose (or the host needs) stays.
        None => {}
    }
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

fn main() -> ExitCode {
    init_logging();
    let a = Args::parse();
    let serial: Box<dyn std::io::Write + Send> = match a.serial.as_str() {
        "stdout" => Box::new(std::io::stdout()),
        path => match std::fs::File::create(path) {
            Ok(f) => Box::new(f),
            Err(e) => return fail(format!("serial output {path}: {e}")),
        },
    };
    // Looked at before a jail hides /sys.
    let host = vmm::host::HostKvm::detect();
    let template = match a.cpu_template.as_deref() {
        None => host.template().unwrap_or_default(),
        Some("none") => Default::default(),
        Some("nested-host") => vmm::cpuid::Template::nested_host(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| vmm::cpuid::Template::from_json(&t).map_err(|e| e.to_string()))
        {
            Ok(t) => t,
            Err(e) => return fail(format!("CPU template {path}: {e}")),
        },
    };
    // Devices from the command line (a config file or the API bring their own).
    let mut drives: Vec<Drive> = Vec::new();
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
        if let Err(e) = d.check(None) {
            return fail(e);
        }
        drives.push(d);
    }
    let mut ifaces: Vec<NetworkInterface> = Vec::new();
    for (i, (tap, mac)) in a.net.iter().enumerate() {
        let iface = NetworkInterface {
            iface_id: format!("eth{i}"),
            host_dev_name: tap.clone(),
            guest_mac: mac.clone(),
            rx_rate_limiter: None,
            tx_rate_limiter: None,
        };
        if let Err(e) = iface.check(None) {
            return fail(e);
        }
        ifaces.push(iface);
    }
    let mut vsock =
        a.vsock.clone().map(|(guest_cid, uds_path)| Vsock { vsock_id: None, guest_cid, uds_path });
    if let Some(Err(e)) = vsock.as_ref().map(Vsock::check) {
        return fail(e);
    }
    let mut entropy = a.entropy.then(Entropy::default);
    // What to boot, when it is known up front.
    let (mut boot, machine) = match (&a.kernel, &a.config_file, &a.api_sock) {
        (Some(k), _, _) => (
            Some(BootSource {
                kernel_image_path: k.clone(),
                boot_args: None,
                initrd_path: a.initrd.clone(),
            }),
            None,
        ),
        (None, Some(path), _) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| InstanceConfig::parse(&t));
            match parsed {
                Ok(c) => {
                    drives.extend(c.drives);
                    ifaces.extend(c.network_interfaces);
                    vsock = vsock.or(c.vsock);
                    entropy = entropy.or(c.entropy);
                    (Some(c.boot_source), Some(c.machine_config))
                }
                Err(e) => return fail(format!("config file {}: {e}", path.display())),
            }
        }
        (None, None, Some(_)) => (None, None),
        (None, None, None) => return fail("give --kernel, --config-file or --api-sock".into()),
    };
    if let Some(p) = &a.metrics_path
        && let Err(e) = vmm::metrics::set_sink(p)
    {
        return fail(format!("metrics {}: {e}", p.display()));
    }
    let mut api_sock = a.api_sock.clone();
    if let Some(root) = &a.jail {
        // Inside, the kernel (and initrd) sit at the root; the API socket too.
        let mut files = Vec::new();
        if let Some(b) = &boot {
            files.push(b.kernel_image_path.clone());
            files.extend(b.initrd_path.clone());
        }
        let jail = vmm::jail::JailConfig {
            root: root.clone(),
            uid: a.uid,
            gid: a.gid,
            files,
            disks: drives.iter().map(|d| d.path_on_host.clone()).collect(),
            tun: !ifaces.is_empty() || a.api_sock.is_some(),
            cgroups: a.cgroup.clone(),
            keep_fds: Vec::new(),
        };
        let (inside, disks_inside) = match vmm::jail::enter(&jail) {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        for (d, p) in drives.iter_mut().zip(disks_inside) {
            d.path_on_host = p;
        }
        if let Some(b) = boot.as_mut() {
            b.kernel_image_path = inside[0].clone();
            b.initrd_path = inside.get(1).cloned();
        }
        api_sock = api_sock.and_then(|s| s.file_name().map(|n| std::path::Path::new("/").join(n)));
    }
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
    config.template = template;
    config.seccomp = !a.no_seccomp;
    config.memory_backing = match (a.huge_pages, a.memfd) {
        (true, _) => vmm::memory::Backing::HugePages2M,
        (false, true) => vmm::memory::Backing::Memfd,
        (false, false) => vmm::memory::Backing::Anonymous,
    };
    let mut template_given = a.cpu_template.is_some();
    if let Some(m) = &machine {
        apply(&mut config, m);
        template_given |= m.cpu_template.is_some();
    }
    let api = Arc::new(Mutex::new(Api::default()));
    let (start_tx, start_rx) = std::sync::mpsc::channel();
    if let (Some(sock), false) = (&api_sock, a.no_api) {
        if boot.is_some() {
            api.lock().unwrap_or_else(|e| e.into_inner()).set_started();
        }
        let control = config.control.clone();
        if let Err(e) = vmm::api::server::serve(sock, api.clone(), start_tx, control, !a.no_seccomp)
        {
            return fail(format!("API socket {}: {e}", sock.display()));
        }
    }
    let boot = match boot {
        Some(b) => b,
        None => {
            // Until InstanceStart (or a signal).
            let waiter = {
                let exit = exit.clone();
                std::thread::spawn(move || {
                    loop {
                        if exit.raised() {
                            return None;
                        }
                        if let Ok(v) = start_rx.recv_timeout(std::time::Duration::from_millis(50)) {
                            return Some(v);
                        }
                    }
                })
            };
            match waiter.join().ok().flatten() {
                Some(c) => {
                    apply(&mut config, &c.machine_config);
                    template_given |= c.machine_config.cpu_template.is_some();
                    drives.extend(c.drives);
                    ifaces.extend(c.network_interfaces);
                    vsock = vsock.or(c.vsock);
                    entropy = entropy.or(c.entropy);
                    c.boot_source
                }
                None => return ExitCode::from(0),
            }
        }
    };
    if let Some(args) = &boot.boot_args {
        config.cmdline = args.clone();
    }
    if !template_given && host == vmm::host::HostKvm::Pvm {
        config.cmdline = host.adapt_cmdline(&config.cmdline);
        tracing::info!(
            "this host's KVM is kvm_pvm (guest kernel code is emulated): CPU template \
             nested-host and `noxsave clearcpuid=308,151` applied (--cpu-template none turns \
             this off)"
        );
    }
    if let Some(i) = &boot.initrd_path {
        config.initrd = Some(i.clone());
    }
    match vmm::attach::devices(&drives, &ifaces, vsock.as_ref(), entropy.as_ref()) {
        Ok(attached) => {
            config.devices = attached.devices;
            if !attached.cmdline.is_empty() {
                config.cmdline = format!("{} {}", config.cmdline, attached.cmdline);
            }
        }
        Err(e) => return fail(e.to_string()),
    }
    // A console on stdout reads stdin too; a terminal there goes raw until the end.
    let _raw = if a.serial == "stdout" {
        config.serial_input = Some(0);
        vmm::terminal::RawTerminal::enter()
    } else {
        None
    };
    let reason = match vmm::vm::run_with(config, Program::Kernel(boot.kernel_image_path), exit) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string()),
    };
    if !matches!(reason, ExitReason::Reset | ExitReason::Shutdown | ExitReason::Halt) {
        eprintln!("ringfence-vmm: the machine ended: {reason:?}");
    }
    if let Err(e) = vmm::metrics::flush() {
        eprintln!("ringfence-vmm: writing metrics: {e}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    ExitCode::from(reason.exit_code().clamp(0, 255) as u8)
}
