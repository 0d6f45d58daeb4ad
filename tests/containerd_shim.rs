//! Ringfence as a containerd runtime: Debian's containerd (started here, with its own root,
//! state and socket, and a config naming `io.containerd.ringfence.v1`) runs tasks through
//! `containerd-shim-ringfence-v1` in Sentry sandboxes, driven by its own `ctr`: an image
//! pulled from a loopback docker-registry, output from inside the sandbox, exit statuses,
//! stdin, exec, kill and delete.

mod common;
#[path = "../images/tests/common/mod.rs"]
mod image_common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
        let dir = tempfile::tempdir().unwrap();
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
            netd = p("net.d"),
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
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

impl Drop for Containerd {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        common::terminate(&mut self.child);
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
}
