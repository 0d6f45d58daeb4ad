//! `ringfence dev ...`: tools for developing Ringfence itself, such as the nested-SVM lane.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::lane;

#[derive(Subcommand)]
pub enum DevCommand {
    /// Runs ringfence-vmm inside the nested-SVM lane (QEMU with software emulation and
    /// emulated AMD SVM, whose KVM boots Linux guests in seconds) and prints its output; the
    /// exit status is the VMM's. `--file HOST:INSIDE` puts files there (kernels, disks).
    /// `--transport direct` runs the same on this host's own (hardware-backed) KVM instead.
    NestedRun(NestedRunArgs),
    /// Prints the path of the lane's kernel (Debian's cloud kernel), fetching it once.
    LaneKernel,
    /// Runs a node offering the `microvm` runtime handler inside the lane, joined to a
    /// cluster on this host (whose API certificate covers 10.0.2.2: `--tls-san 10.0.2.2`).
    /// Prints `LANE-NODE node=P report=P chaos=P` (host ports: a report of what the node
    /// holds, and killing one of its VMMs, on each connection); stops when stdin closes, then
    /// prints what the node left and its logs.
    LaneNode(LaneNodeArgs),
}

#[derive(Args)]
pub struct LaneNodeArgs {
    /// The cluster's admin kubeconfig (its server on 127.0.0.1).
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "lane-node")]
    name: String,
    /// An image to import into the node: `NAME=PATH` (an OCI layout tar or `docker save`
    /// tar); repeatable.
    #[arg(long = "image", value_parser = parse_image)]
    images: Vec<(String, PathBuf)>,
    /// The guest kernel (default: the last `ringfence image kernel` build).
    #[arg(long, requires = "guest_initrd")]
    guest_kernel: Option<PathBuf>,
    #[arg(long, requires = "guest_kernel")]
    guest_initrd: Option<PathBuf>,
    /// Give up (and stop everything) after this many seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Seconds a pod's guest may take to boot to its agent (minutes where this host's KVM
    /// emulates guest kernel code and the transport is direct).
    #[arg(long, default_value_t = 120)]
    microvm_boot_timeout: u64,
    /// Start pods as clones of snapshot templates (see `ringfence node --help`).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    microvm_templates: bool,
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: lane::Transport,
    /// The node's container runtime.
    #[arg(long, value_enum, default_value = "ringfence")]
    runtime: lane::node::NodeRuntime,
}

fn parse_image(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or("expected NAME=PATH")?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn lane_node(a: LaneNodeArgs) -> anyhow::Result<ExitCode> {
    let (kernel, initrd) = match (a.guest_kernel, a.guest_initrd) {
        (Some(k), Some(i)) => (k, i),
        _ => lane::node::last_guest()?,
    };
    let spec = lane::node::NodeSpec {
        name: a.name,
        kubeconfig: a.kubeconfig,
        images: a.images,
        kernel,
        initrd,
        transport: a.transport,
        timeout: Duration::from_secs(a.timeout),
        boot_timeout: Duration::from_secs(a.microvm_boot_timeout),
        templates: a.microvm_templates,
        runtime: a.runtime,
    };
    let node = lane::node::LaneNode::start(&spec)?;
    let p = node.ports();
    println!("LANE-NODE node={} report={} chaos={}", p.node, p.report, p.chaos);
    use std::io::{Read, Write};
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let out = node.stop()?;
    print!("{}", out.output);
    Ok(ExitCode::from(out.exit_code.clamp(0, 255) as u8))
}

#[derive(Args)]
pub struct NestedRunArgs {
    /// A host file to put inside the outer VM: `HOST:INSIDE` (an absolute path); repeatable.
    #[arg(long = "file", value_parser = parse_file)]
    files: Vec<(PathBuf, String)>,
    /// A file inside whose SHA-256 to print after the VMM ends (a disk it wrote); repeatable.
    #[arg(long = "sum")]
    sums: Vec<String>,
    /// Give up (and kill QEMU) after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// The VMM binary (default: the ringfence-vmm next to this binary).
    #[arg(long)]
    vmm: Option<PathBuf>,
    /// Run this shell script inside instead (the VMM is /lane/ringfence-vmm and, with
    /// --ringfence, this binary /lane/ringfence); its output and status are the run's.
    #[arg(long, conflicts_with = "args")]
    script: Option<PathBuf>,
    /// Run this `ringfence` binary inside (with ARGS, e.g. `vm run ... -- CMD`) rather than
    /// the VMM.
    #[arg(long)]
    ringfence: bool,
    /// Where to run: `nested` (inside the QEMU VM with emulated SVM) or `direct` (on this
    /// host's own KVM, hardware-backed, in private mount and network namespaces).
    #[arg(long, value_enum, env = "RINGFENCE_LANE", default_value = "nested")]
    transport: lane::Transport,
    /// Forward a TCP port of the host's loopback into the run: `HOST:INSIDE`; repeatable.
    /// The run then has a network (it is 10.0.2.15 and reaches the host as 10.0.2.2).
    #[arg(long = "forward", value_parser = parse_forward)]
    forwards: Vec<(u16, u16)>,
    /// The VMM's arguments (or ringfence's, with --ringfence).
    #[arg(last = true, required_unless_present = "script")]
    args: Vec<String>,
}

fn parse_forward(s: &str) -> Result<(u16, u16), String> {
    let (h, g) = s.split_once(':').ok_or("expected HOST:INSIDE (two TCP ports)")?;
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("{p:?} is not a TCP port"));
    Ok((port(h)?, port(g)?))
}

fn parse_file(s: &str) -> Result<(PathBuf, String), String> {
    let (host, inside) = s.rsplit_once(':').ok_or("expected HOST:INSIDE")?;
    if !inside.starts_with('/') {
        return Err(format!("{inside:?}: the path inside must be absolute"));
    }
    Ok((PathBuf::from(host), inside.to_owned()))
}

pub fn run(cmd: DevCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DevCommand::LaneNode(a) => lane_node(a),
        DevCommand::LaneKernel => {
            println!("{}", lane::kernel()?.vmlinuz.display());
            Ok(ExitCode::SUCCESS)
        }
        DevCommand::NestedRun(a) => {
            let vmm = match a.vmm {
                Some(v) => v,
                None => lane::default_vmm()?,
            };
            let ringfence = if a.ringfence { Some(std::env::current_exe()?) } else { None };
            let run = lane::Run {
                vmm,
                ringfence,
                args: a.args,
                files: a.files,
                sums: a.sums,
                script: a
                    .script
                    .map(|p| {
                        std::fs::read_to_string(&p)
                            .with_context(|| format!("reading {}", p.display()))
                    })
                    .transpose()?,
                timeout: Duration::from_secs(a.timeout),
                transport: a.transport,
                forwards: a.forwards,
                host_ports: Vec::new(),
            };
            let out = lane::execute(&run)?;
            print!("{}", out.output);
            for (path, sum) in &out.sums {
                eprintln!("lane: sha256 {sum} {path}");
            }
            match a.transport {
                lane::Transport::Nested => eprintln!(
                    "lane: KVM ready in the outer VM at {:.2} s, the VMM ran {:.2} s, QEMU {:.2} s in all; exit status {}",
                    out.outer_ready_s,
                    out.vmm_s,
                    out.total.as_secs_f64(),
                    out.exit_code
                ),
                lane::Transport::Direct => eprintln!(
                    "lane: KVM of this host (direct), the run took {:.2} s; exit status {}",
                    out.vmm_s, out.exit_code
                ),
            }
            Ok(ExitCode::from(out.exit_code.clamp(0, 255) as u8))
        }
    }
}
