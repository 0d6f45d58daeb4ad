//! A blocking client for the API socket (one request per connection), for programs that
//! drive a VMM: the command line's `vm snapshot`, the CRI's microVM templates, tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the API socket {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{method} {uri}: {status} {message}")]
    Refused { method: String, uri: String, status: u16, message: String },
}

/// Sends one request and returns (status, body).
pub fn call(
    sock: &Path,
    method: &str,
    uri: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String), ClientError> {
    let io = |source| ClientError::Io { path: sock.display().to_string(), source };
    let mut s = UnixStream::connect(sock).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    let head = format!(
        "{method} {uri} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body).map_err(io)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).map_err(io)?;
    let status = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_err(io)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length.min(1 << 20)];
    r.read_exact(&mut body).map_err(io)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sends one request that must succeed (2xx); the VMM's fault message otherwise.
pub fn expect_ok(
    sock: &Path,
    method: &str,
    uri: &str,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<String, ClientError> {
    let (status, reply) = call(sock, method, uri, body.to_string().as_bytes(), timeout)?;
    if (200..300).contains(&status) {
        return Ok(reply);
    }
    let message = serde_json::from_str::<serde_json::Value>(&reply)
        .ok()
        .and_then(|v| v["fault_message"].as_str().map(str::to_owned))
        .unwrap_or(reply);
    Err(ClientError::Refused { method: method.into(), uri: uri.into(), status, message })
}

/// Pauses the machine, snapshots it to `snapshot` and `memory`, and resumes it if asked.
pub fn snapshot(
    sock: &Path,
    kind: crate::snapshot::SnapshotType,
    snapshot: &Path,
    memory: &Path,
    resume: bool,
) -> Result<(), ClientError> {
    let t = Duration::from_secs(120);
    expect_ok(sock, "PATCH", "/vm", &serde_json::json!({"state": "Paused"}), t)?;
    let create = serde_json::json!({
        "snapshot_type": kind,
        "snapshot_path": snapshot,
        "mem_file_path": memory,
    });
    let made = expect_ok(sock, "PUT", "/snapshot/create", &create, t);
    if resume {
        expect_ok(sock, "PATCH", "/vm", &serde_json::json!({"state": "Resumed"}), t)?;
    }
    made.map(|_| ())
}
