//! `ringfence bench sentry`: the Sentry, on each of its platforms (KVM and systrap), against
//! runc and gVisor's runsc (ptrace platform), on
//! the same busybox rootfs and micro-benchmark program, measured in the same run. The rootfs
//! also holds GNU find and part of the host's /usr (headers, Perl and Python libraries), for a
//! metadata-heavy row: `find /usr | wc -l`; and Debian's python3 and sqlite3 for real-program
//! rows: 10 Python start-ups, one transaction of many inserts, and 4 concurrent writers (each
//! row one sqlite3 process, so file locks and process starts dominate).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use sentry_kvm::platform::PlatformKind;

use super::stats::Samples;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Sentry(PlatformKind),
    Runsc,
    Runc,
}

const RUNTIMES: [Runtime; 4] = [
    Runtime::Sentry(PlatformKind::Kvm),
    Runtime::Sentry(PlatformKind::Systrap),
    Runtime::Runsc,
    Runtime::Runc,
];

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Sentry(PlatformKind::Kvm) => "sentry (kvm)",
            Runtime::Sentry(PlatformKind::Systrap) => "sentry (systrap)",
            Runtime::Runsc => "runsc (ptrace)",
            Runtime::Runc => "runc",
        }
    }
}

pub struct BenchConfig {
    pub runs: usize,
    pub iterations: u64,
    pub fork_iterations: u64,
    /// Rows of the one-transaction sqlite3 row.
    pub inserts: u64,
    /// Rows each of the 4 concurrent sqlite3 writers inserts.
    pub writer_rows: u64,
}

/// Python start-ups per sample of the Python row.
const PYTHON_STARTS: u32 = 10;
/// Concurrent sqlite3 writers.
const WRITERS: u64 = 4;

/// One runtime's results.
pub struct Row {
    pub runtime: Runtime,
    /// Median start-to-exit of /bin/true, ms.
    pub start_ms: f64,
    pub getpid_us: f64,
    /// clock_gettime(CLOCK_MONOTONIC) through libc (the vDSO where there is one).
    pub clock_us: f64,
    pub open_us: f64,
    pub forkexec_us: f64,
    /// One byte there and back over loopback TCP, both sides waiting in poll().
    pub pollrt_us: f64,
    /// Resident memory of every process that keeps an idle sandbox alive, MiB.
    pub idle_rss_mib: f64,
    /// Median start-to-exit of `find /usr | wc -l` over the rootfs's /usr tree, ms.
    pub find_ms: f64,
    /// What that find counted (the same for every runtime, or the row means nothing).
    pub find_entries: u64,
    /// Median of [`PYTHON_STARTS`] `python3 -c pass` in one sandbox, ms.
    pub python_ms: f64,
    /// Median of one sqlite3 transaction of [`BenchConfig::inserts`] inserts, ms.
    pub inserts_ms: f64,
    /// Median of [`WRITERS`] concurrent writers of [`BenchConfig::writer_rows`] rows each, ms
    /// (every row checked to be there).
    pub writers_ms: f64,
}

/// Host directories copied into the rootfs's /usr for the find row (about 12000 entries).
const USR_TREES: [&str; 3] = ["/usr/include", "/usr/share/perl", "/usr/lib/python3.11"];

struct Env {
    dir: tempfile::TempDir,
    ringfence: PathBuf,
}

impl Env {
    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }
    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }
}

fn setup(cfg: &BenchConfig) -> anyhow::Result<Env> {
    for tool in ["runc", "runsc", "cc"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()?
            .success();
        if !found {
            bail!(
                "{tool} is not installed (scripts/setup installs runc and runsc; cc builds the micro-benchmark)"
            );
        }
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("bundle/rootfs");
    for d in ["bin", "etc", "proc", "dev", "tmp", "sys"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("busybox-static (scripts/setup installs it)")?;
    for applet in ["sh", "true", "sleep", "wc"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/hostname"), "bench\n")?;
    usr_tree(&root)?;
    for program in ["/usr/bin/python3.11", "/usr/bin/sqlite3"] {
        with_libraries(&root, Path::new(program))?;
    }
    std::os::unix::fs::symlink("python3.11", root.join("usr/bin/python3"))?;
    std::fs::create_dir_all(root.join("bench"))?;
    std::fs::write(root.join("bench/inserts.sql"), inserts_sql(cfg.inserts))?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sentry/micro.c");
    let st = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(root.join("bin/micro"))
        .arg(&src)
        .status()?;
    if !st.success() {
        bail!("compiling {}", src.display());
    }
    let ringfence = std::env::current_exe()?;
    Ok(Env { dir, ringfence })
}

/// A host program at its own path under `root`, with the shared libraries `ldd` names.
fn with_libraries(root: &Path, program: &Path) -> anyhow::Result<()> {
    let mut files = vec![program.to_path_buf()];
    let ldd = Command::new("ldd")
        .arg(program)
        .output()
        .with_context(|| format!("ldd {}", program.display()))?;
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') {
            files.push(PathBuf::from(word));
        }
    }
    for f in files {
        let dest = root.join(f.strip_prefix("/")?);
        std::fs::create_dir_all(dest.parent().context("library path")?)?;
        std::fs::copy(&f, &dest).with_context(|| format!("copying {}", f.display()))?;
    }
    Ok(())
}

/// GNU find with its libraries, and the host trees of [`USR_TREES`] under `root`. Hard links
/// where the host allows them (nothing writes to the rootfs), copies otherwise.
fn usr_tree(root: &Path) -> anyhow::Result<()> {
    with_libraries(root, Path::new("/usr/bin/find"))?;
    for tree in USR_TREES {
        if !Path::new(tree).is_dir() {
            bail!("{tree} is missing (the find row walks it)");
        }
        let dest = root.join(tree.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().context("tree path")?)?;
        let linked = Command::new("cp").arg("-al").arg(tree).arg(&dest).status()?.success();
        if !linked {
            let _ = std::fs::remove_dir_all(&dest);
            if !Command::new("cp").arg("-a").arg(tree).arg(&dest).status()?.success() {
                bail!("copying {tree}");
            }
        }
    }
    Ok(())
}

/// Median milliseconds of `find /usr | wc -l` in fresh sandboxes, and the count it printed.
fn find_usr(env: &Env, rt: Runtime, runs: usize) -> anyhow::Result<(f64, u64)> {
    let mut times = Samples::default();
    let mut count = 0;
    for _ in 0..runs.max(1) {
        let c = command(env, rt, &new_id(), &["/bin/sh", "-c", "/usr/bin/find /usr | wc -l"])?;
        let t = Instant::now();
        let out = run_ok(c)?;
        times.push(t.elapsed());
        count = out.trim().parse().with_context(|| format!("find printed {out:?}"))?;
    }
    Ok((times.percentile_ms(50.0), count))
}

/// Median milliseconds of `script` (a shell script) in fresh sandboxes, checking each run's
/// output with `check`.
fn timed_script(
    env: &Env,
    rt: Runtime,
    runs: usize,
    script: &str,
    check: impl Fn(&str) -> bool,
) -> anyhow::Result<f64> {
    let mut times = Samples::default();
    for _ in 0..runs.max(1) {
        let c = command(env, rt, &new_id(), &["/bin/sh", "-c", script])?;
        let t = Instant::now();
        let out = run_ok(c)?;
        times.push(t.elapsed());
        if !check(&out) {
            bail!("{script:?} printed {out:?}");
        }
    }
    Ok(times.percentile_ms(50.0))
}

/// The real-program rows: Python start-ups, one big sqlite3 transaction (its statements
/// written into the rootfs by [`setup`]), and concurrent sqlite3 writers whose every row must
/// be there afterwards.
fn programs(env: &Env, rt: Runtime, cfg: &BenchConfig) -> anyhow::Result<(f64, f64, f64)> {
    let runs = cfg.runs.min(3);
    let python = format!(
        "i=0; while [ $i -lt {PYTHON_STARTS} ]; do /usr/bin/python3 -c pass || exit 1; \
         i=$((i+1)); done; echo ok"
    );
    let python_ms = timed_script(env, rt, runs, &python, |o| o.trim() == "ok")?;
    let inserts = "cd /tmp && /usr/bin/sqlite3 bench.db < /bench/inserts.sql && \
                   /usr/bin/sqlite3 bench.db 'SELECT count(*) FROM t'";
    let n = cfg.inserts.to_string();
    let inserts_ms = timed_script(env, rt, runs, inserts, |o| o.trim() == n)?;
    let rows = cfg.writer_rows;
    let ids: Vec<String> = (1..=WRITERS).map(|w| w.to_string()).collect();
    let ids = ids.join(" ");
    let writers = format!(
        "cd /tmp && /usr/bin/sqlite3 w.db 'CREATE TABLE t(w INTEGER, i INTEGER)' && \
         for w in {ids}; do ( i=0; while [ $i -lt {rows} ]; do \
           /usr/bin/sqlite3 -cmd '.timeout 30000' w.db \"INSERT INTO t VALUES($w, $i)\" || exit 1; \
           i=$((i+1)); done ) & done; wait; \
         /usr/bin/sqlite3 w.db 'SELECT count(DISTINCT w * 1000000 + i) FROM t; PRAGMA integrity_check'"
    );
    let want = format!("{}\nok", WRITERS * rows);
    let writers_ms = timed_script(env, rt, runs, &writers, |o| o.trim() == want)?;
    Ok((python_ms, inserts_ms, writers_ms))
}

/// One transaction of `n` inserts, as a SQL script.
fn inserts_sql(n: u64) -> String {
    let mut sql = String::from("CREATE TABLE t(x INTEGER, y TEXT);\nBEGIN;\n");
    for i in 0..n {
        sql.push_str(&format!("INSERT INTO t VALUES({i}, 'row {i}');\n"));
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// The command that runs `args` in a fresh sandbox of `rt`.
fn command(env: &Env, rt: Runtime, id: &str, args: &[&str]) -> anyhow::Result<Command> {
    Ok(match rt {
        Runtime::Sentry(platform) => {
            let mut c = Command::new(&env.ringfence);
            c.args(["sentry", "run", "--platform", platform.name(), "--rootfs"])
                .arg(env.rootfs())
                .arg("--")
                .args(args);
            c
        }
        Runtime::Runc | Runtime::Runsc => {
            write_config(&env.bundle(), args)?;
            let mut c = if rt == Runtime::Runc {
                let mut c = Command::new("runc");
                c.args(["run", "-b"]);
                c
            } else {
                let mut c = Command::new("runsc");
                c.args(["--platform=ptrace", "--network=none", "--root"])
                    .arg(env.dir.path().join("runsc-state"))
                    .args(["run", "-bundle"]);
                c
            };
            c.arg(env.bundle()).arg(id);
            c
        }
    })
}

fn write_config(bundle: &Path, args: &[&str]) -> anyhow::Result<()> {
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]
        }
    });
    std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

fn run_ok(mut c: Command) -> anyhow::Result<String> {
    let out = c.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("{:?} failed ({}): {}", c, out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn new_id() -> String {
    format!(
        "rfbench-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Nanoseconds per operation reported by the micro-benchmark.
fn micro(env: &Env, rt: Runtime, what: &str, n: u64) -> anyhow::Result<f64> {
    let out = run_ok(command(env, rt, &new_id(), &["/bin/micro", what, &n.to_string()])?)?;
    let v = out.split_whitespace().nth(1).context("micro-benchmark output")?;
    Ok(v.parse::<f64>()?)
}

fn idle_rss(env: &Env, rt: Runtime) -> anyhow::Result<f64> {
    let id = new_id();
    let mut child = command(env, rt, &id, &["/bin/sleep", "30"])?
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Let the sandbox settle before measuring.
    std::thread::sleep(Duration::from_millis(1500));
    let kib = super::process::tree_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    match rt {
        Runtime::Runc => {
            let _ = Command::new("runc").args(["delete", "-f", &id]).stderr(Stdio::null()).status();
        }
        Runtime::Runsc => {
            let _ = Command::new("runsc")
                .arg("--root")
                .arg(env.dir.path().join("runsc-state"))
                .args(["delete", "-force", &id])
                .stderr(Stdio::null())
                .status();
        }
        Runtime::Sentry(_) => {}
    }
    Ok(kib as f64 / 1024.0)
}

fn measure(env: &Env, rt: Runtime, cfg: &BenchConfig) -> anyhow::Result<Row> {
    let (find_ms, find_entries) = find_usr(env, rt, cfg.runs.min(5))?;
    let (python_ms, inserts_ms, writers_ms) = programs(env, rt, cfg)?;
    let mut starts = Samples::default();
    for _ in 0..cfg.runs {
        let c = command(env, rt, &new_id(), &["/bin/true"])?;
        let t = Instant::now();
        run_ok(c)?;
        starts.push(t.elapsed());
    }
    Ok(Row {
        runtime: rt,
        start_ms: starts.percentile_ms(50.0),
        getpid_us: micro(env, rt, "getpid", cfg.iterations)? / 1000.0,
        clock_us: micro(env, rt, "clock", cfg.iterations * 10)? / 1000.0,
        open_us: micro(env, rt, "open", cfg.iterations / 4)? / 1000.0,
        forkexec_us: micro(env, rt, "forkexec", cfg.fork_iterations)? / 1000.0,
        pollrt_us: micro(env, rt, "pollrt", cfg.fork_iterations)? / 1000.0,
        idle_rss_mib: idle_rss(env, rt)?,
        find_ms,
        find_entries,
        python_ms,
        inserts_ms,
        writers_ms,
    })
}

pub fn run(cfg: &BenchConfig) -> anyhow::Result<Vec<Row>> {
    let env = setup(cfg)?;
    let mut rows = Vec::new();
    for rt in RUNTIMES {
        eprintln!("measuring {} ...", rt.name());
        rows.push(measure(&env, rt, cfg).with_context(|| format!("measuring {}", rt.name()))?);
    }
    if let Some(r) = rows.iter().find(|r| r.find_entries != rows[0].find_entries) {
        bail!(
            "find /usr counted {} entries in {} but {} in {}",
            r.find_entries,
            r.runtime.name(),
            rows[0].find_entries,
            rows[0].runtime.name()
        );
    }
    Ok(rows)
}

/// A row of the table.
struct Metric {
    name: &'static str,
    value: fn(&Row) -> f64,
    decimals: usize,
    target: &'static str,
}

const METRICS: [Metric; 11] = [
    Metric {
        name: "start-to-exit /bin/true (ms)",
        value: |r| r.start_ms,
        decimals: 1,
        target: "<= 0.5x runsc",
    },
    Metric {
        name: "getpid round trip (µs)",
        value: |r| r.getpid_us,
        decimals: 2,
        target: "<= 0.25x runsc",
    },
    Metric {
        name: "clock_gettime (µs)", value: |r| r.clock_us, decimals: 3, target: "<= 0.2 µs"
    },
    Metric { name: "open+read+close (µs)", value: |r| r.open_us, decimals: 1, target: "" },
    Metric {
        name: "fork+exec+wait /bin/true (µs)",
        value: |r| r.forkexec_us,
        decimals: 0,
        target: "",
    },
    Metric {
        name: "TCP round trip, poll() both ends (µs)",
        value: |r| r.pollrt_us,
        decimals: 1,
        target: "",
    },
    Metric {
        name: "find /usr | wc -l (ms)",
        value: |r| r.find_ms,
        decimals: 0,
        target: "<= 0.5x runsc",
    },
    Metric {
        name: "10 python3 start-ups (ms)",
        value: |r| r.python_ms,
        decimals: 0,
        target: "<= 0.5x runsc",
    },
    Metric {
        name: "sqlite3 inserts, 1 txn (ms)",
        value: |r| r.inserts_ms,
        decimals: 0,
        target: "",
    },
    Metric {
        name: "sqlite3, 4 concurrent writers (ms)",
        value: |r| r.writers_ms,
        decimals: 0,
        target: "",
    },
    Metric {
        name: "idle sandbox RSS (MiB)",
        value: |r| r.idle_rss_mib,
        decimals: 1,
        target: "<= 0.5x runsc",
    },
];

pub fn render(rows: &[Row], cfg: &BenchConfig) -> String {
    use std::fmt::Write;
    let get = |rt: Runtime| rows.iter().find(|r| r.runtime == rt);
    let (Some(kvm), Some(systrap), Some(runsc), Some(runc)) = (
        get(Runtime::Sentry(PlatformKind::Kvm)),
        get(Runtime::Sentry(PlatformKind::Systrap)),
        get(Runtime::Runsc),
        get(Runtime::Runc),
    ) else {
        return String::from("incomplete results\n");
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Sentry (KVM and systrap platforms) vs runsc (ptrace) vs runc: median of {} starts; {} getpid, {} clock_gettime, {} open+read+close, {} fork+exec+wait per runtime; find over {} entries, median of {}; sqlite3: {} inserts, {} writers x {} rows, python and sqlite medians of {}",
        cfg.runs,
        cfg.iterations,
        cfg.iterations * 10,
        cfg.iterations / 4,
        cfg.fork_iterations,
        kvm.find_entries,
        cfg.runs.min(5),
        cfg.inserts,
        WRITERS,
        cfg.writer_rows,
        cfg.runs.min(3)
    );
    let _ = writeln!(
        s,
        "{:<37} {:>13} {:>16} {:>14} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "metric",
        kvm.runtime.name(),
        systrap.runtime.name(),
        runsc.runtime.name(),
        runc.runtime.name(),
        "kvm/runsc",
        "sys/runsc",
        "sys/runc",
        "target"
    );
    for m in METRICS {
        let v = |r: &Row| format!("{:.*}", m.decimals, (m.value)(r));
        let _ = writeln!(
            s,
            "{:<37} {:>13} {:>16} {:>14} {:>10} {:>8}x {:>8}x {:>8}x {:>8}",
            m.name,
            v(kvm),
            v(systrap),
            v(runsc),
            v(runc),
            ratio((m.value)(kvm) / (m.value)(runsc)),
            ratio((m.value)(systrap) / (m.value)(runsc)),
            ratio((m.value)(systrap) / (m.value)(runc)),
            m.target
        );
    }
    s
}

/// Two decimals, or scientific notation for ratios too small to show that way (the vDSO's
/// clock_gettime against a syscall-bound runtime).
fn ratio(x: f64) -> String {
    if x == 0.0 || x >= 0.01 { format!("{x:.2}") } else { format!("{x:.1e}") }
}
