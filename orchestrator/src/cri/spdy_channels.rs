//! `kubectl exec` and `attach` over SPDY/3.1 (remote command protocols v4.channel.k8s.io down
//! to channel.k8s.io, which kubelets and clients up to Kubernetes 1.29 speak, and later ones
//! when WebSockets are turned off): the client opens one stream per channel, named by its
//! `streamType` header (error, stdin, stdout, stderr, resize). Here those streams become the
//! channel messages of the WebSocket protocol (a channel byte, then data), so that a session
//! is served the same way over either transport.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::spdy::{self, FLAG_FIN, Frame, HeaderCodec, SpdyError};

/// The remote command protocols served over SPDY, preferred first.
pub const PROTOCOLS: [&str; 4] =
    ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];

/// How long the client has to open the streams its request promised.
const STREAMS_WAIT: Duration = Duration::from_secs(30);

/// The channel numbers of the WebSocket protocol.
pub mod channel {
    pub const STDIN: u8 = 0;
    pub const STDOUT: u8 = 1;
    pub const STDERR: u8 = 2;
    pub const STATUS: u8 = 3;
    pub const RESIZE: u8 = 4;
    /// `[CLOSE, n]`: the client closed its stream `n` (v5; SPDY: a FIN on stdin).
    pub const CLOSE: u8 = 255;
}

/// The streams a request asked for (and so the client will open, besides `error`).
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Expected {
    fn wants(&self, kind: &str) -> bool {
        match kind {
            "error" => true,
            "stdin" => self.stdin,
            "stdout" => self.stdout,
            // With a terminal, errors come on stdout.
            "stderr" => self.stderr && !self.tty,
            "resize" => self.tty,
            _ => false,
        }
    }

    fn count(&self) -> usize {
        ["error", "stdin", "stdout", "stderr", "resize"].iter().filter(|k| self.wants(k)).count()
    }
}

/// A session's channels: messages from the client (stdin, resize, close) and to it
/// (stdout, stderr, status); dropping `to_client` ends the session.
pub struct Channels {
    pub from_client: mpsc::Receiver<Vec<u8>>,
    pub to_client: mpsc::Sender<Vec<u8>>,
}

fn data(stream: u32, flags: u8, bytes: Vec<u8>) -> Vec<u8> {
    spdy::encode(&Frame::Data { stream, flags, data: bytes })
}

/// Serves an upgraded connection; returns once the client opened every stream `expected`
/// names (an error when it does not in time, or breaks the protocol).
pub async fn accept(conn: TcpStream, expected: Expected) -> Result<Channels, SpdyError> {
    let (rd, mut wr) = conn.into_split();
    let (frames, mut queue) = mpsc::channel::<Vec<u8>>(64);
    let (input, from_client) = mpsc::channel::<Vec<u8>>(64);
    let (to_client, mut output) = mpsc::channel::<Vec<u8>>(64);
    let (opened_tx, opened) = oneshot::channel::<HashMap<String, u32>>();
    tokio::spawn(read_client(rd, expected, frames.clone(), input, opened_tx));
    tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let streams = tokio::time::timeout(STREAMS_WAIT, opened)
        .await
        .map_err(|_| SpdyError::Malformed("the client did not open the streams it asked for"))?
        .map_err(|_| SpdyError::Malformed("the client went away before opening its streams"))?;
    // Output: each message to its stream; at the end every stream of ours is finished.
    tokio::spawn(async move {
        let id = |kind: &str| streams.get(kind).copied();
        while let Some(msg) = output.recv().await {
            let Some((&ch, bytes)) = msg.split_first() else { continue };
            let stream = match ch {
                channel::STDOUT => id("stdout"),
                channel::STDERR => id("stderr").or_else(|| id("stdout")),
                channel::STATUS => id("error"),
                _ => None,
            };
            if let Some(stream) = stream
                && frames.send(data(stream, 0, bytes.to_vec())).await.is_err()
            {
                return;
            }
        }
        for kind in ["stdout", "stderr", "error"] {
            if let Some(stream) = id(kind) {
                let _ = frames.send(data(stream, FLAG_FIN, Vec::new())).await;
            }
        }
        let goaway = Frame::Control { kind: spdy::GOAWAY, flags: 0, payload: vec![0; 8] };
        let _ = frames.send(spdy::encode(&goaway)).await;
    });
    Ok(Channels { from_client, to_client })
}

/// Reads the client's frames: answers its SYN_STREAMs, reports the streams once all expected
/// ones are open, and turns stdin and resize data into channel messages.
async fn read_client(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    expected: Expected,
    frames: mpsc::Sender<Vec<u8>>,
    input: mpsc::Sender<Vec<u8>>,
    opened: oneshot::Sender<HashMap<String, u32>>,
) -> Result<(), SpdyError> {
    let mut codec = HeaderCodec::default();
    let mut streams: HashMap<String, u32> = HashMap::new();
    let mut opened = Some(opened);
    // Resize requests are JSON objects one after another; a frame may end inside one.
    let mut resize = Vec::new();
    loop {
        let mut head = [0u8; 8];
        if rd.read_exact(&mut head).await.is_err() {
            return Ok(());
        }
        let mut payload = vec![0u8; spdy::payload_len(&head)?];
        if rd.read_exact(&mut payload).await.is_err() {
            return Ok(());
        }
        match spdy::decode(&head, payload)? {
            Frame::Control { kind: spdy::SYN_STREAM, payload, .. } => {
                let id = spdy::stream_of(&payload)?;
                let block = payload.get(10..).ok_or(SpdyError::Malformed("short SYN_STREAM"))?;
                let pairs = codec.read(block)?;
                let mut reply = id.to_be_bytes().to_vec();
                reply.extend_from_slice(&codec.write(&[])?);
                let frame = Frame::Control { kind: spdy::SYN_REPLY, flags: 0, payload: reply };
                if frames.send(spdy::encode(&frame)).await.is_err() {
                    return Ok(());
                }
                let kind = pairs.iter().find(|(n, _)| n == "streamtype").map(|(_, v)| v.clone());
                match kind.filter(|k| expected.wants(k)) {
                    Some(kind) => {
                        streams.insert(kind, id);
                    }
                    // A stream nobody asked for gets no data and is finished at once.
                    None => {
                        let _ = frames.send(data(id, FLAG_FIN, Vec::new())).await;
                    }
                }
                if streams.len() == expected.count()
                    && let Some(tx) = opened.take()
                {
                    let _ = tx.send(streams.clone());
                }
            }
            Frame::Control { kind: spdy::PING, flags, payload } => {
                let pong = Frame::Control { kind: spdy::PING, flags, payload };
                if frames.send(spdy::encode(&pong)).await.is_err() {
                    return Ok(());
                }
            }
            Frame::Control { kind: spdy::GOAWAY, .. } => return Ok(()),
            // SETTINGS, WINDOW_UPDATE, RST_STREAM and the rest change nothing here.
            Frame::Control { .. } => {}
            Frame::Data { stream, flags, data } => {
                let fin = flags & FLAG_FIN != 0;
                if Some(&stream) == streams.get("stdin") {
                    if !data.is_empty() {
                        let mut msg = vec![channel::STDIN];
                        msg.extend_from_slice(&data);
                        if input.send(msg).await.is_err() {
                            return Ok(());
                        }
                    }
                    if fin {
                        let _ = input.send(vec![channel::CLOSE, channel::STDIN]).await;
                    }
                } else if Some(&stream) == streams.get("resize") {
                    resize.extend_from_slice(&data);
                    if resize.len() > 64 << 10 {
                        return Err(SpdyError::Malformed("resize stream without a message end"));
                    }
                    for msg in take_json_values(&mut resize) {
                        let mut m = vec![channel::RESIZE];
                        m.extend_from_slice(&msg);
                        if input.send(m).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// The complete JSON values at the start of `buf`, removed from it (a partial one stays).
fn take_json_values(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut end = 0;
    loop {
        match values.next() {
            Some(Ok(_)) => {
                let at = values.byte_offset();
                out.push(buf[end..at].to_vec());
                end = at;
            }
            Some(Err(e)) if e.is_eof() => break,
            // Not JSON: nothing in it can be a size; drop what is there.
            Some(Err(_)) => {
                end = buf.len();
                break;
            }
            None => break,
        }
    }
    buf.drain(..end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_split_where_their_json_ends() {
        let mut buf = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
        let got = take_json_values(&mut buf);
        assert_eq!(got.len(), 1);
        assert_eq!(
            crate::cri::terminal::parse_resize(&got[0]).map(|s| (s.cols, s.rows)),
            Some((80, 24))
        );
        assert_eq!(buf, br#"{"Width":100,"#.to_vec());
        buf.extend_from_slice(br#""Height":30} "#);
        let got = take_json_values(&mut buf);
        assert_eq!(got.len(), 1);
        let mut junk = b"\xff\x00not json".to_vec();
        assert!(take_json_values(&mut junk).is_empty());
        assert!(junk.is_empty());
    }

    #[test]
    fn expected_streams_follow_the_request() {
        let e = Expected { stdin: true, stdout: true, stderr: true, tty: false };
        assert_eq!(e.count(), 4);
        let t = Expected { stdin: true, stdout: true, stderr: true, tty: true };
        assert_eq!(t.count(), 4, "error, stdin, stdout, resize");
        assert!(!t.wants("stderr") && t.wants("resize") && !t.wants("bogus"));
    }
}
