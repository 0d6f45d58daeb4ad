//! A `ringfence server` started for one test, and the real kubectl pointed at it.

#![allow(dead_code)]

pub mod python;
pub mod sentry;
pub mod sim;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where the server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// Generates one test per backend for each named `fn name(b: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Embedded) } )*
        }
        mod etcd {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Etcd) } )*
        }
    };
}

/// Like `on_both_backends!` for `async fn name(b: Backend)`.
#[macro_export]
macro_rules! on_both_backends_async {
    ($($name:ident),* $(,)?) => {
        mod embedded_async {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Embedded).await } )*
        }
        mod etcd_async {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name($crate::common::Backend::Etcd).await } )*
        }
    };
}

fn start_etcd(dir: &Path) -> orchestrator::store::local_etcd::LocalEtcd {
    let dir = dir.to_owned();
    // Own runtime on its own thread: callers may already be inside one.
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(orchestrator::store::local_etcd::LocalEtcd::start(&dir))
            .expect("start etcd")
    })
    .join()
    .expect("etcd starter")
}

pub struct Cluster {
    child: Child,
    /// The subcommand and arguments it was started with, for `restart`.
    command: (String, Vec<String>, String),
    etcd: Option<orchestrator::store::local_etcd::LocalEtcd>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub url: String,
}

impl Cluster {
    pub fn new(backend: Backend) -> Self {
        Self::start_with(backend, &[])
    }

    /// Starts the server with extra arguments; returns once it listens.
    pub fn start_with(backend: Backend, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let etcd = (backend == Backend::Etcd).then(|| start_etcd(&dir.path().join("etcd")));
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(e) = &etcd {
            args.extend(["--etcd".to_owned(), e.endpoint.clone()]);
        }
        let mut c = Self::start_in(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
        c.etcd = etcd;
        c
    }

    /// Starts the server (embedded store) on an existing data directory.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        Self::spawn("server", dir, extra, "ringfence API server listening on ")
    }

    /// Starts `ringfence up` (server, scheduler, controllers, CRI runtime and node agent) with
    /// its own bridge and address ranges, so that clusters of parallel tests never meet.
    pub fn up(extra: &[&str]) -> Self {
        let net = Net::unique();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec![
            "--bridge",
            &net.bridge,
            "--pod-cidr",
            &net.pod_cidr,
            "--service-cidr",
            &net.service_cidr,
            "--node-port",
            "0",
        ];
        args.extend(extra);
        Self::spawn("up", dir, &args, "ringfence cluster up: API on ")
    }

    fn spawn(command: &str, dir: tempfile::TempDir, extra: &[&str], ready: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg(command)
            .arg("--data-dir")
            .arg(dir.path())
            .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"] })
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start ringfence {command}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.expect("server output");
            if let Some(u) = line.strip_prefix(ready) {
                url = Some(u.split(';').next().unwrap_or(u).to_owned());
                break;
            }
        }
        // Keep draining what it prints so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let url = url.unwrap_or_else(|| panic!("ringfence {command} printed its address"));
        let kubeconfig = dir.path().join("admin.kubeconfig");
        let command =
            (command.to_owned(), extra.iter().map(|s| s.to_string()).collect(), ready.to_owned());
        Self { child, command, etcd: None, dir, kubeconfig, url }
    }

    /// Stops the process gracefully (SIGTERM) and starts it again on the same data directory
    /// with the same arguments (an embedded-store cluster).
    pub fn restart(mut self) -> Self {
        terminate(&mut self.child);
        let (command, args, ready) = self.command.clone();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        std::mem::forget(self);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Self::spawn(&command, dir, &args, &ready)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server and gives back its data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("temp dir");
        let old = std::mem::replace(&mut self.dir, dir);
        std::mem::forget(self);
        old
    }

    pub fn kubectl_cmd(&self) -> Command {
        let mut c = Command::new("/usr/bin/kubectl");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"));
        c
    }

    /// Runs kubectl to its end. A kubectl still running after `KUBECTL_LIMIT` is killed and
    /// fails the test naming the command, instead of hanging it.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        bounded(self.kubectl_cmd().args(args), &format!("kubectl {args:?}"), kubectl_limit(args))
    }

    /// Runs kubectl and returns stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("kubectl -o json output")
    }

    /// Applies YAML given inline.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> String {
        let f = self.write(&format!("manifest-{}.yaml", rand_suffix()), yaml);
        let mut args = vec!["apply", "-f", f.to_str().expect("utf-8 path")];
        args.extend(extra);
        self.ok(&args)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    /// A kubectl that authenticates with a bearer token instead of the admin certificate.
    pub fn kubectl_as_token(&self, token: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("/usr/bin/kubectl");
        cmd.env("KUBECONFIG", "/dev/null")
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache-token"))
            .arg(format!("--server={}", self.url))
            .arg(format!(
                "--certificate-authority={}",
                self.dir.path().join("pki/ca.crt").display()
            ))
            .arg(format!("--token={token}"))
            .args(args);
        bounded(&mut cmd, &format!("kubectl (token) {args:?}"), KUBECTL_LIMIT)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// SIGTERM first (`ringfence up` then stops its pods and removes their networks), SIGKILL if
/// it takes too long.
pub fn terminate(child: &mut Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// A cluster's bridge, pod subnet and Service range, unique to this process and cluster.
pub struct Net {
    pub bridge: String,
    pub pod_cidr: String,
    pub service_cidr: String,
}

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

impl Net {
    pub fn unique() -> Net {
        let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Different test binaries run one after another, but keep them apart anyway.
        let a = (pid % 200) as u8;
        let b = (n % 50) as u8;
        Net {
            bridge: format!("rft{}x{}", pid % 100_000, n),
            pod_cidr: format!("10.{}.{}.0/24", 200 + b, a),
            service_cidr: format!("10.{}.{}.0/24", 150 + b, a),
        }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Fails the test process, saying which test, if the returned guard lives past `limit` (a
/// wedged cluster must not hang the suite).
pub fn watchdog(what: &str, limit: Duration) -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let what = what.to_owned();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
            eprintln!("{what} ran past {limit:?}: aborting");
            in_flight::dump();
            std::process::exit(101);
        }
    });
    done
}

/// Longest a single kubectl command of a test may take, beyond a `--timeout=` it is given.
pub const KUBECTL_LIMIT: Duration = Duration::from_secs(150);

fn kubectl_limit(args: &[&str]) -> Duration {
    let asked = args
        .iter()
        .filter_map(|a| a.strip_prefix("--timeout="))
        .filter_map(|t| t.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()))
        .map(|secs| Duration::from_secs(secs + 60))
        .max();
    asked.unwrap_or(KUBECTL_LIMIT).max(KUBECTL_LIMIT)
}

/// Runs `cmd` to its end, recorded as in flight meanwhile; kills it and panics once `limit`
/// passes.
pub fn bounded(cmd: &mut Command, what: &str, limit: Duration) -> Output {
    let _running = in_flight::Entry::new(what);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            // SAFETY: signalling a child of this process that has not been reaped (the
            // sender is dropped only after wait_with_output returns).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let started = Instant::now();
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let _ = tx.send(());
    assert!(
        started.elapsed() < limit,
        "{what} still running after {limit:?}: killed; it printed {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The commands a test is waiting on, for the watchdog's dump.
pub mod in_flight {
    use std::sync::Mutex;
    use std::time::Instant;

    static RUNNING: Mutex<Vec<(u64, String, Instant)>> = Mutex::new(Vec::new());
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    pub struct Entry(u64);

    impl Entry {
        pub fn new(what: &str) -> Self {
            let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut r) = RUNNING.lock() {
                r.push((id, what.to_owned(), Instant::now()));
            }
            Self(id)
        }
    }

    impl Drop for Entry {
        fn drop(&mut self) {
            if let Ok(mut r) = RUNNING.lock() {
                r.retain(|(id, ..)| *id != self.0);
            }
        }
    }

    /// Prints the commands still running and this process's children.
    pub fn dump() {
        if let Ok(r) = RUNNING.try_lock() {
            for (_, what, since) in r.iter() {
                eprintln!("  in flight for {:.1?}: {what}", since.elapsed());
            }
        }
        let ps = std::process::Command::new("ps")
            .args(["-o", "pid,ppid,etime,stat,args", "--ppid", &std::process::id().to_string()])
            .output();
        if let Ok(ps) = ps {
            eprintln!("{}", String::from_utf8_lossy(&ps.stdout));
        }
    }
}

/// Starts `cmd` with SIGINT and SIGQUIT at their defaults. A runner started in the background
/// of a non-interactive shell hands them on ignored, and a shell cannot even trap a signal it
/// was started ignoring: programs compared with native runs must start as from a terminal.
pub fn default_signals(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (signal(2)) run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        })
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
"#;

/// An HTTPS connection to the cluster as its admin (client certificate).
pub async fn admin(c: &Cluster) -> orchestrator::kube::connection::Connection {
    orchestrator::kube::connection::ConnectionConfig::from_kubeconfig(&c.kubeconfig)
        .expect("admin kubeconfig")
        .connect()
        .await
        .expect("connect")
}

/// Waits until the controllers have given every namespace what they publish in each (the
/// `default` ServiceAccount and `kube-root-ca.crt`), so that a test comparing revisions sees
/// only its own writes.
pub async fn settled(conn: &mut orchestrator::kube::connection::Connection) {
    let count = |v: serde_json::Value| v["items"].as_array().map_or(0, Vec::len);
    for _ in 0..200 {
        let namespaces = count(conn.get("/api/v1/namespaces").await.expect("list").json());
        let accounts = count(
            conn.get("/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault")
                .await
                .expect("list")
                .json(),
        );
        let maps = count(
            conn.get("/api/v1/configmaps?fieldSelector=metadata.name%3Dkube-root-ca.crt")
                .await
                .expect("list")
                .json(),
        );
        if accounts >= namespaces && maps >= namespaces {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the namespaces never got their default accounts and CA maps");
}

/// The store's current revision, as a list reports it.
pub async fn revision(conn: &mut orchestrator::kube::connection::Connection) -> String {
    let r = conn.get("/api/v1/namespaces/default/configmaps?limit=1").await.expect("list");
    r.json()["metadata"]["resourceVersion"].as_str().expect("resourceVersion").to_owned()
}
