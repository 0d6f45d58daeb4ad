//! Ringfence as a containerd runtime: Debian's containerd (started here, with its own root,
//! state and socket, and a config naming `io.containerd.ringfence.v1`) runs tasks through
//! `containerd-shim-ringfence-v1` in Sentry sandboxes, driven by its own `ctr`: an image
//! pulled from a loopback docker-registry, output from inside the sandbox, exit statuses,
//! stdin, exec, kill and delete. The same `ctr` flows with microVM sandboxes run in the
//! nested-SVM lane, containerd and all.

mod common;
#[path = "common/guest_lane.rs"]
mod guest_lane;
#[path = "../images/tests/common/mod.rs"]
mod image_common;
#[path = "common/lane_node.rs"]
mod lane_node;
#[path = "common/node.rs"]
mod node;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

// What the lane node's helper finds at the crate root.
use common::{Cluster, eventually};
use image_common::TestImage;
use image_common::registry::{Pusher, Registry};

const RUNTIME: &str = "io.containerd.ringfence.v1";
/// The whole containerd of a test is killed (its log printed) after this.
const WATCHDOG: Duration = Duration::from_secs(300);
/// One `ctr` command.
const CTR_LIMIT: Duration = Duration::from_secs(90);

/// A containerd of the test's own, ended (and, on a timeout, its log printed) by a watchdog.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    done: Arc<AtomicBool>,
}

impl Containerd {
    fn start(registry: &str) -> Containerd {
        Self::start_with_network(registry, &common::Net::unique())
    }

    /// Starts containerd whose CRI plugin attaches pods with the reference plugins on
    /// `net`'s bridge and range.
    fn start_with_network(registry: &str, net: &common::Net) -> Containerd {
        let dir = tempfile::tempdir().unwrap();
        let netd = dir.path().join("net.d");
        std::fs::create_dir_all(&netd).unwrap();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("cd-{}", net.bridge),
            "plugins": [
                {"type": "bridge", "bridge": net.bridge, "isGateway": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": net.pod_cidr}]],
                          "dataDir": dir.path().join("ipam")}},
                {"type": "loopback"}
            ]
        });
        std::fs::write(netd.join("10-pods.conflist"), conflist.to_string()).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_ringfence"),
            bin.join("containerd-shim-ringfence-v1"),
        )
        .unwrap();
        let socket = dir.path().join("containerd.sock");
        let p = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{registry}/pause:v1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "ringfence"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.ringfence]
    runtime_type = "{RUNTIME}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{netd}"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
            root = p("root"),
            state = p("state"),
            socket = socket.display(),
            netd = netd.display(),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (scripts/setup)");
        let done = Arc::new(AtomicBool::new(false));
        let containerd = Containerd { child, dir, socket, done };
        containerd.watchdog();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.socket.exists() {
            assert!(Instant::now() < deadline, "containerd did not start:\n{}", containerd.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        containerd
    }

    /// The end of containerd's log (what failure messages show).
    fn log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Kills containerd (so that every `ctr` call fails) and prints its log if the test is
    /// still running after [`WATCHDOG`].
    fn watchdog(&self) {
        let (done, pid) = (self.done.clone(), self.child.id() as i32);
        let log = self.dir.path().join("containerd.log");
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < WATCHDOG {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            eprintln!("watchdog: containerd killed after {WATCHDOG:?}; its log:");
            eprintln!("{}", std::fs::read_to_string(log).unwrap_or_default());
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.socket).args(["--namespace", "shimtest"]).args(args);
        c
    }

    /// Runs `ctr` with `stdin`, within [`CTR_LIMIT`].
    fn ctr_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .ctr_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ctr (containerd's client) is installed");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let pid = child.id() as i32;
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < CTR_LIMIT {
                if f.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        let out = child.wait_with_output().unwrap();
        finished.store(true, Ordering::Relaxed);
        out
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_with_input(args, b"")
    }

    /// `ctr args` must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {args:?}: {}\n{}", show(&out), self.log());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The project's node agent on containerd's CRI socket (containerd 1.6 lists no runtime
/// handlers, so the node names its own): a Deployment whose RuntimeClass handler is `ringfence`
/// runs in Sentry sandboxes through the shim, with logs and exec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_agent_runs_a_deployment_through_containerd() {
    let registry = Registry::start("").await;
    let pusher = Pusher::new(&registry);
    pusher.image("demo/busybox", "v1", &TestImage::busybox()).await;
    // The pods' sandbox image: the shim runs no pause process, but containerd pulls it.
    pusher.image("pause", "v1", &TestImage::busybox()).await;
    let image = format!("{}/demo/busybox:v1", registry.addr);
    let net = common::Net::unique();
    let addr = registry.addr.clone();
    tokio::task::spawn_blocking(move || {
        let containerd = Containerd::start_with_network(&addr, &net);
        node_on_containerd(&containerd, &image, &net);
    })
    .await
    .unwrap();
}

fn node_on_containerd(cd: &Containerd, image: &str, net: &common::Net) {
    let c = common::Cluster::start_with(
        common::Backend::Embedded,
        &["--service-cidr", &net.service_cidr],
    );
    let work = tempfile::tempdir().unwrap();
    let _agent = Reaped(
        Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .args(["node", "--name", "cd-node", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .arg("--cri-socket")
            .arg(&cd.socket)
            .args(["--runtime-handlers", "ringfence", "--address", "127.0.0.1", "--port", "0"])
            .args(["--pod-cidr", &net.pod_cidr, "--log-dir"])
            .arg(work.path().join("logs"))
            .arg("--root-dir")
            .arg(work.path().join("root"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ready =
        common::eventually(Duration::from_secs(60), || c.ok(&["get", "nodes"]).contains(" Ready "));
    assert!(
        ready,
        "the node on containerd: {}
{}",
        c.ok(&["get", "nodes"]),
        cd.log()
    );
    let manifest = format!(
        r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {{name: ringfence}}
handler: ringfence
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      runtimeClassName: ringfence
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        command: [sh, -c, 'echo started in $(cat /proc/version); exec sleep 3600']
"#
    );
    c.apply(&manifest, &[]);
    let rolled = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        rolled.status.success(),
        "{}
{}
{}",
        String::from_utf8_lossy(&rolled.stderr),
        c.kubectl(&["get", "events", "-o", "wide"])
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect::<String>(),
        cd.log()
    );
    let pods = c.json(&["get", "pods", "-l", "app=web"]);
    let pod = pods["items"][0]["metadata"]["name"].as_str().unwrap().to_owned();
    let version = c.ok(&["exec", &pod, "--", "cat", "/proc/version"]);
    assert!(version.contains("(ringfence)"), "exec through containerd: {version}");
    let logs = c.ok(&["logs", &pod]);
    assert!(logs.contains("started in") && logs.contains("(ringfence)"), "{logs}");
    c.ok(&["delete", "deployment", "web", "--wait=true", "--timeout=60s"]);
    let gone = common::eventually(Duration::from_secs(60), || {
        c.json(&["get", "pods", "-l", "app=web"])["items"].as_array().is_some_and(|a| a.is_empty())
    });
    assert!(gone, "pods stayed: {}", c.ok(&["get", "pods"]));
    let _ = Command::new("ip").args(["link", "del", &net.bridge]).output();
}

/// A child process ended when the test is, passed or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        common::terminate(&mut self.0);
    }
}

/// The processes whose command line names `needle`, and all their descendants.
fn processes_naming(needle: &str) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    let mut named = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            named.push(pid);
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)?.parse().ok());
        parents.push((pid, ppid.unwrap_or(0)));
    }
    let mut all = named.clone();
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        all.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    all
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        common::terminate(&mut self.child);
        // Shims outlive a containerd by design; this one's (and their sandboxes) end with it.
        for pid in processes_naming(&self.socket.display().to_string()) {
            // SAFETY: signalling processes this test's containerd started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Snapshots containerd left mounted keep the directory from being removed.
        for m in mounts_under(self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A busybox image in a loopback registry, pulled into a fresh containerd.
async fn containerd_with_busybox() -> (Registry, Containerd, String) {
    let registry = Registry::start("").await;
    Pusher::new(&registry).image("demo/busybox", "v1", &TestImage::busybox()).await;
    let image = format!("{}/demo/busybox:v1", registry.addr);
    let containerd = tokio::task::spawn_blocking({
        let addr = registry.addr.clone();
        move || Containerd::start(&addr)
    })
    .await
    .unwrap();
    containerd.ok(&["images", "pull", "--plain-http", &image]);
    (registry, containerd, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_runs_tasks_in_sentry_sandboxes() {
    let (_registry, containerd, image) = containerd_with_busybox().await;
    tokio::task::spawn_blocking(move || ctr_flows(&containerd, &image)).await.unwrap();
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn ctr_flows(c: &Containerd, image: &str) {
    let run = |extra: &[&str], id: &str, argv: &[&str]| -> Vec<String> {
        let mut args = vec!["run", "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[image, id]);
        args.extend_from_slice(argv);
        args.into_iter().map(str::to_owned).collect()
    };

    // Output from inside the sandbox: the kernel that answers is the Sentry.
    let started = Instant::now();
    let args = run(&["--rm"], "hello", &["/bin/cat", "/proc/version"]);
    let out = c.ok(&argv(&args));
    assert!(out.contains("(ringfence)"), "{out}");
    eprintln!("ctr run --rm (cat /proc/version): {:?}", started.elapsed());

    // The exit status comes through.
    let args = run(&["--rm"], "fails", &["/bin/sh", "-c", "echo to-stderr >&2; exit 7"]);
    let out = c.ctr(&argv(&args));
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"), "{}", show(&out));

    // stdin reaches the process and its end (CloseIO) ends it.
    let args = run(&["--rm"], "stdin", &["/bin/cat"]);
    let out = c.ctr_with_input(&argv(&args), b"typed into the sandbox\n");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "typed into the sandbox\n");

    // A detached task: exec into it, kill it, delete it.
    let args = run(&["-d"], "long", &["/bin/busybox", "sleep", "600"]);
    c.ok(&argv(&args));
    let tasks = c.ok(&["task", "ls"]);
    assert!(tasks.lines().any(|l| l.starts_with("long") && l.contains("RUNNING")), "{tasks}");
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "probe",
        "long",
        "/bin/sh",
        "-c",
        "echo exec in $(cat /etc/hostname); exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exec in "), "{}", show(&out));
    // Its resource use, as the Sentry accounts it, in cgroup v1 terms containerd decodes.
    let metrics = c.ok(&["task", "metrics", "long"]);
    let value = |name: &str| -> Option<u64> {
        metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    assert_eq!(value("pids.current"), Some(1), "{metrics}");
    assert!(value("memory.usage_in_bytes").is_some_and(|m| m > 0), "{metrics}");
    c.ok(&["task", "kill", "--signal", "SIGKILL", "long"]);
    assert!(
        common::eventually(Duration::from_secs(20), || {
            c.ok(&["task", "ls"]).lines().any(|l| l.starts_with("long") && l.contains("STOPPED"))
        }),
        "the killed task stops: {}",
        c.ok(&["task", "ls"])
    );
    c.ok(&["task", "delete", "long"]);
    assert!(!c.ok(&["task", "ls"]).contains("long"));
    c.ok(&["container", "delete", "long"]);
    pause_and_resume(c, image);
}

/// A paused task runs no code: the counter it writes to a host directory stands still until
/// it is resumed.
fn pause_and_resume(c: &Containerd, image: &str) {
    let out = tempfile::tempdir().unwrap();
    let mount = format!("type=bind,src={},dst=/out,options=rbind:rw", out.path().display());
    let script = "i=0; while true; do i=$((i+1)); echo $i > /out/n.new; mv /out/n.new /out/n; \
                  sleep 0.05; done";
    c.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--mount",
        &mount,
        image,
        "counter",
        "/bin/sh",
        "-c",
        script,
    ]);
    let count = || -> u64 {
        std::fs::read_to_string(out.path().join("n"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    let status = |want: &str| {
        c.ok(&["task", "ls"]).lines().any(|l| l.starts_with("counter") && l.contains(want))
    };
    assert!(common::eventually(Duration::from_secs(20), || count() >= 3), "the counter never ran");
    c.ok(&["task", "pause", "counter"]);
    assert!(status("PAUSED"), "{}", c.ok(&["task", "ls"]));
    // A write under way when the pause came may still land.
    std::thread::sleep(Duration::from_millis(300));
    let paused_at = count();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(count(), paused_at, "the counter moved while paused");
    c.ok(&["task", "resume", "counter"]);
    assert!(status("RUNNING"), "{}", c.ok(&["task", "ls"]));
    assert!(
        common::eventually(Duration::from_secs(20), || count() > paused_at + 2),
        "the counter did not move on after the resume ({paused_at})"
    );
    eprintln!(
        "ctr task pause: the counter held at {paused_at} for 1 s; resumed, it reached {}",
        count()
    );
    c.ok(&["task", "kill", "--signal", "SIGKILL", "counter"]);
    assert!(common::eventually(Duration::from_secs(20), || status("STOPPED")));
    c.ok(&["task", "delete", "counter"]);
    c.ok(&["container", "delete", "counter"]);
}

/// The lane's script: containerd (its CRI plugin off) with the shim on its PATH, the busybox
/// image imported, and `ctr` running tasks whose runtime config picks microVM sandboxes.
const MICROVM_SCRIPT: &str = r#"#!/bin/sh
export PATH=/lane/bin:$PATH
ln -s /lane/ringfence /lane/bin/containerd-shim-ringfence-v1
D=/tmp/cd
mkdir -p $D
cat > $D/config.toml <<EOF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$D/containerd.sock"
EOF
cat > /lane/microvm.toml <<EOF
sandbox = "microvm"
[microvm]
guest_kernel = "/guest/kernel"
guest_initrd = "/guest/initrd"
virtiofsd = "/lane/virtiofsd"
memory_mib = 128
boot_timeout_seconds = 120
EOF
containerd --config $D/config.toml > /tmp/containerd.log 2>&1 &
i=0
while [ ! -S $D/containerd.sock ]; do
  i=$((i + 1))
  if [ $i -gt 600 ]; then echo CONTAINERD-DID-NOT-START; tail -30 /tmp/containerd.log; exit 1; fi
  sleep 0.1
done
ctr() { /lane/bin/ctr --address $D/containerd.sock "$@"; }
ms() { awk '{print int($1 * 1000)}' /proc/uptime; }
ctr images import --snapshotter native --base-name docker.io/demo/busybox /lane/image.tar >/dev/null
IMG=$(ctr images ls -q | head -1)
echo "IMAGE $IMG"
R="--snapshotter native --runtime io.containerd.ringfence.v1 --runtime-config-path /lane/microvm.toml"
t0=$(ms)
ctr run --rm $R --memory-limit 134217728 $IMG one sh -c 'cat /proc/version; grep MemTotal /proc/meminfo'
echo "RUN-STATUS $? $(( $(ms) - t0 )) ms"
ctr run --rm $R $IMG fails sh -c 'echo to-stderr >&2; exit 7'
echo "EXIT-STATUS $?"
ctr run -d $R $IMG long /bin/busybox sleep 600
ctr task ls
ctr task exec --exec-id probe long sh -c 'echo "EXEC-OUT in $(uname -r)"; exit 3'
echo "EXEC-STATUS $?"
ctr task kill --signal SIGKILL long
i=0
until ctr task ls | grep -q '^long .*STOPPED'; do
  i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.2
done
ctr task ls | grep '^long' | sed 's/^/TASK-AFTER-KILL /'
ctr task delete long; echo "DELETE-STATUS $?"
ctr containers delete long
echo "TASKS-LEFT $(ctr task ls -q | wc -l)"
echo "VMMS-LEFT $(busybox ps | grep -c '[/]lane/ringfence-vmm')"
echo "--- containerd log"; tail -15 /tmp/containerd.log
"#;

/// The shim with `sandbox = "microvm"` in its runtime config (`ctr run
/// --runtime-config-path`): each task's sandbox is a Linux guest, run by the guest agent; exit
/// statuses, exec and kill come through, and nothing is left running.
#[test]
fn ctr_runs_tasks_in_microvms_in_the_nested_lane() {
    let _lane = LANE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    TestImage::busybox().write_oci_layout(&layout);
    let image = image_common::tar_dir(&layout, &dir.path().join("image.tar"));
    let (kernel, initrd) = guest_lane::guest_image();
    // The ELF vmlinux beside the bzImage, as microVM nodes boot.
    let kernel = Path::new(&kernel).with_file_name("vmlinux");
    let script = dir.path().join("run.sh");
    std::fs::write(&script, MICROVM_SCRIPT).unwrap();
    let file = |host: &Path, inside: &str| format!("{}:{inside}", host.display());
    let started = Instant::now();
    let out = guest_lane::ringfence()
        .args(["dev", "nested-run", "--ringfence", "--timeout", "600", "--vmm"])
        .arg(env!("CARGO_BIN_EXE_ringfence-vmm"))
        .args(["--file", &file(Path::new("/usr/bin/containerd"), "/lane/bin/containerd")])
        .args(["--file", &file(Path::new("/usr/bin/ctr"), "/lane/bin/ctr")])
        .args(["--file", &file(Path::new("/usr/lib/qemu/virtiofsd"), "/lane/virtiofsd")])
        .args(["--file", &file(&kernel, "/guest/kernel")])
        .args(["--file", &file(Path::new(&initrd), "/guest/initrd")])
        .args(["--file", &file(&image, "/lane/image.tar")])
        .arg("--script")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n--- stderr\n{stderr}");
    eprintln!("ctr with microVM sandboxes in the lane: {:?}", started.elapsed());
    let line = |prefix: &str| -> &str {
        stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {all}"))
    };
    // The guest's own Linux answers, not the Sentry.
    let version = line("Linux version");
    assert!(!version.contains("(ringfence)"), "{all}");
    assert!(line("RUN-STATUS").starts_with("RUN-STATUS 0 "), "{all}");
    eprintln!("{}", line("RUN-STATUS"));
    // A 128 MiB limit plus the guest's own 64: more than the 128 MiB of a guest without one.
    let mem_kib: u64 =
        line("MemTotal:").split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap();
    assert!(mem_kib > 150 * 1024 && mem_kib <= 192 * 1024, "MemTotal {mem_kib} kB: {all}");
    assert_eq!(line("EXIT-STATUS"), "EXIT-STATUS 7", "{all}");
    assert!(stdout.contains("to-stderr"), "{all}");
    assert!(line("EXEC-OUT in ").len() > "EXEC-OUT in ".len(), "{all}");
    assert_eq!(line("EXEC-STATUS"), "EXEC-STATUS 3", "{all}");
    assert!(line("TASK-AFTER-KILL").contains("STOPPED"), "{all}");
    assert_eq!(line("DELETE-STATUS"), "DELETE-STATUS 0", "{all}");
    assert_eq!(line("TASKS-LEFT"), "TASKS-LEFT 0", "{all}");
    assert_eq!(line("VMMS-LEFT"), "VMMS-LEFT 0", "{all}");
}

/// One nested-SVM lane at a time: each is a whole emulated machine.
static LANE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A node whose runtime is containerd (CRI plugin, CNI, the shim with a microVM runtime
/// config) in the nested-SVM lane, joined to a cluster here: the project's node agent runs a
/// pod of RuntimeClass handler `ringfence` there, and the pod is a Linux guest with the pod's
/// address (a readiness probe over HTTP), its logs and exec; the next pod starts as a clone
/// of the snapshot template the first one's shim built; deleting them leaves no VMM.
#[test]
fn the_node_agent_runs_a_microvm_pod_through_containerds_cri_plugin() {
    let _lane = LANE.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let c = Cluster::up(&["--tls-san", "10.0.2.2", "--runtime-handlers", "sentry"]);
    let images = tempfile::tempdir().unwrap();
    let tar = node::busybox_image_tar(images.path(), &[("/www/index.html", "hello\n")]);
    let lane = lane_node::LaneNode::start_with(
        &c,
        "cd-lane",
        &[("web:v1", &tar)],
        &["--runtime", "containerd"],
    );
    let manifest = r#"apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: microvm-cd}
handler: ringfence
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  runtimeClassName: microvm-cd
  nodeSelector: {kubernetes.io/hostname: cd-lane}
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: web:v1
    imagePullPolicy: Never
    command: [/bin/sh, -c, 'echo started in $(cat /proc/version); exec httpd -f -p 80 -h /www']
    readinessProbe: {httpGet: {path: /index.html, port: 80}, periodSeconds: 1}
"#;
    c.apply(manifest, &[]);
    let ready = c.kubectl(&["wait", "pod/web", "--for=condition=Ready", "--timeout=120s"]);
    assert!(
        ready.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&ready.stderr),
        c.ok(&["describe", "pod", "web"]),
        lane.output()
    );
    let ready_s = started.elapsed().as_secs_f64();
    let version = c.ok(&["exec", "web", "--", "cat", "/proc/version"]);
    assert!(version.starts_with("Linux version") && !version.contains("(ringfence)"), "{version}");
    let logs = c.ok(&["logs", "web"]);
    assert!(logs.contains("started in Linux version"), "{logs}");
    let ip = c.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(ip.starts_with("10.77."), "the pod's address from containerd's CNI call: {ip}");
    // The first pod's guest booted; its shim built a snapshot template meanwhile, which the
    // next pod's shim (another process) starts from.
    let templated = common::eventually(Duration::from_secs(120), || lane.leftover("templates") > 0);
    assert!(templated, "no template: {}\n{}", lane.report(), lane.output());
    let cloned = Instant::now();
    c.apply(&manifest.replace("{name: web}", "{name: web2}"), &[]);
    let ready = c.kubectl(&["wait", "pod/web2", "--for=condition=Ready", "--timeout=120s"]);
    assert!(ready.status.success(), "{}", c.ok(&["describe", "pod", "web2"]));
    let clone_s = cloned.elapsed().as_secs_f64();
    assert!(lane.leftover("restored") > 0, "web2 was not a clone: {}", lane.report());
    let clone = c.ok(&["exec", "web2", "--", "cat", "/etc/hostname"]);
    assert_eq!(clone.trim(), "web2", "the clone's own hostname");
    c.ok(&["delete", "pod", "web", "web2", "--wait=true", "--timeout=90s"]);
    let (after, output) = lane.stop();
    for k in ["vmm-processes", "virtiofsd"] {
        assert!(
            after.iter().any(|(n, v)| n == k && *v == 0),
            "after the node stopped {after:?}:\n{output}"
        );
    }
    eprintln!(
        "microVM pod through containerd's CRI plugin: Ready at {ready_s:.1} s (booted), a clone \
         {clone_s:.1} s after its apply; whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
