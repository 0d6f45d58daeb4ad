//! `kubectl port-forward` sessions (protocol `portforward.k8s.io` over SPDY/3.1): for each
//! forwarded connection the client opens an error stream and a data stream tied by a
//! `requestid` header; the data stream is relayed to the port inside the pod's network
//! namespace (so ports bound to the pod's loopback work too), and failures are reported on
//! the error stream.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::handler::{PodStream, RunningSandbox};
use super::spdy::{self, FLAG_FIN, Frame, HeaderCodec};

pub const PROTOCOL: &str = "portforward.k8s.io";

/// Opens a stream to `port` on the pod's loopback through its sandbox.
async fn connect(sandbox: Arc<dyn RunningSandbox>, port: u16) -> std::io::Result<PodConn> {
    let opened = tokio::task::spawn_blocking(move || sandbox.forward(port))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    match opened {
        PodStream::Tcp(s) => {
            s.set_nonblocking(true)?;
            Ok(PodConn::Tcp(TcpStream::from_std(s)?))
        }
        PodStream::Unix(s) => {
            s.set_nonblocking(true)?;
            Ok(PodConn::Unix(tokio::net::UnixStream::from_std(s)?))
        }
    }
}

/// A forwarded connection's pod end.
enum PodConn {
    Tcp(TcpStream),
    Unix(tokio::net::UnixStream),
}

fn header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn data(stream: u32, flags: u8, bytes: Vec<u8>) -> Vec<u8> {
    spdy::encode(&Frame::Data { stream, flags, data: bytes })
}

/// Relays one forwarded connection until either side ends it.
async fn relay(
    sandbox: Arc<dyn RunningSandbox>,
    port: u16,
    stream: u32,
    error_stream: Option<u32>,
    from_client: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let pod = match connect(sandbox, port).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(es) = error_stream {
                let msg = format!("error forwarding port {port} to pod: {e}");
                let _ = out.send(data(es, FLAG_FIN, msg.into_bytes())).await;
            }
            let _ = out.send(data(stream, FLAG_FIN, Vec::new())).await;
            return;
        }
    };
    match pod {
        PodConn::Tcp(t) => carry(t, stream, from_client, out.clone()).await,
        PodConn::Unix(u) => carry(u, stream, from_client, out.clone()).await,
    }
    if let Some(es) = error_stream {
        let _ = out.send(data(es, FLAG_FIN, Vec::new())).await;
    }
}

/// Copies client data into the pod's stream and the pod's bytes back as data frames.
async fn carry<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(
    pod: S,
    stream: u32,
    mut from_client: mpsc::Receiver<Option<Vec<u8>>>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let (mut rd, mut wr) = tokio::io::split(pod);
    let to_pod = async move {
        while let Some(Some(bytes)) = from_client.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let out2 = out.clone();
    let from_pod = async move {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out2.send(data(stream, 0, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out2.send(data(stream, FLAG_FIN, Vec::new())).await;
    };
    tokio::join!(to_pod, from_pod);
}

/// Serves one upgraded connection for the pod of `sandbox`.
pub async fn serve(
    conn: TcpStream,
    sandbox: Arc<dyn RunningSandbox>,
) -> Result<(), spdy::SpdyError> {
    let (mut rd, mut wr) = conn.into_split();
    let (out, mut queue) = mpsc::channel::<Vec<u8>>(64);
    let mut writer = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut codec = HeaderCodec::default();
    // Data streams still taking bytes from the client, and error streams by request id.
    let mut streams: HashMap<u32, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut errors: HashMap<String, u32> = HashMap::new();
    let result = loop {
        let mut head = [0u8; 8];
        if rd.read_exact(&mut head).await.is_err() {
            break Ok(());
        }
        let len = match spdy::payload_len(&head) {
            Ok(l) => l,
            Err(e) => break Err(e),
        };
        let mut payload = vec![0u8; len];
        if rd.read_exact(&mut payload).await.is_err() {
            break Ok(());
        }
        let frame = match spdy::decode(&head, payload) {
            Ok(f) => f,
            Err(e) => break Err(e),
        };
        match frame {
            Frame::Control { kind: spdy::SYN_STREAM, payload, .. } => {
                let id = match spdy::stream_of(&payload) {
                    Ok(id) => id,
                    Err(e) => break Err(e),
                };
                // stream id, associated stream id, priority and slot, then the headers.
                let Some(block) = payload.get(10..) else {
                    break Err(spdy::SpdyError::Malformed("short SYN_STREAM"));
                };
                let pairs = match codec.read(block) {
                    Ok(p) => p,
                    Err(e) => break Err(e),
                };
                let reply_headers = match codec.write(&[]) {
                    Ok(b) => b,
                    Err(e) => break Err(e),
                };
                let mut reply = id.to_be_bytes().to_vec();
                reply.extend_from_slice(&reply_headers);
                let frame = Frame::Control { kind: spdy::SYN_REPLY, flags: 0, payload: reply };
                if out.send(spdy::encode(&frame)).await.is_err() {
                    break Ok(());
                }
                let request = header(&pairs, "requestid").unwrap_or("").to_owned();
                match header(&pairs, "streamtype") {
                    Some("error") => {
                        errors.insert(request, id);
                    }
                    Some("data") => {
                        let error_stream = errors.get(&request).copied();
                        let port = header(&pairs, "port").and_then(|p| p.parse::<u16>().ok());
                        let Some(port) = port.filter(|p| *p > 0) else {
                            if let Some(es) = error_stream {
                                let msg = b"invalid port in the port-forward request".to_vec();
                                let _ = out.send(data(es, FLAG_FIN, msg)).await;
                            }
                            let _ = out.send(data(id, FLAG_FIN, Vec::new())).await;
                            continue;
                        };
                        let (tx, rx) = mpsc::channel(64);
                        streams.insert(id, tx);
                        tokio::spawn(relay(
                            sandbox.clone(),
                            port,
                            id,
                            error_stream,
                            rx,
                            out.clone(),
                        ));
                    }
                    _ => {
                        let _ = out.send(data(id, FLAG_FIN, Vec::new())).await;
                    }
                }
            }
            Frame::Control { kind: spdy::PING, flags, payload } => {
                let pong = Frame::Control { kind: spdy::PING, flags, payload };
                if out.send(spdy::encode(&pong)).await.is_err() {
                    break Ok(());
                }
            }
            Frame::Control { kind: spdy::RST_STREAM, payload, .. } => {
                if let Ok(id) = spdy::stream_of(&payload) {
                    streams.remove(&id);
                }
            }
            Frame::Control { kind: spdy::GOAWAY, .. } => break Ok(()),
            // SETTINGS, WINDOW_UPDATE, HEADERS and the rest change nothing here.
            Frame::Control { .. } => {}
            Frame::Data { stream, flags, data } => {
                let fin = flags & FLAG_FIN != 0;
                if let Some(tx) = streams.get(&stream) {
                    if !data.is_empty() && tx.send(Some(data)).await.is_err() {
                        streams.remove(&stream);
                        continue;
                    }
                    if fin {
                        let _ = tx.send(None).await;
                        streams.remove(&stream);
                    }
                }
            }
        }
    };
    drop(streams);
    drop(out);
    // Relays may still be flushing; the connection is over either way.
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer).await.is_err() {
        writer.abort();
    }
    result
}
