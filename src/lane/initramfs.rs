//! The outer VM's initramfs: a base archive (busybox, the KVM modules, device nodes) cached
//! per kernel, and a per-run archive (the init script, the VMM with its libraries, the run's
//! files) concatenated after it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use images::cpio::Cpio;

use super::kernel::LaneKernel;

/// KVM for AMD and what it needs, and tun for taps, in load order.
const MODULES: [&str; 4] = [
    "virt/lib/irqbypass.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-amd.ko",
    "drivers/net/tun.ko",
];
/// What a run with a network loads too, in load order: the outer VM's NIC (virtio-net over
/// PCI) and what a node's pod networking takes (a bridge, veth pairs, traffic control).
const NETWORK_MODULES: [&str; 38] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "net/llc/llc.ko",
    "net/802/stp.ko",
    "net/bridge/bridge.ko",
    "drivers/net/veth.ko",
    "net/sched/sch_ingress.ko",
    "net/sched/cls_u32.ko",
    "net/sched/act_mirred.ko",
    // nftables for the node's Service data path and NetworkPolicies, dependencies first.
    "net/netfilter/nfnetlink.ko",
    "lib/libcrc32c.ko",
    "net/netfilter/nf_tables.ko",
    "net/ipv4/netfilter/nf_defrag_ipv4.ko",
    "net/ipv6/netfilter/nf_defrag_ipv6.ko",
    "net/netfilter/nf_conntrack.ko",
    "net/netfilter/nft_ct.ko",
    "net/netfilter/nf_nat.ko",
    "net/netfilter/nft_nat.ko",
    "net/netfilter/nft_chain_nat.ko",
    "net/netfilter/nft_masq.ko",
    "net/netfilter/nft_numgen.ko",
    "net/netfilter/nft_fib.ko",
    "net/ipv6/netfilter/nft_fib_ipv6.ko",
    "net/ipv4/netfilter/nft_fib_ipv4.ko",
    "net/netfilter/nft_fib_inet.ko",
    "net/ipv4/netfilter/nf_reject_ipv4.ko",
    "net/ipv6/netfilter/nf_reject_ipv6.ko",
    "net/netfilter/nft_reject.ko",
    "net/netfilter/nft_reject_inet.ko",
    "net/ipv4/netfilter/nft_reject_ipv4.ko",
    "net/ipv6/netfilter/nft_reject_ipv6.ko",
    // Bridged pod traffic through the forward hook (after bridge.ko above).
    "net/bridge/br_netfilter.ko",
];
/// Changes whenever what the base archive holds changes (it is cached under this name).
const BASE_VERSION: u32 = 4;
pub(super) const BUSYBOX: &str = "/bin/busybox";

/// The base archive for `kernel`, built once.
pub fn base(kernel: &LaneKernel, cache: &Path) -> anyhow::Result<PathBuf> {
    let path = cache.join(format!("base-{}-v{BASE_VERSION}.cpio", kernel.version));
    if path.exists() {
        return Ok(path);
    }
    let mut c = Cpio::new();
    let busybox = std::fs::read(BUSYBOX).with_context(|| format!("{BUSYBOX} (busybox-static)"))?;
    c.file("bin/busybox", 0o755, &busybox);
    for m in MODULES.iter().chain(&NETWORK_MODULES) {
        let p = kernel.modules.join(m);
        let body = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        c.file(&format!("lane/{}", module_name(m)), 0o644, &body);
    }
    c.char_device("dev/console", 5, 1);
    for d in ["proc", "sys", "tmp", "run"] {
        c.dir(d);
    }
    let tmp = path.with_extension("tmp");
    c.write_to(std::fs::File::create(&tmp)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// The file name of a module path (`net/llc/llc.ko` -> `llc.ko`).
fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The outer VM's part of a run with a network: its modules, its address, the host's route.
fn network_setup() -> String {
    let mut s: String =
        NETWORK_MODULES.iter().map(|m| format!("insmod /lane/{}\n", module_name(m))).collect();
    s.push_str(
        "ip link set lo up\nip link set eth0 up\nip addr add 10.0.2.15/24 dev eth0\n\
         ip route add default via 10.0.2.2\nmkdir -p /var && ln -sfn /run /var/run\n",
    );
    s
}

/// The shared libraries `binary` loads (from `ldd`), as absolute paths.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").nth(1).unwrap_or(l).split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// An executable of ours without its debug information (a debug `ringfence` is ~6 times
/// bigger with it, and the outer VM unpacks every byte under emulation).
fn stripped(binary: &Path) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("stripped");
    let st = Command::new("strip").arg("--strip-debug").arg("-o").arg(&out).arg(binary).status();
    match st {
        Ok(s) if s.success() => Ok(std::fs::read(&out)?),
        _ => std::fs::read(binary).with_context(|| format!("reading {}", binary.display())),
    }
}

/// The shell command of a run: `script_runner` when there is a script (how it is started),
/// else `/lane/ringfence` (with `ringfence`) or `/lane/ringfence-vmm` with `args`, quoted.
pub(super) fn command(ringfence: bool, args: &[String], script_runner: Option<&str>) -> String {
    if let Some(runner) = script_runner {
        return runner.to_owned();
    }
    let program = if ringfence { "/lane/ringfence" } else { "/lane/ringfence-vmm" };
    std::iter::once(program.to_owned())
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The per-run archive: `vmm` (and its libraries) at `/lane/ringfence-vmm`, `files` at their
/// paths inside, and an init that loads KVM, runs the VMM with `args` and reports (with the
/// SHA-256 of the files in `sums` afterwards). A `/lane/before.sh` among the files runs in the
/// background as the VMM starts. With `ringfence`, that binary goes to `/lane/ringfence` and
/// runs with `args` instead of the VMM (so `ringfence vm run` finds the VMM beside it). With a
/// `script`, the init runs it (as `/lane/run.sh`) instead.
pub fn run_archive(
    vmm: &Path,
    ringfence: Option<&Path>,
    args: &[String],
    files: &[(PathBuf, String)],
    sums: &[String],
    script: Option<&str>,
    network: bool,
) -> anyhow::Result<Vec<u8>> {
    let mut c = Cpio::new();
    c.file("lane/ringfence-vmm", 0o755, &stripped(vmm)?);
    // Every dynamic executable brings its libraries (once each).
    let mut libs = std::collections::BTreeSet::new();
    libs.extend(libraries(vmm)?);
    if let Some(r) = ringfence {
        c.file("lane/ringfence", 0o755, &stripped(r)?);
        libs.extend(libraries(r)?);
    }
    for (host, inside) in files {
        if !inside.starts_with('/') || inside.contains("..") {
            bail!("{inside:?}: paths inside the lane are absolute and plain");
        }
        let body = std::fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        if body.starts_with(b"\x7fELF") {
            libs.extend(libraries(host)?);
        }
        c.file(inside, 0o755, &body);
    }
    for lib in libs {
        let body = std::fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        c.file(&lib.to_string_lossy(), 0o755, &body);
    }
    if let Some(script) = script {
        c.file("lane/run.sh", 0o755, script.as_bytes());
    }
    let cmd = command(ringfence.is_some(), args, script.map(|_| "/lane/run.sh"));
    let sums: Vec<String> = sums
        .iter()
        .map(|p| {
            format!("echo \"RINGFENCE-LANE-SUM {p} $(sha256sum {} | cut -d' ' -f1)\"", quote(p))
        })
        .collect();
    let init = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
# The host may send newlines down the serial line to wake a stalled outer VM: not echoed.
stty -echo 2>/dev/null
insmod /lane/irqbypass.ko && insmod /lane/kvm.ko && insmod /lane/kvm-amd.ko nested=1
insmod /lane/tun.ko
{}if [ ! -c /dev/kvm ]; then echo RINGFENCE-LANE-NOKVM; poweroff -f; fi
start=$(cut -d' ' -f1 /proc/uptime)
echo "RINGFENCE-LANE-READY $start"
# A heartbeat: the host takes a silent console for a frozen outer VM.
( while :; do sleep 5; echo RINGFENCE-LANE-ALIVE; done ) &
alive=$!
# A run's own set-up of the outer VM (e.g. addressing a tap the VMM creates), alongside it.
if [ -x /lane/before.sh ]; then /lane/before.sh & fi
# The output also goes to the console as it comes, so that a run that hangs shows how far it
# got; what the run leaves in the background does not hold the lane up.
: >/tmp/.lane-output
tail -f /tmp/.lane-output &
follow=$!
{} >/tmp/.lane-output 2>&1
rc=$?
kill $follow $alive; wait $follow $alive 2>/dev/null; echo
end=$(cut -d' ' -f1 /proc/uptime)
echo RINGFENCE-LANE-OUTPUT-BEGIN
cat /tmp/.lane-output
echo RINGFENCE-LANE-OUTPUT-END
{}
echo "RINGFENCE-LANE-EXIT $rc $start $end"
poweroff -f
"#,
        if network { network_setup() } else { String::new() },
        cmd,
        sums.join("\n")
    );
    c.file("init", 0o755, init.as_bytes());
    Ok(c.finish())
}
