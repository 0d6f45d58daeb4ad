//! The `microvm` handler: one Linux guest per pod sandbox, like Kata Containers. The VMM
//! (`ringfence-vmm`) runs jailed, under its seccomp filters, in the pod's network namespace;
//! the guest is the project's kernel with the guest agent as PID 1, which makes and runs the
//! containers. Images and volumes reach the running guest over virtio-fs (one virtiofsd per
//! sandbox, sharing a directory where they are bound read-only or read-write); the guest takes
//! the pod's address through a tap joined to the pod's veth.
//!
//! - [`guest`]: one VMM process and its agent: start, boot watch, shutdown, console.
//! - [`launch`]: the VMM process as data (its resources and jail) and its one command line.
//! - [`share`]: the shared directory and its daemon.
//! - [`network`]: the pod's namespace handed to the guest.
//! - [`sandbox`]: a running sandbox: containers and processes through the agent.
//! - [`template`]: snapshot templates pods start from as clones, instead of booting.

pub mod guest;
pub mod launch;
pub mod network;
pub mod sandbox;
pub mod share;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use guest_agent::client::{self, AgentClient};
use guest_agent::proto;
use vmm::api::{BootSource, Entropy, FsDevice, MachineConfig, NetworkInterface, Vsock};
use vmm::resources::VmResources;

use super::{Launcher, RunningSandbox, SandboxHandler, SandboxSetup};
use crate::cri::CriError;
use launch::{Jail, Start, VmmLaunch};
use sandbox::MicrovmSandbox;
use template::{Template, TemplateKey, Templates};

/// What the handler boots and with what.
#[derive(Debug, Clone)]
pub struct MicrovmConfig {
    pub vmm: Launcher,
    pub virtiofsd: Launcher,
    /// The guest kernel and the agent's initramfs; `None`: the last `ringfence image kernel`
    /// build, looked up when a sandbox starts (its ELF `vmlinux`, booted at its PVH entry:
    /// no decompression, so less guest memory touched and a quicker boot than the bzImage).
    pub guest: Option<(PathBuf, PathBuf)>,
    /// Where `ringfence image kernel` keeps its builds.
    pub guest_cache: PathBuf,
    /// How long a guest may take to boot to its agent.
    pub boot_timeout: Duration,
    /// The unprivileged user and group the jailed VMM runs as.
    pub uid: u32,
    pub gid: u32,
    /// Guest memory on top of a pod's memory limit: the guest kernel and agent.
    pub overhead_mib: u64,
    /// Guest memory of a pod without a memory limit.
    pub default_memory_mib: u64,
    /// Where snapshot templates are kept; `None`: every pod's guest boots.
    pub templates: Option<PathBuf>,
}

impl MicrovmConfig {
    /// Guest memory a pod gets on top of its limit: the guest kernel and agent.
    pub const GUEST_OVERHEAD_MIB: u64 = 64;

    /// A node's configuration: its VMM the `ringfence-vmm` beside `exe`, jailed as nobody,
    /// sharing through `virtiofsd`, booting `guest` (`None`: the last `ringfence image
    /// kernel` build) within `boot_timeout`; 256 MiB guests for pods without a limit; no
    /// templates.
    pub fn beside(
        exe: &Path,
        virtiofsd: &Path,
        guest: Option<(PathBuf, PathBuf)>,
        boot_timeout: Duration,
    ) -> MicrovmConfig {
        MicrovmConfig {
            vmm: Launcher::new(exe.with_file_name("ringfence-vmm"), &[]),
            virtiofsd: Launcher::new(virtiofsd, &[]),
            guest,
            guest_cache: images::guest::cache_dir(),
            boot_timeout,
            uid: 65534,
            gid: 65534,
            overhead_mib: Self::GUEST_OVERHEAD_MIB,
            default_memory_mib: 256,
            templates: None,
        }
    }

    /// The guest to boot: the configured one, or the last build recorded in the cache.
    pub fn guest(&self) -> Result<(PathBuf, PathBuf), CriError> {
        let missing = |why: String| {
            CriError::Sandbox(format!(
                "no microVM guest kernel ({why}): build it on this node with `ringfence image \
                 kernel`"
            ))
        };
        let (kernel, initrd) = match &self.guest {
            Some(g) => g.clone(),
            None => {
                let record = self.guest_cache.join(images::guest::CURRENT);
                let text = std::fs::read_to_string(&record)
                    .map_err(|e| missing(format!("{}: {e}", record.display())))?;
                let mut lines = text.lines().map(PathBuf::from);
                match (lines.next(), lines.next()) {
                    (Some(k), Some(i)) => (images::guest::pvh_kernel(&k), i),
                    _ => return Err(missing(format!("{} is incomplete", record.display()))),
                }
            }
        };
        for f in [&kernel, &initrd] {
            if !f.is_file() {
                return Err(missing(format!("{} is missing", f.display())));
            }
        }
        Ok((kernel, initrd))
    }

    /// Guest memory for a pod: its limit plus the guest's own, or the default.
    pub fn guest_memory_mib(&self, limit_mib: Option<u64>) -> u64 {
        match limit_mib {
            Some(l) => l + self.overhead_mib,
            None => self.default_memory_mib,
        }
    }
}

pub struct MicrovmHandler {
    config: MicrovmConfig,
    templates: Option<Arc<Templates>>,
    /// Drives the agents' connections; sandbox calls block on it from the runtime's threads.
    rt: Option<tokio::runtime::Runtime>,
}

/// Each clone's generation: distinct on this node (seeded from the clock, so also across
/// restarts).
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn next_generation() -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    let _ = GENERATION.compare_exchange(0, seed, Ordering::SeqCst, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst).max(1)
}

/// The guest being started for a sandbox, before it has answered.
struct Starting {
    guest: guest::GuestVm,
    /// Restored from this template rather than booted.
    template: Option<Template>,
}

impl MicrovmHandler {
    pub fn new(config: MicrovmConfig) -> std::io::Result<MicrovmHandler> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("microvm-agents")
            .enable_all()
            .build()?;
        let templates = config.templates.clone().map(|root| Arc::new(Templates::new(root)));
        Ok(MicrovmHandler { config, templates, rt: Some(rt) })
    }

    /// Whether a snapshot template is being built in the background.
    pub fn building_templates(&self) -> bool {
        self.templates.as_ref().is_some_and(|t| t.building())
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, CriError> {
        self.rt
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| CriError::Sandbox("the microvm handler is shutting down".into()))
    }
}

impl Drop for MicrovmHandler {
    fn drop(&mut self) {
        // Dropped possibly inside another runtime: never block on the workers.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Memory the host can still give, MiB.
fn available_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

/// Step times from the guest as the runtime logs them: `name:ms,name:ms`.
fn step_list(steps: &[proto::StepTime]) -> String {
    let each: Vec<String> =
        steps.iter().map(|s| format!("{}:{}", s.step, s.micros / 1000)).collect();
    each.join(",")
}

/// The kernel command line of a pod's guest.
fn cmdline(hostname: &str, iface: Option<&network::GuestInterface>) -> String {
    let mut c = format!(
        "console=ttyS0 reboot=k panic=1 io_delay=none ringfence.share={} \
         ringfence.hostname={hostname}",
        share::TAG
    );
    if let Some(i) = iface {
        c.push(' ');
        c.push_str(&i.cmdline());
    }
    c
}

impl SandboxHandler for MicrovmHandler {
    fn name(&self) -> &'static str {
        "microvm"
    }

    fn start(&self, s: &SandboxSetup) -> Result<Box<dyn RunningSandbox>, CriError> {
        let c = &self.config;
        let (kernel, initrd) = c.guest()?;
        let memory = c.guest_memory_mib(s.memory_limit_mib);
        if let Some(free) = available_mib().filter(|free| memory > *free) {
            return Err(CriError::Sandbox(format!(
                "the pod's guest needs {memory} MiB of memory; this node has {free} MiB available"
            )));
        }
        let rt = self.handle()?;
        let io = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| CriError::Sandbox(format!("{what}: {e}"))
        };
        let jail = s.dir.join("jail");
        std::fs::create_dir_all(&jail).map_err(io("creating the VMM's jail"))?;
        let began = std::time::Instant::now();
        let share = share::Share::start(
            &c.virtiofsd,
            &s.dir.join("share"),
            &s.dir.join("fs.sock"),
            &s.dir.join("virtiofsd.log"),
        )?;
        let share_ms = began.elapsed().as_millis() as u64;
        let iface = s.network.map(|n| network::attach(n, c.uid, c.gid)).transpose()?;
        let network_ms = began.elapsed().as_millis() as u64 - share_ms;
        let vcpus = s.cpus().unwrap_or(1).clamp(1, 32) as u8;
        let key = TemplateKey { kernel, initrd, memory_mib: memory, vcpus };
        let jail_config = Jail {
            root: jail.clone(),
            uid: c.uid,
            gid: c.gid,
            cgroups: s.cpu.map(|l| l.jail_limits()).unwrap_or_default(),
        };
        // A clone of the template where there is one (and the pod has a network to give
        // it); a boot otherwise, and the fallback when a restore fails.
        let mut started = None;
        if let (Some(template), Some(i)) = (self.template_for(&key), iface.as_ref()) {
            match self.restore(s, &rt, &template, &jail_config, &share, i) {
                Ok((guest, agent)) => {
                    if let Some(t) = &self.templates {
                        t.restore_succeeded(&key, &c.vmm.program);
                    }
                    started = Some((Starting { guest, template: Some(template) }, agent))
                }
                Err(e) => {
                    tracing::warn!(sandbox = s.id, "starting from the template: {e}; booting");
                    if let Some(t) = &self.templates {
                        t.restore_failed(&key, &c.vmm.program, &e.to_string());
                    }
                }
            }
        }
        let (starting, (agent, health)) = match started {
            Some((starting, answered)) => (starting, answered),
            None => {
                let mut guest = self.boot(s, &key, &jail_config, &share, iface.as_ref())?;
                match rt.block_on(guest.wait_agent(c.boot_timeout)) {
                    Ok(a) => {
                        self.ensure_template(&key);
                        (Starting { guest, template: None }, a)
                    }
                    Err(e) => {
                        guest.kill();
                        let vmm_log = read_tail(&s.dir.join("vmm.log"));
                        return Err(CriError::Sandbox(format!(
                            "the guest did not come up: {e}{vmm_log}"
                        )));
                    }
                }
            }
        };
        tracing::info!(
            sandbox = s.id,
            kernel = health.kernel_release,
            restored = starting.template.is_some(),
            boot_ms = starting.guest.elapsed().as_millis() as u64,
            guest_uptime_ms = health.uptime_ms,
            share_ms,
            network_ms,
            total_ms = began.elapsed().as_millis() as u64,
            "microVM guest up"
        );
        let mut guest = starting.guest;
        // Network and IPC ones alike: the guest's kernel is the pod's own.
        let network = s.sysctls.iter().map(|c| (c.path().to_owned(), c.value().to_owned()));
        let ipc =
            s.ipc_sysctls.iter().map(|c| (format!("kernel/{}", c.sysctl.name()), c.value.clone()));
        let sysctls: Vec<proto::Sysctl> =
            network.chain(ipc).map(|(path, value)| proto::Sysctl { path, value }).collect();
        if !sysctls.is_empty() {
            let mut a = agent.clone();
            if let Err(e) = rt.block_on(a.set_sysctls(proto::SetSysctlsRequest { sysctls })) {
                guest.kill();
                return Err(CriError::Invalid(format!("the pod's sysctls: {}", e.message())));
            }
        }
        Ok(Box::new(MicrovmSandbox::new(rt, agent, guest, share)))
    }

    fn sets_sysctls(&self) -> bool {
        true
    }
}

impl MicrovmHandler {
    /// The ready template for `key`, if templates are on and it is built.
    fn template_for(&self, key: &TemplateKey) -> Option<Template> {
        self.templates.as_ref()?.ready(key, &self.config.vmm.program)
    }

    /// After a guest of `key`'s shape booted: its template is built in the background if
    /// there is none yet (after, not during, the boot a pod waits for).
    fn ensure_template(&self, key: &TemplateKey) {
        let Some(templates) = &self.templates else { return };
        let vmm = &self.config.vmm.program;
        if templates.ready(key, vmm).is_none() && templates.failure(key, vmm).is_none() {
            templates.build_in_background(key.clone(), self.config.clone());
        }
    }

    /// Starts the sandbox's VMM booting the guest.
    fn boot(
        &self,
        s: &SandboxSetup,
        key: &TemplateKey,
        jail: &Jail,
        share: &share::Share,
        iface: Option<&network::GuestInterface>,
    ) -> Result<guest::GuestVm, CriError> {
        let nic = iface.map(|i| (network::TAP, i.mac.as_str()));
        let resources = guest_resources(key, cmdline(s.hostname, iface), nic, share.socket());
        self.spawn(s, Start::Boot(resources), jail)
    }

    fn spawn(
        &self,
        s: &SandboxSetup,
        start: Start,
        jail: &Jail,
    ) -> Result<guest::GuestVm, CriError> {
        let launch = VmmLaunch {
            vmm: self.config.vmm.clone(),
            start,
            api: false,
            jail: Some(jail.clone()),
            console: s.dir.join("console.log"),
            netns: s.network.map(|n| n.netns_path.clone()),
        };
        let command = launch
            .command(s.dir)
            .map_err(|e| CriError::Sandbox(format!("preparing the VMM: {e}")))?;
        guest::GuestVm::spawn(command, sandbox::vsock_path(&jail.root), Some(launch.console))
            .map_err(|e| CriError::Sandbox(e.to_string()))
    }

    /// Starts the sandbox's VMM as a clone of `template` (its own tap, vsock socket and
    /// virtiofsd), then gives the guest its identity: entropy, clock, host name, the share,
    /// the pod's address and MAC.
    fn restore(
        &self,
        s: &SandboxSetup,
        rt: &tokio::runtime::Handle,
        template: &Template,
        jail: &Jail,
        share: &share::Share,
        iface: &network::GuestInterface,
    ) -> Result<(guest::GuestVm, (AgentClient, proto::HealthResponse)), CriError> {
        use vmm::snapshot::params::{BackendType, FsOverride, MemBackend, NetworkOverride};
        let params = vmm::snapshot::LoadParams {
            snapshot_path: template.snapshot.clone(),
            mem_backend: Some(MemBackend {
                backend_type: BackendType::File,
                backend_path: template.memory.clone(),
            }),
            mem_file_path: None,
            enable_diff_snapshots: false,
            resume_vm: true,
            network_overrides: vec![NetworkOverride {
                iface_id: "eth0".into(),
                host_dev_name: network::TAP.into(),
            }],
            vsock_override: None,
            fs_overrides: vec![FsOverride { fs_id: "pod".into(), socket: share.socket().into() }],
        };
        let began = std::time::Instant::now();
        let mut guest = self.spawn(s, Start::Restore(params), jail)?;
        let identity = client::CloneIdentity {
            generation: next_generation(),
            hostname: s.hostname.to_owned(),
            share_tag: share::TAG.into(),
        };
        let interface = iface.request();
        let answered = rt.block_on(async {
            let (mut agent, health) = guest
                .wait_agent(template::RESTORE_TIMEOUT)
                .await
                .map_err(|e| CriError::Sandbox(e.to_string()))?;
            let agent_ms = began.elapsed().as_millis() as u64;
            // Independent calls, sent together on the one connection: each round trip costs
            // hundreds of milliseconds where guest kernel code is emulated.
            let mut other = agent.clone();
            let (refreshed, configured) = tokio::join!(
                client::refresh(&mut agent, &identity),
                other.configure_interface(interface)
            );
            let identity_ms = began.elapsed().as_millis() as u64 - agent_ms;
            let refreshed =
                refreshed.map_err(|e| CriError::Sandbox(format!("refreshing the clone: {e}")))?;
            let configured = configured
                .map_err(|e| CriError::Sandbox(format!("the clone's interface: {}", e.message())))?
                .into_inner();
            // Where a clone's start goes: the VMM's restore until the agent answers, then
            // the guest taking its identity and address.
            tracing::info!(
                sandbox = s.id,
                agent_ms,
                identity_ms,
                refresh_steps_ms = step_list(&refreshed.steps),
                interface_steps_ms = step_list(&configured.steps),
                "microVM clone ready"
            );
            Ok::<_, CriError>((agent, health))
        });
        match answered {
            Ok(a) => Ok((guest, a)),
            Err(e) => {
                guest.kill();
                Err(CriError::Sandbox(format!("{e}{}", read_tail(&s.dir.join("vmm.log")))))
            }
        }
    }
}

/// The machine of a pod's guest (or of a template): `key`'s kernel and shape, booted with
/// `cmdline`, an `eth0` on tap `nic.0` with MAC `nic.1`, vsock at the jail's root, entropy,
/// and the share served at `share_socket`.
fn guest_resources(
    key: &TemplateKey,
    cmdline: String,
    nic: Option<(&str, &str)>,
    share_socket: &Path,
) -> VmResources {
    VmResources {
        boot_source: Some(BootSource {
            kernel_image_path: key.kernel.clone(),
            boot_args: Some(cmdline),
            initrd_path: Some(key.initrd.clone()),
        }),
        machine_config: MachineConfig {
            vcpu_count: key.vcpus,
            mem_size_mib: key.memory_mib,
            ..Default::default()
        },
        drives: Vec::new(),
        network_interfaces: nic
            .iter()
            .map(|(tap, mac)| NetworkInterface {
                iface_id: "eth0".into(),
                host_dev_name: (*tap).into(),
                guest_mac: Some((*mac).into()),
                rx_rate_limiter: None,
                tx_rate_limiter: None,
            })
            .collect(),
        // Inside the jail, at its root.
        vsock: Some(Vsock { vsock_id: None, guest_cid: 3, uds_path: PathBuf::from("/v.sock") }),
        entropy: Some(Entropy::default()),
        fs: vec![FsDevice {
            fs_id: "pod".into(),
            tag: share::TAG.into(),
            socket: share_socket.to_owned(),
            num_request_queues: 1,
            queue_size: 1024,
        }],
    }
}

/// The last lines of a log, introduced, or nothing.
fn read_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("\nthe VMM said:\n{}", lines[lines.len().saturating_sub(10)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cache: &Path) -> MicrovmConfig {
        MicrovmConfig {
            vmm: Launcher::new("/nonexistent/ringfence-vmm", &[]),
            virtiofsd: Launcher::new("/nonexistent/virtiofsd", &[]),
            guest: None,
            guest_cache: cache.to_owned(),
            boot_timeout: Duration::from_secs(1),
            uid: 65534,
            gid: 65534,
            overhead_mib: 64,
            default_memory_mib: 256,
            templates: None,
        }
    }

    #[test]
    fn a_missing_guest_says_which_command_builds_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = config(dir.path()).guest().unwrap_err().to_string();
        assert!(e.contains("ringfence image kernel"), "{e}");
        std::fs::write(dir.path().join(images::guest::CURRENT), "/nonexistent/bzImage\n/x\n")
            .unwrap();
        let e = config(dir.path()).guest().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/bzImage is missing"), "{e}");
        let (k, i) = (dir.path().join("bzImage"), dir.path().join("initrd"));
        std::fs::write(&k, "k").unwrap();
        std::fs::write(&i, "i").unwrap();
        let record = format!("{}\n{}\n", k.display(), i.display());
        std::fs::write(dir.path().join(images::guest::CURRENT), record).unwrap();
        assert_eq!(config(dir.path()).guest().unwrap(), (k, i));
    }

    #[test]
    fn guest_memory_is_the_limit_plus_the_guests_own() {
        let c = config(Path::new("/"));
        assert_eq!(c.guest_memory_mib(Some(128)), 192);
        assert_eq!(c.guest_memory_mib(None), 256);
    }

    #[test]
    fn the_guest_is_told_its_share_name_and_address() {
        let i = network::GuestInterface {
            mac: "02:00:00:00:00:01".into(),
            address: "10.88.0.7".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.88.0.1".parse().unwrap()),
        };
        let c = cmdline("web-1", Some(&i));
        for w in ["ringfence.share=pod", "ringfence.hostname=web-1", "ringfence.ip=10.88.0.7/24"] {
            assert!(c.split_whitespace().any(|x| x == w), "{c}");
        }
    }
}
