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

/// Which part of a log a reader wants (`kubectl logs` flags).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    /// The last N lines only.
    pub tail: Option<usize>,
    /// Lines written at or after this time only.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Each line prefixed with the time it was written.
    pub timestamps: bool,
    /// At most this many bytes of output in all (a follow ends there too).
    pub limit_bytes: Option<u64>,
}

impl LogQuery {
    /// `kubectl logs`' flags as the API and the kubelet take them (`tailLines`,
    /// `sinceSeconds` or `sinceTime` in RFC 3339, `timestamps`, `limitBytes`), each value
    /// given by `param` already percent-decoded; the error says which one is wrong.
    pub fn from_params(param: impl Fn(&str) -> Option<String>) -> Result<LogQuery, String> {
        let positive = |key: &str| -> Result<Option<u64>, String> {
            let Some(v) = param(key) else { return Ok(None) };
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{key}: Invalid value: {v:?}: must be a positive integer")),
            }
        };
        let tail = match param("tailLines") {
            None => None,
            Some(v) => Some(v.parse::<usize>().map_err(|_| {
                format!("tailLines: Invalid value: {v:?}: must be a non-negative integer")
            })?),
        };
        let since = match (positive("sinceSeconds")?, param("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into());
            }
            (Some(secs), None) => {
                let ago = chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
                Some(
                    chrono::Utc::now()
                        .checked_sub_signed(ago)
                        .unwrap_or(chrono::DateTime::UNIX_EPOCH),
                )
            }
            (None, Some(t)) => Some(
                chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| format!("sinceTime: Invalid value: {t:?}: {e}"))?
                    .to_utc(),
            ),
            (None, None) => None,
        };
        Ok(LogQuery {
            tail,
            since,
            timestamps: param("timestamps").is_some_and(|v| v == "true" || v == "1"),
            limit_bytes: positive("limitBytes")?,
        })
    }
}

/// The text of CRI log records that `query` selects, reassembling partial lines. A line's time
/// is that of its first record.
pub fn read_text(path: &Path, query: &LogQuery) -> std::io::Result<Vec<u8>> {
    let data = std::fs::read(path)?;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_wanted = true;
    for rec in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut parts = rec.splitn(4, |&b| b == b' ');
        let (Some(ts), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let text = parts.next().unwrap_or_default();
        if pending.is_empty() {
            pending_wanted = query.since.is_none_or(|since| {
                std::str::from_utf8(ts)
                    .ok()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t >= since)
            });
            if query.timestamps {
                pending.extend_from_slice(ts);
                pending.push(b' ');
            }
        }
        pending.extend_from_slice(text);
        if tag == b"F" {
            pending.push(b'\n');
            let line = std::mem::take(&mut pending);
            if pending_wanted {
                lines.push(line);
            }
        }
    }
    if !pending.is_empty() && pending_wanted {
        lines.push(pending);
    }
    let skip = query.tail.map(|t| lines.len().saturating_sub(t)).unwrap_or(0);
    let mut out: Vec<u8> = lines.into_iter().skip(skip).flatten().collect();
    if let Some(limit) = query.limit_bytes {
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    Ok(out)
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
        let all = LogQuery::default();
        assert_eq!(read_text(&path, &all).unwrap(), b"one\npartial\nthree\n");
        let last = LogQuery { tail: Some(1), ..all.clone() };
        assert_eq!(read_text(&path, &last).unwrap(), b"three\n");
        let stamped = LogQuery { timestamps: true, ..last };
        assert!(read_text(&path, &stamped).unwrap().starts_with(b"2024-01-01T00:00:01Z three"));
        // A partial line counts from its first record's time.
        let since = |t: &str| LogQuery {
            since: Some(chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc()),
            ..LogQuery::default()
        };
        assert_eq!(
            read_text(&path, &since("2024-01-01T00:00:00.1Z")).unwrap(),
            b"partial\nthree\n"
        );
        assert_eq!(read_text(&path, &since("2024-01-01T00:00:00.25Z")).unwrap(), b"three\n");
        assert_eq!(read_text(&path, &since("2025-01-01T00:00:00Z")).unwrap(), b"");
        let limited = LogQuery { limit_bytes: Some(6), ..LogQuery::default() };
        assert_eq!(read_text(&path, &limited).unwrap(), b"one\npa");
    }
}
