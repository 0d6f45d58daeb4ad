//! Container probes: exec, httpGet and tcpSocket, with Kubernetes' thresholds and periods.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cri_client::Cri;

/// The state of one probe of one container.
#[derive(Clone, Debug)]
pub struct ProbeState {
    pub next: Instant,
    pub successes: u32,
    pub failures: u32,
    /// The current verdict after thresholds.
    pub ok: bool,
    pub last_message: String,
}

impl ProbeState {
    pub fn new(probe: &Value, initially_ok: bool) -> ProbeState {
        let delay = probe["initialDelaySeconds"].as_u64().unwrap_or(0);
        ProbeState {
            next: Instant::now() + Duration::from_secs(delay),
            successes: 0,
            failures: 0,
            ok: initially_ok,
            last_message: String::new(),
        }
    }
}

fn seconds(probe: &Value, field: &str, default: u64) -> u64 {
    probe[field].as_u64().filter(|v| *v > 0).unwrap_or(default)
}

/// Consecutive failures after which the probe counts as failed.
pub fn failure_threshold(probe: &Value) -> u32 {
    seconds(probe, "failureThreshold", 3) as u32
}

/// Why a probe spec cannot be run (the API should have refused it).
pub fn validate(probe: &Value) -> Result<(), String> {
    let handlers =
        ["exec", "httpGet", "tcpSocket", "grpc"].iter().filter(|h| !probe[**h].is_null()).count();
    match handlers {
        1 => Ok(()),
        0 => Err("the probe names no handler (exec, httpGet, tcpSocket or grpc)".into()),
        _ => Err("the probe names more than one handler".into()),
    }
}

/// Resolves a port that may be a container port name.
fn port(value: &Value, container: &Value) -> Result<u16, String> {
    if let Some(n) = value.as_u64() {
        return u16::try_from(n).ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {n}"));
    }
    let name = value.as_str().ok_or("the probe has no port")?;
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    container["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("no container port named {name:?}"))
}

/// Runs `probe` once: Ok(()) on success, Err(why) on failure.
pub async fn run_once(
    probe: &Value,
    container: &Value,
    pod_ip: Option<IpAddr>,
    cri: &mut Cri,
    container_id: &str,
) -> Result<(), String> {
    validate(probe)?;
    let timeout = Duration::from_secs(seconds(probe, "timeoutSeconds", 1));
    if let Some(cmd) = probe["exec"]["command"].as_array() {
        let cmd: Vec<String> = cmd.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect();
        let req = cri::ExecSyncRequest {
            container_id: container_id.into(),
            cmd,
            timeout: timeout.as_secs() as i64,
        };
        let r = tokio::time::timeout(timeout + Duration::from_secs(1), cri.runtime.exec_sync(req))
            .await
            .map_err(|_| format!("command timed out after {}s", timeout.as_secs()))?
            .map_err(|e| e.message().to_string())?
            .into_inner();
        return if r.exit_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "command exited with {}: {}",
                r.exit_code,
                String::from_utf8_lossy(&r.stdout).trim()
            ))
        };
    }
    let ip = pod_ip.ok_or("the pod has no IP")?;
    if !probe["tcpSocket"].is_null() {
        let addr = SocketAddr::new(ip, port(&probe["tcpSocket"]["port"], container)?);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: timeout")),
        };
    }
    if !probe["httpGet"].is_null() {
        let h = &probe["httpGet"];
        if h["scheme"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("https")) {
            return Err("HTTPS probes are not supported".into());
        }
        let addr = SocketAddr::new(ip, port(&h["port"], container)?);
        let path = h["path"].as_str().unwrap_or("/");
        let fut = async {
            let mut s = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
            let req = format!(
                "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 256];
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string();
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("malformed HTTP response {line:?}"))?;
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            }
        };
        return tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| format!("Get \"http://{addr}{path}\": timeout"))?;
    }
    Err("gRPC probes are not supported".into())
}

/// Runs a lifecycle hook (exec, httpGet, tcpSocket or sleep) to completion or until `limit`.
pub async fn run_hook(
    hook: &Value,
    container: &Value,
    pod_ip: Option<IpAddr>,
    cri: &mut Cri,
    container_id: &str,
    limit: Duration,
) -> Result<(), String> {
    if let Some(secs) = hook["sleep"]["seconds"].as_u64() {
        tokio::time::sleep(Duration::from_secs(secs).min(limit)).await;
        return Ok(());
    }
    let mut as_probe = hook.clone();
    as_probe["timeoutSeconds"] = limit.as_secs().max(1).into();
    run_once(&as_probe, container, pod_ip, cri, container_id).await
}

/// Runs the probe if it is due and updates the verdict; returns true when the verdict changed.
pub async fn tick(
    state: &mut ProbeState,
    probe: &Value,
    container: &Value,
    pod_ip: Option<IpAddr>,
    cri: &mut Cri,
    container_id: &str,
) -> bool {
    if Instant::now() < state.next {
        return false;
    }
    state.next = Instant::now() + Duration::from_secs(seconds(probe, "periodSeconds", 10));
    let before = state.ok;
    match run_once(probe, container, pod_ip, cri, container_id).await {
        Ok(()) => {
            state.failures = 0;
            state.successes += 1;
            if state.successes >= seconds(probe, "successThreshold", 1) as u32 {
                state.ok = true;
            }
        }
        Err(why) => {
            state.successes = 0;
            state.failures += 1;
            state.last_message = why;
            if state.failures >= failure_threshold(probe) {
                state.ok = false;
            }
        }
    }
    state.ok != before
}
