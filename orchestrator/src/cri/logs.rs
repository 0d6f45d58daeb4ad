//! Container logs in the CRI format (`<RFC3339Nano time> <stdout|stderr> <F|P> <text>`), one
//! line per log line, as kubectl logs expects them from the node.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Longest line written before splitting it into partial (P) records.
const MAX_LINE: usize = 16 * 1024;

/// A log file shared by a container's stdout and stderr writers.
pub type LogFile = Arc<Mutex<std::fs::File>>;

pub fn open(path: &Path) -> std::io::Result<LogFile> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(Arc::new(Mutex::new(f)))
}

/// Where attached clients receive a container's output: (channel, bytes), 1 stdout, 2 stderr.
pub type Tap = tokio::sync::broadcast::Sender<(u8, Vec<u8>)>;

/// Copies what arrives on `pipe` into `log` as `stream` records until the pipe closes, and
/// to `tap` (for `kubectl attach`) when given.
pub fn forward(
    pipe: OwnedFd,
    stream: &'static str,
    log: LogFile,
    tap: Option<Tap>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let channel = if stream == "stderr" { 2 } else { 1 };
    std::thread::Builder::new().name(format!("log-{stream}")).spawn(move || {
        let mut r = BufReader::new(std::fs::File::from(pipe));
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = match r.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut line) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            if let Some(t) = &tap {
                // No receivers is fine: nobody is attached.
                let _ = t.send((channel, line.clone()));
            }
            let full = line.last() == Some(&b'\n');
            if full {
                line.pop();
            }
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let mut rec = format!("{ts} {stream} {} ", if full { 'F' } else { 'P' }).into_bytes();
            rec.extend_from_slice(&line);
            rec.push(b'\n');
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            if f.write_all(&rec).is_err() {
                return;
            }
        }
    })
}

/// The text of CRI log records, reassembling partial lines; `tail` keeps the last N lines.
pub fn read_text(path: &Path, tail: Option<usize>, timestamps: bool) -> std::io::Result<Vec<u8>> {
    let data = std::fs::read(path)?;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for rec in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut parts = rec.splitn(4, |&b| b == b' ');
        let (Some(ts), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let text = parts.next().unwrap_or_default();
        if pending.is_empty() && timestamps {
            pending.extend_from_slice(ts);
            pending.push(b' ');
        }
        pending.extend_from_slice(text);
        if tag == b"F" {
            pending.push(b'\n');
            lines.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        lines.push(pending);
    }
    let skip = tail.map(|t| lines.len().saturating_sub(t)).unwrap_or(0);
    Ok(lines.into_iter().skip(skip).flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(
            &path,
            "2024-01-01T00:00:00.000000001Z stdout F one\n2024-01-01T00:00:00.2Z stdout P par\n2024-01-01T00:00:00.3Z stdout F tial\n2024-01-01T00:00:01Z stderr F three\n",
        )
        .unwrap();
        assert_eq!(read_text(&path, None, false).unwrap(), b"one\npartial\nthree\n");
        assert_eq!(read_text(&path, Some(1), false).unwrap(), b"three\n");
        assert!(
            read_text(&path, Some(1), true).unwrap().starts_with(b"2024-01-01T00:00:01Z three")
        );
    }
}
