//! `ringfence vm ...`: the microVMM for humans. `vm run` executes the small `ringfence-vmm`
//! binary installed next to this one (as Firecracker is its own process), with the same
//! arguments; with `-- CMD ARGS...` it runs the command through the guest agent instead
//! ([`super::vm_agent`]).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use guest_agent::proto;

#[derive(Subcommand)]
pub enum VmCommand {
    /// Boots a kernel (ELF, with a PVH note or not, or bzImage) and runs until the guest
    /// resets, powers off or faults; the exit status says which (0; 3 for a guest fault;
    /// 128+n for signal n). See `ringfence-vmm --help` for the options. With the initramfs of
    /// `ringfence image kernel` and a root filesystem as the first --disk: without a command,
    /// a shell from that disk on the serial console (the guest goes down when it exits); with
    /// `-- CMD ARGS...`, CMD from that disk through the guest agent, its output streamed, the
    /// guest shut down and CMD's status the exit status.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Pauses a running microVM (started with `--api-sock`), writes its state and guest
    /// memory (a sparse file), and resumes it with `--resume`.
    Snapshot {
        #[arg(long)]
        api_sock: PathBuf,
        /// The state file to write.
        #[arg(long)]
        snapshot: PathBuf,
        /// The guest memory file to write.
        #[arg(long)]
        mem_file: PathBuf,
        #[arg(long)]
        resume: bool,
        /// Only the pages written since the last snapshot (the machine tracks dirty pages:
        /// machine-config `track_dirty_pages`, or restored with `enable_diff_snapshots`); lay
        /// the memory file over its base with `rebase-memory` before restoring.
        #[arg(long)]
        diff: bool,
    },
    /// Lays a Diff snapshot's memory file over its base's memory file (which becomes the
    /// memory as of the Diff snapshot).
    RebaseMemory {
        #[arg(long)]
        base: PathBuf,
        #[arg(long)]
        diff: PathBuf,
    },
    /// Starts a microVM from a snapshot instead of booting it: its memory file mapped
    /// copy-on-write (clones of one snapshot share it), its devices those of the snapshot,
    /// with the clone's own taps, vsock socket and shared-directory daemons given by the
    /// overrides. It stays paused until `PATCH /vm` Resumed unless `--resume`. Options of
    /// `ringfence-vmm` (`--api-sock`, `--serial`, `--jail`, ...) follow `--`.
    Restore {
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(long)]
        mem_file: PathBuf,
        #[arg(long)]
        resume: bool,
        /// `IFACE_ID=TAP`: a network interface's tap; repeatable.
        #[arg(long, value_parser = parse_pair)]
        net_override: Vec<(String, String)>,
        /// The vsock device's host socket.
        #[arg(long)]
        vsock_override: Option<PathBuf>,
        /// `FS_ID=SOCKET`: a shared directory's vhost-user daemon; repeatable.
        #[arg(long, value_parser = parse_pair)]
        fs_override: Vec<(String, String)>,
        #[arg(last = true, allow_hyphen_values = true)]
        vmm_args: Vec<OsString>,
    },
    /// Talks to the guest agent of a running microVM through its vsock socket (the PATH of
    /// `--vsock CID,PATH`), waiting for it to answer first.
    Agent {
        #[arg(long)]
        vsock: PathBuf,
        /// Seconds to wait for the agent to answer.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(subcommand)]
        action: AgentAction,
    },
}

#[derive(Subcommand)]
pub enum AgentAction {
    /// Prints the agent's version, the guest kernel and its uptime.
    Health,
    /// Makes a container from a guest block device (ext4, mounted read-only under a writable
    /// layer), or from a directory the host shares (`--image-dir`, under the guest's
    /// `/run/ringfence/shared`).
    Create {
        #[arg(long, default_value = "main")]
        id: String,
        #[arg(long, default_value = "/dev/vda", conflicts_with = "image_dir")]
        device: String,
        #[arg(long)]
        image_dir: Option<String>,
        /// A shared directory mounted in: `SOURCE:DESTINATION` or `SOURCE:DESTINATION:ro`;
        /// repeatable.
        #[arg(long = "mount", value_parser = parse_mount)]
        mounts: Vec<proto::Mount>,
    },
    /// Runs a command in a container, streams its output and exits with its status (128+n
    /// when signal n killed it).
    Exec {
        #[arg(long, default_value = "main")]
        container: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Tells a guest restored from a snapshot who it is now (Refresh): random bytes and the
    /// time of this host, a generation number, and optionally a host name and the virtio-fs tag
    /// to mount at `/run/ringfence/shared` (for a guest booted with `ringfence.share_later=1`).
    /// Prints the generation and the guest's boot_id.
    Refresh {
        /// Chosen per clone, not 0; Health reports it from then on.
        #[arg(long)]
        generation: u64,
        #[arg(long, default_value = "")]
        hostname: String,
        #[arg(long, default_value = "")]
        share_tag: String,
    },
    /// Gives a guest interface an IPv4 address (and a default route), optionally a new MAC
    /// address, and brings it up (ConfigureInterface).
    Interface {
        #[arg(long, default_value = "eth0")]
        name: String,
        /// ADDRESS/PREFIX.
        #[arg(long)]
        address: String,
        #[arg(long, default_value = "")]
        gateway: String,
        #[arg(long, default_value_t = 0)]
        mtu: u32,
        /// aa:bb:cc:dd:ee:ff, set while the link is down.
        #[arg(long, default_value = "")]
        mac: String,
    },
    /// Prints CPU and memory use (of a container, or of the guest).
    Stats {
        #[arg(long)]
        container: Option<String>,
    },
    /// Shuts the guest down (its VMM then exits).
    Shutdown,
}

fn parse_mount(s: &str) -> Result<proto::Mount, String> {
    let mut parts = s.split(':');
    let (Some(source), Some(destination)) = (parts.next(), parts.next()) else {
        return Err("expected SOURCE:DESTINATION[:ro]".into());
    };
    let read_only = match parts.next() {
        None => false,
        Some("ro") => true,
        Some(other) => return Err(format!("{other:?}: only `ro` may follow the destination")),
    };
    Ok(proto::Mount { source: source.into(), destination: destination.into(), read_only })
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected ID=VALUE")?;
    Ok((k.to_owned(), v.to_owned()))
}

pub fn run(cmd: VmCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VmCommand::Snapshot { api_sock, snapshot, mem_file, resume, diff } => {
            let started = std::time::Instant::now();
            let kind = match diff {
                true => vmm::snapshot::SnapshotType::Diff,
                false => vmm::snapshot::SnapshotType::Full,
            };
            vmm::api::client::snapshot(&api_sock, kind, &snapshot, &mem_file, resume)?;
            println!(
                "snapshot {} and memory {} written in {} ms",
                snapshot.display(),
                mem_file.display(),
                started.elapsed().as_millis()
            );
            Ok(ExitCode::SUCCESS)
        }
        VmCommand::RebaseMemory { base, diff } => {
            let copied = vmm::snapshot::memory::apply_diff(&diff, &base)?;
            println!("{} KiB of {} laid over {}", copied >> 10, diff.display(), base.display());
            Ok(ExitCode::SUCCESS)
        }
        VmCommand::Restore {
            snapshot,
            mem_file,
            resume,
            net_override,
            vsock_override,
            fs_override,
            vmm_args,
        } => {
            use vmm::snapshot::params::{
                BackendType, FsOverride, MemBackend, NetworkOverride, VsockOverride,
            };
            let params = vmm::snapshot::LoadParams {
                snapshot_path: snapshot,
                mem_backend: Some(MemBackend {
                    backend_type: BackendType::File,
                    backend_path: mem_file,
                }),
                mem_file_path: None,
                enable_diff_snapshots: false,
                resume_vm: resume,
                network_overrides: net_override
                    .into_iter()
                    .map(|(iface_id, host_dev_name)| NetworkOverride { iface_id, host_dev_name })
                    .collect(),
                vsock_override: vsock_override.map(|uds_path| VsockOverride { uds_path }),
                fs_overrides: fs_override
                    .into_iter()
                    .map(|(fs_id, socket)| FsOverride { fs_id, socket: socket.into() })
                    .collect(),
            };
            // The VMM reads it before anything else (and before a jail).
            let file =
                tempfile::Builder::new().prefix("ringfence-restore").suffix(".json").tempfile()?;
            std::fs::write(file.path(), serde_json::to_vec(&params)?)?;
            let exe = std::env::current_exe().context("locating the ringfence binary")?;
            let vmm = exe.with_file_name("ringfence-vmm");
            let status = std::process::Command::new(&vmm)
                .arg("--restore")
                .arg(file.path())
                .args(vmm_args)
                .status()
                .with_context(|| format!("running {}", vmm.display()))?;
            Ok(ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8))
        }
        VmCommand::Run { args } => {
            let exe = std::env::current_exe().context("locating the ringfence binary")?;
            let vmm = exe.with_file_name("ringfence-vmm");
            match args.iter().position(|a| a == "--") {
                Some(at) => {
                    let command: Vec<String> = args[at + 1..]
                        .iter()
                        .map(|a| {
                            a.clone()
                                .into_string()
                                .map_err(|a| anyhow::anyhow!("{a:?} is not UTF-8"))
                        })
                        .collect::<anyhow::Result<_>>()?;
                    super::vm_agent::run_command(&vmm, args[..at].to_vec(), command)
                }
                None => {
                    let args = super::vm_agent::with_console_shell(args);
                    let err = std::process::Command::new(&vmm).args(args).exec();
                    Err(err).with_context(|| format!("running {}", vmm.display()))
                }
            }
        }
        VmCommand::Agent { vsock, timeout, action } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let status = runtime.block_on(agent(&vsock, Duration::from_secs(timeout), action))?;
            Ok(ExitCode::from(status.clamp(0, 255) as u8))
        }
    }
}

async fn agent(
    vsock: &std::path::Path,
    timeout: Duration,
    action: AgentAction,
) -> anyhow::Result<i32> {
    let (mut a, health) = guest_agent::client::wait_ready(vsock, guest_agent::AGENT_PORT, timeout)
        .await
        .context("reaching the guest agent")?;
    match action {
        AgentAction::Health => println!(
            "agent {} kernel {} uptime_ms {} containers {} processes {} generation {}",
            health.version,
            health.kernel_release,
            health.uptime_ms,
            health.containers,
            health.processes,
            health.generation
        ),
        AgentAction::Refresh { generation, hostname, share_tag } => {
            let identity = guest_agent::client::CloneIdentity { generation, hostname, share_tag };
            let r = guest_agent::client::refresh(&mut a, &identity).await?;
            println!("generation {} boot_id {}", r.generation, r.boot_id);
        }
        AgentAction::Interface { name, address, gateway, mtu, mac } => {
            a.configure_interface(proto::ConfigureInterfaceRequest {
                name,
                address,
                gateway,
                mtu,
                mac,
            })
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        }
        AgentAction::Create { id, device, image_dir, mounts } => {
            let request = match image_dir {
                Some(dir) => proto::CreateContainerRequest {
                    id,
                    image_dir: dir,
                    mounts,
                    ..Default::default()
                },
                None => proto::CreateContainerRequest {
                    id,
                    device,
                    fstype: "ext4".into(),
                    mounts,
                    ..Default::default()
                },
            };
            super::vm_agent::create_container(&mut a, request).await?
        }
        AgentAction::Exec { container, command } => {
            return super::vm_agent::exec(&mut a, &container, command).await;
        }
        AgentAction::Stats { container } => {
            let s = a
                .stats(proto::StatsRequest { container_id: container.unwrap_or_default() })
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                .into_inner();
            println!(
                "cpu_usage_usec {} memory_bytes {} processes {} guest_memory_total_bytes {} guest_memory_available_bytes {}",
                s.cpu_usage_usec,
                s.memory_bytes,
                s.processes,
                s.guest_memory_total_bytes,
                s.guest_memory_available_bytes
            );
        }
        AgentAction::Shutdown => {
            a.shutdown(proto::ShutdownRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        }
    }
    Ok(0)
}
