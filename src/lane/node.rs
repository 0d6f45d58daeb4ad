//! A Kubernetes node offering the `microvm` runtime handler, run in the lane (whose KVM boots
//! Linux guests in seconds) and joined to a cluster on this host: `ringfence cri` (or
//! containerd with its CRI plugin and the project's shim) and `ringfence node` inside,
//! reaching the API server at 10.0.2.2 (the cluster's certificate must cover it: `--tls-san
//! 10.0.2.2`), the API server reaching the node through a forwarded port. While it runs it answers, each on a forwarded port of its own, with a report of what
//! it holds (machines, daemons, namespaces, taps, mounts, memory) and, for fault tests, by
//! killing one of its VMMs; it stops (its pods stopped by the node itself) when asked, and
//! reports again what is left.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::{Outcome, Run, Transport};

/// Inside the run: what each forwarded port reaches.
/// The CNI plugins of the default pod network: Debian's, and where the outer VM gets them.
const CNI_PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];
const HOST_CNI: &str = "/usr/lib/cni";
const LANE_CNI: &str = "/lane/cni";

const STOP_PORT: u16 = 7777;
const REPORT_PORT: u16 = 7778;
const CHAOS_PORT: u16 = 7779;
const BOOT_PORT: u16 = 7780;
/// The node's pod subnet and bridge inside the run.
const POD_CIDR: &str = "10.77.0.0/24";

/// What node to run.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    /// The cluster's admin kubeconfig on this host (its server on 127.0.0.1).
    pub kubeconfig: PathBuf,
    /// Images imported into the node's store before it starts: (name, OCI layout or
    /// `docker save` tar).
    pub images: Vec<(String, PathBuf)>,
    /// The guest kernel and agent initramfs (`ringfence image kernel`).
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub transport: Transport,
    /// The whole node's life at most.
    pub timeout: Duration,
    /// How long a pod's guest may take to boot to its agent.
    pub boot_timeout: Duration,
    /// Start pods as clones of snapshot templates (`--microvm-templates`).
    pub templates: bool,
    pub runtime: NodeRuntime,
}

/// The node's container runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeRuntime {
    /// `ringfence cri` with its `microvm` handler.
    #[default]
    Ringfence,
    /// Debian's containerd with its CRI plugin, whose runtime handler `ringfence` runs pods
    /// in microVMs through `containerd-shim-ringfence-v1` (images imported with `ctr`).
    Containerd,
}

/// The shell that starts the node's CRI runtime at `$D/cri.sock`, logging to /tmp/cri.log,
/// with the images of /lane/images in its store; `$cri` is its pid.
fn runtime_script(spec: &NodeSpec, cni: &str) -> String {
    match spec.runtime {
        NodeRuntime::Ringfence => format!(
            r#"for image in /lane/images/*; do
  [ -e "$image" ] || continue
  name=$(basename $image .tar | tr '+' ':')
  /lane/ringfence image import --data-dir $D $image --name $name >/dev/null || echo "IMPORT-FAILED $name"
done
/lane/ringfence cri --socket $D/cri.sock --data-dir $D --pod-cidr {POD_CIDR} --bridge rf0 \
  --cni-bin-dir {cni} \
  --runtime-handlers microvm --guest-kernel /guest/kernel --guest-initrd /guest/initrd \
  --virtiofsd /lane/virtiofsd --microvm-boot-timeout {boot_s} --microvm-templates {templates} \
  > /tmp/cri.log 2>&1 &
cri=$!
"#,
            boot_s = spec.boot_timeout.as_secs(),
            templates = spec.templates,
        ),
        NodeRuntime::Containerd => format!(
            r#"mkdir -p $D/net.d $D/containerd /lane/shim-bin
# The CRI plugin copies the node's /etc/hosts into each sandbox; the outer VM has none.
mkdir -p /etc; [ -e /etc/hosts ] || printf '127.0.0.1 localhost\n' > /etc/hosts
ln -sf /lane/ringfence /lane/shim-bin/containerd-shim-ringfence-v1
cat > $D/net.d/10-pods.conflist <<EOF
{{"cniVersion": "1.0.0", "name": "lane-pods", "plugins": [
  {{"type": "bridge", "bridge": "rf0", "isGateway": true, "isDefaultGateway": true,
   "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{POD_CIDR}"}}]], "dataDir": "$D/ipam"}}}},
  {{"type": "loopback"}}]}}
EOF
cat > /lane/microvm.toml <<EOF
sandbox = "microvm"
[microvm]
guest_kernel = "/guest/kernel"
guest_initrd = "/guest/initrd"
virtiofsd = "/lane/virtiofsd"
boot_timeout_seconds = {boot_s}
{templates}
EOF
cat > $D/containerd/config.toml <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$D/cri.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/pause:lane"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "ringfence"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ringfence]
      runtime_type = "io.containerd.ringfence.v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ringfence.options]
        ConfigPath = "/lane/microvm.toml"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "$D/net.d"
EOF
PATH=/lane/shim-bin:$PATH containerd --config $D/containerd/config.toml > /tmp/cri.log 2>&1 &
cri=$!
i=0
while [ ! -S $D/cri.sock ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
ctr() {{ /lane/bin/ctr --address $D/cri.sock --namespace k8s.io "$@"; }}
# Each image under the name the CRI plugin normalises its reference to; the first is also
# the (never run) sandbox image.
pause=
for image in /lane/images/*; do
  [ -e "$image" ] || continue
  name=$(basename $image .tar | tr '+' ':')
  case "$name" in */*) full=docker.io/$name ;; *) full=docker.io/library/$name ;; esac
  # The import's own name is a normalised one too, and stays: the CRI plugin looks an
  # image up by any of its names.
  ctr images import --snapshotter native --base-name docker.io/lane/import $image >/dev/null &&
    ctr images tag --force $(ctr images ls -q | grep '^docker.io/lane/import' | head -1) $full >/dev/null ||
    echo "IMPORT-FAILED $name"
  [ -n "$pause" ] || {{ pause=$full; ctr images tag --force $full docker.io/library/pause:lane >/dev/null; }}
done
"#,
            boot_s = spec.boot_timeout.as_secs(),
            templates = if spec.templates { "templates = \"$D/templates\"" } else { "" },
        ),
    }
}

pub struct LaneNode {
    runner: Option<JoinHandle<anyhow::Result<Outcome>>>,
    ports: Ports,
    _dir: tempfile::TempDir,
}

/// The host's ends of the node's forwarded ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub node: u16,
    pub stop: u16,
    pub report: u16,
    pub chaos: u16,
    pub boot: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The run's script: the report and chaos hooks, the images, the CRI runtime and the agent.
fn script(spec: &NodeSpec, node_port: u16) -> String {
    let cni = match spec.transport {
        Transport::Nested => LANE_CNI,
        Transport::Direct => HOST_CNI,
    };
    format!(
        r#"#!/bin/sh
export PATH={path}
D=/tmp/node
mkdir -p $D
# The node's own log, shown at the end.
export RUST_LOG=${{RUST_LOG:-info}}
{tuning}
cat > /lane/report.sh <<'EOF'
#!/bin/sh
# busybox sh runs its own applets before anything on PATH: iproute2 is named by its path.
IP={ip}
D=/tmp/node
# busybox ps: PID USER COMMAND...; programs are told by their path.
# Pods' VMMs, not those booting snapshot templates (jailed under $D/templates).
vmms() {{
  busybox ps | awk '$3 == "/lane/ringfence-vmm" && ($2 == "65534" || $2 == "nobody") {{print $1}}' |
    while read p; do readlink /proc/$p/root | grep -q /templates/ || echo $p; done
}}
echo "vmm $(vmms | wc -l)"
echo "templates $(ls $D/templates 2>/dev/null | grep -v -e building -e '[.]lock$' | wc -l)"
echo "restored $(grep -c 'microVM guest up.*restored.*true' /tmp/cri.log)"
grep -E "template" /tmp/cri.log 2>/dev/null | tail -4 | sed 's/^/cri: /'
echo "vmm-processes $(busybox ps | awk '$3 == "/lane/ringfence-vmm"' | wc -l)"
echo "virtiofsd $(busybox ps | awk '$3 == "/lane/virtiofsd" {{print $1}}' |
  while read p; do tr '\0' ' ' < /proc/$p/cmdline | grep -q /templates/ || echo $p; done | wc -l)"
echo "netns $($IP netns list | wc -l)"
echo "tap $( ($IP -o link; for n in $($IP netns list | cut -d' ' -f1); do $IP -n $n -o link; done) | grep -c tap)"
echo "sandboxes $(ls $D/cri/sandboxes 2>/dev/null | wc -l)"
echo "mounts $(grep -c $D/cri/ /proc/self/mountinfo)"
echo "image-binds $(grep '/share/containers/[^ ]*/rootfs ' /proc/self/mountinfo | wc -l)"
echo "image-sources $(grep '/share/containers/[^ ]*/rootfs ' /proc/self/mountinfo | cut -d' ' -f4 | sort -u | wc -l)"
pss=0
for p in $(busybox ps | awk '$3 == "/lane/ringfence-vmm" || $3 == "/lane/virtiofsd" {{print $1}}'); do
  kib=$(awk '/^Pss:/ {{print $2}}' /proc/$p/smaps_rollup 2>/dev/null)
  pss=$((pss + ${{kib:-0}}))
done
echo "sandbox-pss-kib $pss"
busybox ps | awk '$3 == "/lane/virtiofsd" || $3 == "/lane/ringfence-vmm" {{print $1, $2, $3}}' |
  while read pid user prog; do
    echo "process: $pid $user $prog pss_kib=$(awk '/^Pss:/ {{print $2}}' /proc/$pid/smaps_rollup 2>/dev/null)"
  done
EOF
cat > /lane/chaos.sh <<'EOF'
#!/bin/sh
v=$(busybox ps | awk '$3 == "/lane/ringfence-vmm" && ($2 == "65534" || $2 == "nobody") {{print $1; exit}}')
[ -n "$v" ] && kill -9 $v && echo "killed $v" || echo "no VMM"
EOF
cat > /lane/boot.sh <<'EOF'
#!/bin/sh
# A bare boot of the pods' guest (128 MiB, one vCPU) to its agent's first answer.
rm -f /tmp/boot.sock*
t0=$(cut -d' ' -f1 /proc/uptime)
/lane/ringfence-vmm --kernel /guest/kernel --initrd /guest/initrd --mem 128 \
  --vsock 3,/tmp/boot.sock --serial /tmp/boot-console.log \
  --cmdline "console=ttyS0 reboot=k panic=1 io_delay=none" >/dev/null 2>&1 &
v=$!
/lane/ringfence vm agent --vsock /tmp/boot.sock --timeout 120 health >/dev/null || {{ echo "boot-failed 1"; kill $v; exit; }}
t1=$(cut -d' ' -f1 /proc/uptime)
/lane/ringfence vm agent --vsock /tmp/boot.sock --timeout 10 shutdown >/dev/null
wait $v
echo "boot-ms $(awk -v a=$t0 -v b=$t1 'BEGIN {{print int((b - a) * 1000)}}')"
EOF
chmod +x /lane/report.sh /lane/chaos.sh /lane/boot.sh
busybox nc -ll -p {REPORT_PORT} -e /lane/report.sh &
busybox nc -ll -p {CHAOS_PORT} -e /lane/chaos.sh &
busybox nc -ll -p {BOOT_PORT} -e /lane/boot.sh &
{runtime}/lane/ringfence node --name {name} --kubeconfig /lane/kubeconfig --cri-socket $D/cri.sock \
  --address 127.0.0.1 --listen-address 0.0.0.0 --port {node_port} --pod-cidr {POD_CIDR} \
  --log-dir $D/logs --root-dir $D/root {handlers}> /tmp/node.log 2>&1 &
node=$!
echo LANE-NODE-STARTED
busybox nc -l -p {STOP_PORT} >/dev/null
echo STOPPING
kill -TERM $node $cri; wait $node $cri
/lane/report.sh | sed 's/^/AFTER-STOP /'
# Each pod's start, timed by the runtime (read by `ringfence bench pods`).
grep -E "microVM guest up|microVM clone ready|container started in the guest" /tmp/cri.log | sed 's/^/CRI-TIMING /'
echo "--- cri log"; tail -40 /tmp/cri.log
echo "--- node log"; tail -40 /tmp/node.log
"#,
        name = spec.name,
        runtime = runtime_script(spec, cni),
        // containerd 1.6 does not list its runtime handlers; the node names its one.
        handlers = match spec.runtime {
            NodeRuntime::Ringfence => "",
            NodeRuntime::Containerd => "--runtime-handlers ringfence ",
        },
        // Real iproute2 first: copied into the outer VM, or the host's own.
        path = match spec.transport {
            Transport::Nested => "/lane/bin:$PATH",
            Transport::Direct => "/usr/sbin:/sbin:/usr/bin:/bin:$PATH",
        },
        // The outer VM is this node's host: tuned as the README advises for microVM pods
        // (transparent huge pages for the guests' shared memory). A direct run leaves this
        // host's settings alone.
        tuning = match spec.transport {
            Transport::Nested => "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled",
            Transport::Direct => "",
        },
        ip = match spec.transport {
            Transport::Nested => "/lane/bin/ip",
            Transport::Direct => "/sbin/ip",
        },
    )
}

impl LaneNode {
    /// Starts the node; returns once the run is under way (the node then registers itself).
    pub fn start(spec: &NodeSpec) -> anyhow::Result<LaneNode> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = std::fs::read_to_string(&spec.kubeconfig)
            .with_context(|| format!("reading {}", spec.kubeconfig.display()))?
            .replace("server: https://127.0.0.1:", "server: https://10.0.2.2:");
        let api_port: u16 = kubeconfig
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: https://10.0.2.2:"))
            .and_then(|p| p.trim().parse().ok())
            .context("the kubeconfig's server is not https://127.0.0.1:PORT")?;
        let kc = dir.path().join("kubeconfig");
        std::fs::write(&kc, kubeconfig)?;
        let node_port = free_port()?;
        let ports = Ports {
            node: node_port,
            stop: free_port()?,
            report: free_port()?,
            chaos: free_port()?,
            boot: free_port()?,
        };
        let mut files = vec![
            (spec.kernel.clone(), "/guest/kernel".to_owned()),
            (spec.initrd.clone(), "/guest/initrd".to_owned()),
            (PathBuf::from("/usr/lib/qemu/virtiofsd"), "/lane/virtiofsd".to_owned()),
            (kc, "/lane/kubeconfig".to_owned()),
        ];
        if spec.transport == Transport::Nested {
            // The outer VM's busybox has no network namespaces or traffic control.
            files.push((PathBuf::from("/usr/sbin/ip"), "/lane/bin/ip".to_owned()));
            files.push((PathBuf::from("/usr/sbin/tc"), "/lane/bin/tc".to_owned()));
            // Services and NetworkPolicies are nftables rules.
            files.push((PathBuf::from("/usr/sbin/nft"), "/lane/bin/nft".to_owned()));
            // The default pod network's CNI plugins (scripts/setup installs them).
            for plugin in CNI_PLUGINS {
                files.push((Path::new(HOST_CNI).join(plugin), format!("{LANE_CNI}/{plugin}")));
            }
        }
        if spec.runtime == NodeRuntime::Containerd {
            for program in ["containerd", "ctr"] {
                files.push((Path::new("/usr/bin").join(program), format!("/lane/bin/{program}")));
            }
        }
        for (name, path) in &spec.images {
            files.push((path.clone(), format!("/lane/images/{}.tar", name.replace(':', "+"))));
        }
        let run = Run {
            vmm: super::default_vmm()?,
            ringfence: Some(std::env::current_exe()?),
            args: Vec::new(),
            files,
            sums: Vec::new(),
            script: Some(script(spec, node_port)),
            timeout: spec.timeout,
            transport: spec.transport,
            forwards: vec![
                (ports.node, node_port),
                (ports.stop, STOP_PORT),
                (ports.report, REPORT_PORT),
                (ports.chaos, CHAOS_PORT),
                (ports.boot, BOOT_PORT),
            ],
            host_ports: vec![api_port],
        };
        let runner = std::thread::Builder::new()
            .name("lane-node".into())
            .spawn(move || super::execute(&run))?;
        Ok(LaneNode { runner: Some(runner), ports, _dir: dir })
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Asks the node on `port` (report or chaos) and returns its answer; retried while the
    /// run is still coming up.
    fn ask(&self, port: u16) -> anyhow::Result<String> {
        let mut last = None;
        for _ in 0..100 {
            match TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                let mut text = String::new();
                s.read_to_string(&mut text)?;
                Ok(text)
            }) {
                Ok(t) if !t.is_empty() => return Ok(t),
                Ok(_) => last = Some(anyhow::anyhow!("an empty answer")),
                Err(e) => last = Some(e.into()),
            }
            if self.runner.as_ref().is_some_and(|r| r.is_finished()) {
                anyhow::bail!("the lane node's run has ended");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
    }

    /// What the node holds now, as `name count` lines (and `process:` lines for people).
    pub fn report(&self) -> anyhow::Result<String> {
        self.ask(self.ports.report)
    }

    /// Boots the pods' guest alone (no node, no pod) to its agent's first answer; the time.
    pub fn bare_boot(&self) -> anyhow::Result<Duration> {
        let answer = self.ask(self.ports.boot)?;
        let ms = parse_report(&answer)
            .into_iter()
            .find(|(k, _)| k == "boot-ms")
            .map(|(_, v)| v)
            .with_context(|| format!("the bare boot failed: {answer}"))?;
        Ok(Duration::from_millis(ms))
    }

    /// Stops the node (it stops its pods first) and the run; returns the run's outcome, whose
    /// output ends with `AFTER-STOP` report lines.
    pub fn stop(mut self) -> anyhow::Result<Outcome> {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.ports.stop)) {
            let _ = s.write_all(b"stop\n");
        }
        let runner = self.runner.take().context("the node was stopped already")?;
        runner.join().map_err(|_| anyhow::anyhow!("the lane node's runner panicked"))?
    }
}

impl Drop for LaneNode {
    fn drop(&mut self) {
        if let Some(r) = self.runner.take() {
            let _ = TcpStream::connect(("127.0.0.1", self.ports.stop));
            let _ = r.join();
        }
    }
}

/// The guest `ringfence image kernel` built last: (kernel, preferably its ELF vmlinux;
/// initramfs).
pub fn last_guest() -> anyhow::Result<(PathBuf, PathBuf)> {
    let record = images::guest::cache_dir().join(images::guest::CURRENT);
    let text = std::fs::read_to_string(&record).with_context(|| {
        format!("{}: build the guest with `ringfence image kernel`", record.display())
    })?;
    let mut lines = text.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(k), Some(i)) => Ok((images::guest::pvh_kernel(&k), i)),
        _ => anyhow::bail!("{} is incomplete", record.display()),
    }
}

/// The `name count` lines of a report.
pub fn parse_report(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, count) = l.split_once(' ')?;
            Some((name.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_name_count_lines() {
        let r = parse_report("vmm 2\nvirtiofsd 2\nprocess: 12 0 /lane/virtiofsd --x\nnetns 0\n");
        assert_eq!(r, vec![("vmm".into(), 2), ("virtiofsd".into(), 2), ("netns".into(), 0)]);
    }
}
