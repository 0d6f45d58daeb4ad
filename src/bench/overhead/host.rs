//! Running a job in one of the host's runtimes (native, runc, runsc, the Sentry): a fresh
//! sandbox per repetition; a failure is reported in the sandbox's own words.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::Context;
use super::model::{Job, RuntimeId};
use super::runtimes::{Host, Launch, wait_for};
use super::workloads::{self, PeerAddr};
use crate::bench::process;

/// The port httpd listens on inside a sandbox with its own network.
const HTTP_PORT: u16 = 8080;

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn new_id() -> String {
    let n = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("rfoverhead-{}-{n}", std::process::id())
}

fn skip_reason(host: &Host, ctx: &Context, rt: RuntimeId, job: Job) -> Option<String> {
    let needs_net = matches!(job, Job::Http | Job::Network);
    if needs_net && rt != RuntimeId::Native && host.net.is_none() {
        return Some(format!("no pod network on this host: {}", ctx.net_error));
    }
    if job == Job::App && !ctx.sqlite {
        return Some(format!("{} is not installed", super::rootfs::SQLITE3));
    }
    None
}

/// Why `job` cannot run in `rt` here, if it cannot.
pub fn skip(host: &Host, ctx: &Context, rt: RuntimeId, job: Job) -> Option<String> {
    skip_reason(host, ctx, rt, job)
}

/// One repetition of `job` in a fresh sandbox of `rt`: its (metric id, value) pairs, or why
/// it failed.
pub fn run_once(
    host: &Host,
    ctx: &Context,
    rt: RuntimeId,
    job: Job,
) -> Result<Vec<(String, f64)>, String> {
    match job {
        Job::Start => start(host, ctx, rt).map(|ms| vec![("start_exit_ms".to_owned(), ms)]),
        Job::Http => http(host, ctx, rt).map(|ms| vec![("http_ready_ms".to_owned(), ms)]),
        Job::Memory => memory(host, ctx, rt),
        _ => exec(host, ctx, rt, job).map(|out| workloads::parse_results(&out)),
    }
}

fn addresses(host: &Host, ctx: &Context, rt: RuntimeId) -> (PeerAddr, String) {
    match (&host.net, rt) {
        (Some(net), r) if r != RuntimeId::Native => {
            (PeerAddr { ip: net.host_ip.to_string(), port: ctx.peer_port }, HTTP_PORT.to_string())
        }
        _ => (PeerAddr { ip: "127.0.0.1".into(), port: ctx.peer_port }, String::new()),
    }
}

/// Output files of one sandbox, read back for results and failures.
struct Logs {
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Logs {
    fn new(host: &Host, id: &str) -> anyhow::Result<(Logs, Stdio, Stdio)> {
        let dir = host.dir.join("logs");
        std::fs::create_dir_all(&dir)?;
        let logs = Logs { out: dir.join(format!("{id}.out")), err: dir.join(format!("{id}.err")) };
        let (o, e) = (std::fs::File::create(&logs.out)?, std::fs::File::create(&logs.err)?);
        Ok((logs, o.into(), e.into()))
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The last lines of stderr, for a failure's reason.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.err).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    }
}

/// Starts `args` in a fresh sandbox of `rt`, its output to files.
fn spawn(
    host: &Host,
    rt: RuntimeId,
    args: &[String],
    volume: bool,
) -> Result<(String, Child, Logs), String> {
    let id = new_id();
    let launch = Launch { id: id.clone(), args, volume };
    let (logs, out, err) = Logs::new(host, &id).map_err(|e| e.to_string())?;
    let mut cmd = host.command(rt, &launch).map_err(|e| e.to_string())?;
    let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
    let child = child.map_err(|e| format!("starting {}: {e}", rt.id()))?;
    Ok((id, child, logs))
}

/// Runs `args` to its end within the job time limit; its stdout.
fn run_to_end(
    host: &Host,
    ctx: &Context,
    rt: RuntimeId,
    args: &[String],
    volume: bool,
) -> Result<String, String> {
    let (id, mut child, logs) = spawn(host, rt, args, volume)?;
    if !wait_for(&mut child, ctx.sizes.job_timeout) {
        host.stop(rt, &id, &mut child);
        return Err(format!("still running after {:?}: {}", ctx.sizes.job_timeout, logs.tail()));
    }
    match child.wait() {
        Ok(st) if st.success() => Ok(logs.stdout()),
        Ok(st) => Err(format!("{st}: {}", logs.tail())),
        Err(e) => Err(e.to_string()),
    }
}

fn start(host: &Host, ctx: &Context, rt: RuntimeId) -> Result<f64, String> {
    let (args, volume) =
        workloads::command(Job::Start, &ctx.sizes, &addresses(host, ctx, rt).0, "");
    let t = Instant::now();
    run_to_end(host, ctx, rt, &args, volume)?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

fn exec(host: &Host, ctx: &Context, rt: RuntimeId, job: Job) -> Result<String, String> {
    let (peer, _) = addresses(host, ctx, rt);
    let (args, volume) = workloads::command(job, &ctx.sizes, &peer, "");
    run_to_end(host, ctx, rt, &args, volume)
}

/// A free port on the host's loopback, for a native httpd.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Start of the sandbox to the first HTTP answer it gives the host.
fn http(host: &Host, ctx: &Context, rt: RuntimeId) -> Result<f64, String> {
    let (peer, listen) = addresses(host, ctx, rt);
    let (listen, target) = match (&host.net, rt) {
        (Some(net), r) if r != RuntimeId::Native => {
            (listen, format!("{}:{HTTP_PORT}", net.sandbox_ip))
        }
        _ => {
            let port = free_port()?;
            (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}"))
        }
    };
    let (args, volume) = workloads::command(Job::Http, &ctx.sizes, &peer, &listen);
    let t = Instant::now();
    let (id, mut child, logs) = spawn(host, rt, &args, volume)?;
    let result = loop {
        if answers(&target) {
            break Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        if let Ok(Some(st)) = child.try_wait() {
            break Err(format!("the server ended ({st}): {}", logs.tail()));
        }
        if t.elapsed() > ctx.sizes.job_timeout {
            break Err(format!("no answer within {:?}", ctx.sizes.job_timeout));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    host.stop(rt, &id, &mut child);
    result
}

/// Whether an HTTP server at `target` answers a GET with a status line.
fn answers(target: &str) -> bool {
    let Ok(addr) = target.parse() else { return false };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// An idle sandbox's RSS and PSS, summed over every process it is made of.
fn memory(host: &Host, ctx: &Context, rt: RuntimeId) -> Result<Vec<(String, f64)>, String> {
    let (peer, _) = addresses(host, ctx, rt);
    let (args, volume) = workloads::command(Job::Memory, &ctx.sizes, &peer, "");
    let (id, mut child, logs) = spawn(host, rt, &args, volume)?;
    std::thread::sleep(ctx.sizes.settle);
    let running = matches!(child.try_wait(), Ok(None));
    let pid = child.id();
    let (rss, pss) = (process::tree_rss_kib(pid), process::tree_pss_kib(pid));
    host.stop(rt, &id, &mut child);
    if !running {
        return Err(format!("the idle sandbox ended: {}", logs.tail()));
    }
    let pss_mib = pss as f64 / 1024.0;
    Ok(vec![
        ("idle_rss_mib".into(), rss as f64 / 1024.0),
        ("idle_pss_mib".into(), pss_mib),
        ("density".into(), super::density(ctx.density_gib, pss_mib)),
    ])
}
