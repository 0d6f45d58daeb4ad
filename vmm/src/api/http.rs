//! Just enough HTTP/1.1 for the API socket: one request per read, parsed with hard limits
//! (request head, body size); anything malformed is an error the server answers with 400.

use std::io::{BufRead, BufReader, Read, Write};

/// Largest body accepted (Firecracker's default payload limit is 51200 bytes).
pub const MAX_BODY: usize = 51_200;
const MAX_HEAD: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The peer went away before a request.
    Closed,
    Malformed(String),
    TooLarge(usize),
}

/// Reads one request from `r`.
pub fn read_request<R: Read>(r: &mut BufReader<R>) -> Result<Request, HttpError> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take((MAX_HEAD - head.len()) as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| HttpError::Malformed(e.to_string()))?;
        if n == 0 {
            return if head.is_empty() {
                Err(HttpError::Closed)
            } else {
                Err(HttpError::Malformed("truncated request".into()))
            };
        }
        if head.len() + n > MAX_HEAD {
            return Err(HttpError::Malformed("request head too large".into()));
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = std::str::from_utf8(&head).map_err(|_| HttpError::Malformed("not UTF-8".into()))?;
    let mut lines = text.lines();
    let start = lines.next().unwrap_or("");
    let mut parts = start.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed(format!("bad request line {start:?}")));
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Err(HttpError::Malformed(format!("bad request line {start:?}")));
    }
    let mut length = 0usize;
    for l in lines.filter(|l| !l.is_empty()) {
        let (name, value) =
            l.split_once(':').ok_or_else(|| HttpError::Malformed(format!("bad header {l:?}")))?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = value
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed(format!("bad Content-Length {value:?}")))?;
        }
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::Malformed("chunked bodies are not accepted".into()));
        }
    }
    if length > MAX_BODY {
        // Drain what fits a small buffer so that the answer can be read; then the connection
        // is closed.
        return Err(HttpError::TooLarge(length));
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).map_err(|_| HttpError::Malformed("truncated body".into()))?;
    Ok(Request { method: method.to_owned(), path: path.to_owned(), body })
}

/// Writes a response with an optional JSON body.
pub fn write_response<W: Write>(w: &mut W, status: u16, body: Option<&str>) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    };
    let body = body.unwrap_or("");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nServer: ringfence-vmm\r\n");
    if !body.is_empty() {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    } else {
        out.push_str("Content-Length: 0\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    w.write_all(out.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, HttpError> {
        read_request(&mut BufReader::new(raw))
    }

    #[test]
    fn requests_parse_within_limits() {
        let r = parse(b"PUT /boot-source HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.body.as_slice()),
            ("PUT", "/boot-source", &b"{}"[..])
        );
        assert_eq!(parse(b""), Err(HttpError::Closed));
        for bad in [
            &b"GARBAGE\r\n\r\n"[..],
            b"PUT / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}",
            b"PUT / HTTP/1.1\r\nnocolon\r\n\r\n",
            b"PUT / SPDY/3\r\n\r\n",
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Err(HttpError::Malformed(_))), "{bad:?}");
        }
        let huge = format!("PUT / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1);
        assert_eq!(parse(huge.as_bytes()), Err(HttpError::TooLarge(MAX_BODY + 1)));
        let long_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse(long_head.as_bytes()), Err(HttpError::Malformed(_))));
    }
}
