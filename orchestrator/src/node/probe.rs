//! Container probes: exec, httpGet and tcpSocket, with Kubernetes' thresholds and periods. The
//! verdict bookkeeping ([`ProbeState`]) is pure; [`run_once`] and [`run_hook`] do the I/O.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cri_client::Cri;
use super::error::NodeError;

/// The state of one probe of one container.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeState {
    pub next: Instant,
    pub successes: u32,
    pub failures: u32,
    /// The current verdict after thresholds.
    pub ok: bool,
    pub last_message: String,
}

impl ProbeState {
    /// A probe of a container started at `now`; the first run waits `initialDelaySeconds`.
    pub fn new(probe: &Probe, initially_ok: bool, now: Instant) -> ProbeState {
        let delay = probe.initial_delay_seconds.and_then(|d| u64::try_from(d).ok()).unwrap_or(0);
        ProbeState {
            next: now + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            ok: initially_ok,
            last_message: String::new(),
        }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records one run's result at `now`; returns true when the verdict changed.
    pub fn record(&mut self, probe: &Probe, result: &Result<(), NodeError>, now: Instant) -> bool {
        self.next = now + Duration::from_secs(seconds(probe.period_seconds, 10));
        let before = self.ok;
        match result {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= seconds(probe.success_threshold, 1) as u32 {
                    self.ok = true;
                }
            }
            Err(why) => {
                self.successes = 0;
                self.failures += 1;
                self.last_message = why.to_string();
                if self.failures >= failure_threshold(probe) {
                    self.ok = false;
                }
            }
        }
        self.ok != before
    }

    /// Whether the probe has failed as often in a row as it may.
    pub fn exhausted(&self, probe: &Probe) -> bool {
        !self.ok && self.failures >= failure_threshold(probe)
    }
}

/// A positive number of seconds (or a count) from the spec, else the default.
fn seconds(value: Option<i32>, default: u64) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0).unwrap_or(default)
}

/// Consecutive failures after which the probe counts as failed.
pub fn failure_threshold(probe: &Probe) -> u32 {
    seconds(probe.failure_threshold, 3) as u32
}

/// What a probe does, once it names exactly one handler.
enum Handler<'a> {
    Exec(&'a ExecAction),
    Http(&'a HTTPGetAction),
    Tcp(&'a TCPSocketAction),
    Grpc,
}

fn handler(probe: &Probe) -> Result<Handler<'_>, NodeError> {
    let mut found = Vec::new();
    if let Some(e) = &probe.exec {
        found.push(Handler::Exec(e));
    }
    if let Some(h) = &probe.http_get {
        found.push(Handler::Http(h));
    }
    if let Some(t) = &probe.tcp_socket {
        found.push(Handler::Tcp(t));
    }
    if probe.grpc.is_some() {
        found.push(Handler::Grpc);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(NodeError::probe("the probe names no handler (exec, httpGet, tcpSocket or grpc)")),
        _ => Err(NodeError::probe("the probe names more than one handler")),
    }
}

/// Why a probe spec cannot be run (the API should have refused it).
pub fn validate(probe: &Probe) -> Result<(), NodeError> {
    handler(probe).map(|_| ())
}

/// Resolves a port that may be a container port name.
fn port(value: &IntOrString, container: &Container) -> Result<u16, NodeError> {
    let name = match value {
        IntOrString::Int(n) => {
            return u16::try_from(*n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| NodeError::probe(format!("invalid port {n}")));
        }
        IntOrString::String(s) => s,
    };
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name.as_str()))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .ok_or_else(|| NodeError::probe(format!("no container port named {name:?}")))
}

/// Runs `probe` once: Ok(()) on success, Err(why) on failure.
pub async fn run_once(
    probe: &Probe,
    container: &Container,
    pod_ip: Option<IpAddr>,
    cri: &mut Cri,
    container_id: &str,
) -> Result<(), NodeError> {
    let timeout = Duration::from_secs(seconds(probe.timeout_seconds, 1));
    let ip = || pod_ip.ok_or_else(|| NodeError::probe("the pod has no IP"));
    match handler(probe)? {
        Handler::Exec(exec) => exec_probe(exec, timeout, cri, container_id).await,
        Handler::Tcp(t) => tcp_probe(t, container, ip()?, timeout).await,
        Handler::Http(h) => http_probe(h, container, ip()?, timeout).await,
        Handler::Grpc => Err(NodeError::probe("gRPC probes are not supported")),
    }
}

async fn tcp_probe(
    t: &TCPSocketAction,
    container: &Container,
    ip: IpAddr,
    timeout: Duration,
) -> Result<(), NodeError> {
    let addr = SocketAddr::new(ip, port(&t.port, container)?);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(NodeError::probe(format!("dial tcp {addr}: {e}"))),
        Err(_) => Err(NodeError::probe(format!("dial tcp {addr}: timeout"))),
    }
}

async fn exec_probe(
    exec: &ExecAction,
    timeout: Duration,
    cri: &mut Cri,
    container_id: &str,
) -> Result<(), NodeError> {
    let req = cri::ExecSyncRequest {
        container_id: container_id.into(),
        cmd: exec.command.clone().unwrap_or_default(),
        timeout: timeout.as_secs() as i64,
    };
    let r = tokio::time::timeout(timeout + Duration::from_secs(1), cri.runtime.exec_sync(req))
        .await
        .map_err(|_| NodeError::probe(format!("command timed out after {}s", timeout.as_secs())))?
        .map_err(|e| NodeError::probe(e.message()))?
        .into_inner();
    if r.exit_code == 0 {
        Ok(())
    } else {
        Err(NodeError::probe(format!(
            "command exited with {}: {}",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).trim()
        )))
    }
}

async fn http_probe(
    h: &HTTPGetAction,
    container: &Container,
    ip: IpAddr,
    timeout: Duration,
) -> Result<(), NodeError> {
    if h.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("https")) {
        return Err(NodeError::probe("HTTPS probes are not supported"));
    }
    let addr = SocketAddr::new(ip, port(&h.port, container)?);
    let path = h.path.as_deref().unwrap_or("/");
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| NodeError::probe(format!("Get \"http://{addr}{path}\": {e}")))?;
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.map_err(|e| NodeError::probe(e.to_string()))?;
        let mut buf = vec![0u8; 256];
        let n = s.read(&mut buf).await.map_err(|e| NodeError::probe(e.to_string()))?;
        let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string();
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| NodeError::probe(format!("malformed HTTP response {line:?}")))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(NodeError::probe(format!("HTTP probe failed with statuscode: {code}")))
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| NodeError::probe(format!("Get \"http://{addr}{path}\": timeout")))?
}

/// Runs a lifecycle hook (exec, httpGet, tcpSocket or sleep) to completion or until `limit`.
pub async fn run_hook(
    hook: &LifecycleHandler,
    container: &Container,
    pod_ip: Option<IpAddr>,
    cri: &mut Cri,
    container_id: &str,
    limit: Duration,
) -> Result<(), NodeError> {
    if let Some(sleep) = &hook.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(limit)).await;
        return Ok(());
    }
    // A hook runs like a probe whose timeout is what is left of the grace period.
    let as_probe = Probe {
        exec: hook.exec.clone(),
        http_get: hook.http_get.clone(),
        tcp_socket: hook.tcp_socket.clone(),
        timeout_seconds: Some(i32::try_from(limit.as_secs().max(1)).unwrap_or(i32::MAX)),
        ..Default::default()
    };
    run_once(&as_probe, container, pod_ip, cri, container_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(failure: i32, success: i32, period: i32) -> Probe {
        Probe {
            failure_threshold: Some(failure),
            success_threshold: Some(success),
            period_seconds: Some(period),
            initial_delay_seconds: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_follow_the_thresholds() {
        let p = probe(2, 2, 3);
        let t0 = Instant::now();
        let mut st = ProbeState::new(&p, true, t0);
        assert!(!st.due(t0) && st.due(t0 + Duration::from_secs(5)));
        assert!(
            !st.record(&p, &Err(NodeError::probe("no")), t0),
            "one failure of two keeps the verdict"
        );
        assert_eq!(st.next, t0 + Duration::from_secs(3));
        assert!(st.record(&p, &Err(NodeError::probe("still no")), t0), "the second turns it");
        assert!(st.exhausted(&p) && st.last_message == "still no");
        assert!(!st.record(&p, &Ok(()), t0), "one success of two is not enough");
        assert!(st.record(&p, &Ok(()), t0) && st.ok && !st.exhausted(&p));
    }

    #[test]
    fn ports_by_number_or_name() {
        let c: Container = serde_yaml::from_str(
            "{name: c, ports: [{name: http, containerPort: 8080}, {containerPort: 9}]}",
        )
        .unwrap();
        assert_eq!(port(&IntOrString::Int(80), &c).unwrap(), 80);
        assert_eq!(port(&IntOrString::String("http".into()), &c).unwrap(), 8080);
        assert_eq!(port(&IntOrString::String("81".into()), &c).unwrap(), 81);
        assert!(port(&IntOrString::String("nope".into()), &c).is_err());
        assert!(port(&IntOrString::Int(0), &c).is_err());
        assert!(validate(&Probe::default()).is_err());
    }
}
