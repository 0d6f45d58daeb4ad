//! The nested-SVM test lane: this machine's KVM runs Linux guests' kernel code slowly, so
//! Linux microVMs are tested inside a QEMU VM with software emulation and emulated AMD SVM,
//! whose own KVM runs them in seconds. The lane is a transport: the VMM inside is the same
//! binary, run with the same arguments as on any host.
//!
//! - [`kernel`]: the outer VM's kernel (Debian's cloud kernel), fetched once.
//! - [`initramfs`]: the outer VM's initramfs: busybox and KVM modules, then the run's files.
//! - [`run`]: QEMU, the console, the init's report, the time limit.
//! - [`direct`]: the same run on this host's own KVM instead (hardware-backed hosts).
//! - [`node`]: a Kubernetes node offering microVM pods, run in the lane for a cluster here.

pub mod direct;
mod direct_net;
pub mod initramfs;
pub mod kernel;
mod monitor;
pub mod node;
pub mod run;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use run::Outcome;

/// Where the lane keeps what it fetches and builds: `lane/` under the project's
/// [`images::cache_root`] (beside the guest images' [`images::guest::cache_dir`]).
pub fn lane_cache_dir() -> PathBuf {
    images::cache_root().join("lane")
}

/// A run: the VMM binary (or `ringfence`), the arguments inside the outer VM, and host files
/// to put there.
pub struct Run {
    pub vmm: PathBuf,
    /// Run this `ringfence` binary with `args` (the VMM beside it) rather than the VMM.
    pub ringfence: Option<PathBuf>,
    pub args: Vec<String>,
    /// (host path, absolute path inside).
    pub files: Vec<(PathBuf, String)>,
    /// Files inside whose SHA-256 to report after the VMM ends (e.g. disks it wrote).
    pub sums: Vec<String>,
    /// A shell script to run instead of the VMM (which it finds at `/lane/ringfence-vmm`).
    pub script: Option<String>,
    pub timeout: Duration,
    pub transport: Transport,
    /// TCP ports of the host's loopback forwarded into the run (host port, port inside). With
    /// any, the run has a network: inside it is 10.0.2.15 and reaches the host's loopback as
    /// 10.0.2.2 (the nested lane: every port; the direct transport: the `host_ports`), and
    /// the kernel modules of a node (bridge, veth, traffic control) are loaded.
    pub forwards: Vec<(u16, u16)>,
    /// Ports of the host's loopback the run reaches at 10.0.2.2 on the direct transport.
    pub host_ports: Vec<u16>,
}

/// Where a run goes: the nested-SVM lane, or this host's own KVM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Inside a QEMU VM with emulated SVM (for hosts whose KVM runs Linux guests slowly).
    #[default]
    Nested,
    /// On this host's /dev/kvm, in private mount and network namespaces.
    Direct,
}

/// The outer kernel, for tests that also boot it as an inner guest.
pub fn kernel() -> anyhow::Result<kernel::LaneKernel> {
    let cache = lane_cache_dir();
    std::fs::create_dir_all(&cache)?;
    kernel::fetch(&cache)
}

/// Runs `run` inside the lane and returns its outcome.
pub fn execute(run: &Run) -> anyhow::Result<Outcome> {
    if run.transport == Transport::Direct {
        return direct::execute(run);
    }
    let cache = lane_cache_dir();
    std::fs::create_dir_all(&cache)?;
    let k = kernel::fetch(&cache)?;
    let base = initramfs::base(&k, &cache)?;
    let this = initramfs::run_archive(
        &run.vmm,
        run.ringfence.as_deref(),
        &run.args,
        &run.files,
        &run.sums,
        run.script.as_deref(),
        !run.forwards.is_empty(),
    )?;
    let dir = tempfile::tempdir()?;
    let initrd = run::initrd(&base, &this, dir.path())?;
    run::boot(&k.vmlinuz, &initrd, run.timeout, &run.forwards)
}

/// The `ringfence-vmm` next to the running binary.
pub fn default_vmm() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let vmm = exe.with_file_name("ringfence-vmm");
    if !Path::new(&vmm).exists() {
        anyhow::bail!("{} is missing (cargo build --bin ringfence-vmm)", vmm.display());
    }
    Ok(vmm)
}
