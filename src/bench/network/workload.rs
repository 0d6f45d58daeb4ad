//! The measuring program (benches/network/netbench.c, compiled static at bench time), its
//! plans, its results, and running it as a plain process inside a namespace.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::model::{Exchange, PATHS, Runner, Sizes, Target};
use super::objects::{ENDPOINT_PORT, NATIVE_PORT, SENTRY_PORT};

/// Compiles netbench into `dir`.
pub fn compile(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/network/netbench.c");
    let out = dir.join("netbench");
    let st = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .context("running cc (scripts/setup installs it)")?;
    if !st.success() {
        bail!("compiling {}", src.display());
    }
    Ok(out)
}

/// The addresses a client's plan points at.
pub struct Targets {
    pub pod_a: Ipv4Addr,
    pub pod_b: Ipv4Addr,
    pub service_a: Ipv4Addr,
    pub service_b: Ipv4Addr,
    pub service_many: Ipv4Addr,
    pub endpoints: Vec<Ipv4Addr>,
}

impl Targets {
    /// Where `target` is for `runner`'s client: its own kind of server (Sentry servers on one
    /// port, native ones on another), and the shared native listener of the 100 endpoints.
    fn of(&self, target: Target, runner: Runner) -> String {
        let port = match runner {
            Runner::Native => NATIVE_PORT,
            Runner::Sentry => SENTRY_PORT,
        };
        match target {
            Target::PodSameNode => format!("{}:{port}", self.pod_a),
            Target::PodOtherNode => format!("{}:{port}", self.pod_b),
            Target::ServiceSameNode => format!("{}:{port}", self.service_a),
            Target::ServiceOtherNode => format!("{}:{port}", self.service_b),
            Target::ServiceMany => format!("{}:{SENTRY_PORT}", self.service_many),
            Target::DirectMany => {
                let all: Vec<String> =
                    self.endpoints.iter().map(|e| format!("{e}:{ENDPOINT_PORT}")).collect();
                all.join(",")
            }
        }
    }
}

/// netbench's plan for `runner`: every path in report order, `rounds` times over (so that a
/// change in the host's load falls on every path alike).
pub fn plan(t: &Targets, runner: Runner, s: &Sizes) -> String {
    let mut out = String::new();
    for p in (0..s.rounds.max(1)).flat_map(|_| PATHS) {
        let to = t.of(p.target, runner);
        match p.exchange {
            Exchange::StreamAndRr => {
                out.push_str(&format!("{}.stream stream {} {to}\n", p.id, s.stream_ms));
                out.push_str(&format!("{}.rr rr {} {to}\n", p.id, s.round_trips));
            }
            Exchange::Connect => {
                out.push_str(&format!("{}.connect connect {} {to}\n", p.id, s.connects));
            }
        }
    }
    out
}

/// One line of netbench's results: a value, or the failure of a whole exchange.
#[derive(Debug, PartialEq)]
pub enum Line {
    Value { path: String, metric: String, value: f64 },
    Failed { path: String, exchange: String, errno: String },
}

pub fn parse(results: &str) -> Vec<Line> {
    results
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (label, metric, value) = (w.next()?, w.next()?, w.next()?);
            let (path, exchange) = label.split_once('.')?;
            if metric == "error" {
                let (path, exchange, errno) = (path.into(), exchange.into(), value.into());
                return Some(Line::Failed { path, exchange, errno });
            }
            let value = value.parse::<f64>().ok().filter(|v| v.is_finite())?;
            Some(Line::Value { path: path.into(), metric: metric.into(), value })
        })
        .collect()
}

/// A plain process, killed when dropped.
pub struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `netbench ARGS` in the network namespace of process `pid`.
fn in_namespace_of(pid: u32, netbench: &Path) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net")).arg(netbench);
    c
}

/// A native server on `port` in the namespace of process `pid`.
pub fn server_in_namespace_of(pid: u32, netbench: &Path, port: u16) -> anyhow::Result<Process> {
    let child = in_namespace_of(pid, netbench)
        .args(["server", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting a native server (nsenter is util-linux's)")?;
    Ok(Process(child))
}

/// A native server started by `command` (e.g. `ip netns exec`).
pub fn server(mut command: Command, port: u16) -> anyhow::Result<Process> {
    let child = command
        .args(["server", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting a native server")?;
    Ok(Process(child))
}

/// Runs `plan` natively in the namespace of process `pid`; its results, within `limit`.
pub fn run_native(
    pid: u32,
    netbench: &Path,
    dir: &Path,
    plan: &str,
    limit: Duration,
) -> anyhow::Result<String> {
    let (plan_path, out) = (dir.join("plan"), dir.join("result"));
    std::fs::write(&plan_path, plan)?;
    let child = in_namespace_of(pid, netbench)
        .arg("run")
        .arg(&plan_path)
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the native client")?;
    let mut p = Process(child);
    let start = Instant::now();
    loop {
        if let Some(st) = p.0.try_wait()? {
            if !st.success() {
                bail!("the native client ended with {st}");
            }
            return std::fs::read_to_string(&out).context("the native client's results");
        }
        if start.elapsed() > limit {
            bail!("the native client did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (up to `limit`) until a netbench server answers at every one of `addrs`, dialed
/// from the namespace of process `pid` (the client's: the path it will measure is in place).
pub fn wait_answering(
    pid: u32,
    netbench: &Path,
    addrs: &[SocketAddrV4],
    limit: Duration,
) -> anyhow::Result<()> {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let out = in_namespace_of(pid, netbench)
        .args(["probe", &limit.as_secs_f64().to_string(), &list.join(",")])
        .stdin(Stdio::null())
        .output()
        .context("running netbench probe")?;
    if !out.status.success() {
        bail!("{} (within {limit:?})", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cover_every_path_and_results_parse() {
        let t = Targets {
            pod_a: Ipv4Addr::new(10, 0, 0, 2),
            pod_b: Ipv4Addr::new(10, 0, 1, 2),
            service_a: Ipv4Addr::new(10, 1, 0, 10),
            service_b: Ipv4Addr::new(10, 1, 0, 11),
            service_many: Ipv4Addr::new(10, 1, 0, 12),
            endpoints: vec![Ipv4Addr::new(10, 2, 0, 10), Ipv4Addr::new(10, 2, 0, 11)],
        };
        let sizes = Sizes { stream_ms: 500, round_trips: 200, connects: 100, rounds: 2 };
        let p = plan(&t, Runner::Native, &sizes);
        assert_eq!(p.lines().count(), 2 * 10, "two rounds of 4 paths x 2 lines + 2 x 1:\n{p}");
        assert!(p.contains("pod-same-node.stream stream 500 10.0.0.2:81\n"), "{p}");
        assert!(p.contains("service-100-endpoints.connect connect 100 10.1.0.12:80\n"), "{p}");
        assert!(
            p.contains("direct-100-endpoints.connect connect 100 10.2.0.10:7000,10.2.0.11:7000\n")
        );
        assert!(plan(&t, Runner::Sentry, &sizes).contains("10.1.0.11:80\n"));
        let lines = parse("a.rr rr_p50_us 12.5\nb.stream error 104\nbad\na.rr rr_p99_us nan\n");
        assert_eq!(
            lines,
            vec![
                Line::Value { path: "a".into(), metric: "rr_p50_us".into(), value: 12.5 },
                Line::Failed { path: "b".into(), exchange: "stream".into(), errno: "104".into() },
            ]
        );
    }
}
