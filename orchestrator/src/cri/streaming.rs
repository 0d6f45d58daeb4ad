//! The streaming server the CRI hands out URLs for: `kubectl exec` and `attach` sessions over
//! WebSocket with Kubernetes' channel protocol (v5/v4.channel.k8s.io: a channel byte, then
//! data; 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 terminal resize, 255 close a
//! stream) or over SPDY/3.1 ([`super::spdy_channels`], which presents its streams as the same
//! channel messages), and port forwarding over SPDY. A session with `tty` runs its process on
//! a terminal of the sandbox: its output all comes on stdout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use k8s_cri::v1 as cri;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::port_forward;
use super::runtime::{CriRuntime, dev_null, pipe};
use super::spdy_channels::{self, Channels, Expected, channel};
use super::{CriError, new_id, terminal};

/// How long a handed-out URL stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(60);
const PROTOCOLS: [&str; 3] = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"];

/// How long the first frame to a WebSocket client waits for it to be ready for it.
const CLIENT_STREAMS_GRACE: Duration = Duration::from_millis(150);

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The next binary frame from the client (None once it closes).
async fn next_frame(stream: &mut futures_util::stream::SplitStream<WsStream>) -> Option<Vec<u8>> {
    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Binary(b) => return Some(b.to_vec()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

/// A WebSocket session as channel messages: each binary frame is one; once the session drops
/// its sender, the socket closes normally (kubectl treats only a normal closure, 1000, as the
/// end of its streams).
fn ws_channels(ws: WsStream) -> Channels {
    let (mut sink, mut stream) = ws.split();
    let (input, from_client) = mpsc::channel::<Vec<u8>>(64);
    let (to_client, mut output) = mpsc::channel::<Vec<u8>>(64);
    let client_spoke = Arc::new(tokio::sync::Notify::new());
    let spoke = client_spoke.clone();
    tokio::spawn(async move {
        while let Some(frame) = next_frame(&mut stream).await {
            spoke.notify_one();
            if input.send(frame).await.is_err() {
                return;
            }
        }
    });
    let opened = tokio::time::Instant::now();
    tokio::spawn(async move {
        let mut first = true;
        while let Some(msg) = output.recv().await {
            if std::mem::take(&mut first) {
                // client-go before 1.33 reads frames before it has registered its streams and
                // drops what comes too early (kubernetes#131189): hold the first frame until
                // the client has spoken or a moment has passed.
                let grace = tokio::time::sleep_until(opened + CLIENT_STREAMS_GRACE);
                tokio::select! {
                    _ = grace => {}
                    _ = client_spoke.notified() => {}
                }
            }
            if sink.send(Message::Binary(msg.into())).await.is_err() {
                return;
            }
        }
        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });
    Channels { from_client, to_client }
}

/// How long an exec with a terminal waits for the client's first resize message.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// The terminal size a client sends first (within [`FIRST_SIZE_WAIT`]), and the messages
/// that came before it.
async fn first_size(
    from_client: &mut mpsc::Receiver<Vec<u8>>,
) -> (Option<crate::cri::handler::TerminalSize>, Vec<Vec<u8>>) {
    let mut early = Vec::new();
    let wait = async {
        while let Some(data) = from_client.recv().await {
            if data.first() == Some(&channel::RESIZE)
                && let Some(size) = terminal::parse_resize(&data[1..])
            {
                return Some(size);
            }
            early.push(data);
        }
        None
    };
    let size = tokio::time::timeout(FIRST_SIZE_WAIT, wait).await.ok().flatten();
    (size, early)
}

/// Sends the final status (channel 3) when given; the session ends when `to_client` drops.
async fn finish(to_client: mpsc::Sender<Vec<u8>>, status: Option<serde_json::Value>) {
    if let Some(status) = status {
        let mut msg = vec![channel::STATUS];
        msg.extend(serde_json::to_vec(&status).unwrap_or_default());
        let _ = to_client.send(msg).await;
    }
}

pub enum Session {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    /// Port forwarding to a pod sandbox's loopback.
    PortForward {
        sandbox: Arc<dyn crate::cri::handler::RunningSandbox>,
    },
}

pub struct StreamingServer {
    addr: SocketAddr,
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
    runtime: Arc<CriRuntime>,
}

impl StreamingServer {
    /// Listens on `bind` (port 0 picks one).
    pub async fn start(
        bind: SocketAddr,
        runtime: Arc<CriRuntime>,
    ) -> Result<Arc<StreamingServer>, CriError> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let server = Arc::new(StreamingServer {
            addr: listener.local_addr()?,
            sessions: Mutex::new(HashMap::new()),
            runtime,
        });
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    if let Err(e) = s.connection(conn).await {
                        tracing::debug!("streaming session ended: {e}");
                    }
                });
            }
        });
        Ok(server)
    }

    pub fn register(&self, session: Session) -> String {
        let token = new_id();
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        let kind = match session {
            Session::Exec(_) => "exec",
            Session::Attach(_) => "attach",
            Session::PortForward { .. } => "portforward",
        };
        s.insert(token.clone(), (session, Instant::now()));
        format!("http://{}/{kind}/{token}", self.addr)
    }

    fn take(&self, path: &str) -> Option<Session> {
        let token = path.rsplit('/').next()?;
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let (session, at) = s.remove(token)?;
        (at.elapsed() < TOKEN_TTL).then_some(session)
    }

    async fn connection(&self, conn: tokio::net::TcpStream) -> Result<(), CriError> {
        let mut first = [0u8; 32];
        let n = conn.peek(&mut first).await?;
        if first[..n].windows(13).any(|w| w == b"/portforward/") {
            return self.port_forward(conn).await;
        }
        if is_spdy_upgrade(&conn).await {
            return self.spdy_session(conn).await;
        }
        let mut path = String::new();
        #[allow(clippy::result_large_err)]
        let callback =
            |req: &WsRequest, mut resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
                path = req.uri().path().to_string();
                let offered: Vec<String> = req
                    .headers()
                    .get_all("Sec-WebSocket-Protocol")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
                    .collect();
                if let Some(p) = PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p))
                    && let Ok(v) = p.parse()
                {
                    resp.headers_mut().insert("Sec-WebSocket-Protocol", v);
                }
                Ok(resp)
            };
        let ws = tokio_tungstenite::accept_hdr_async(conn, callback)
            .await
            .map_err(|e| CriError::Sandbox(e.to_string()))?;
        match self.take(&path) {
            Some(Session::Exec(req)) => self.exec(ws_channels(ws), req).await,
            Some(Session::Attach(req)) => self.attach(ws_channels(ws), req).await,
            _ => {
                let mut ws = ws;
                let _ = ws.close(None).await;
                Err(CriError::NotFound("unknown or expired streaming session".into()))
            }
        }
    }

    /// Reads the upgrade request of a port-forward session and, for SPDY, switches protocols
    /// and serves it. WebSocket tunnelling is refused so that kubectl falls back to SPDY.
    async fn port_forward(&self, mut conn: tokio::net::TcpStream) -> Result<(), CriError> {
        use tokio::io::AsyncWriteExt;
        let head = read_head(&mut conn).await?;
        let (path, header) = (&head.path, |name: &str| head.header(name));
        let spdy = header("upgrade").eq_ignore_ascii_case("SPDY/3.1");
        let wants = header("x-stream-protocol-version");
        if !spdy || !wants.split(',').any(|p| p.trim() == port_forward::PROTOCOL) {
            let body = "port forwarding speaks SPDY/3.1 with portforward.k8s.io";
            let resp = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            return Ok(());
        }
        let Some(Session::PortForward { sandbox }) = self.take(path) else {
            let resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            conn.write_all(resp.as_bytes()).await?;
            return Err(CriError::NotFound("unknown or expired streaming session".into()));
        };
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {}\r\n\r\n",
            port_forward::PROTOCOL
        );
        conn.write_all(resp.as_bytes()).await?;
        port_forward::serve(conn, sandbox).await.map_err(|e| CriError::Invalid(e.to_string()))
    }

    /// Serves an exec or attach session whose client upgraded to SPDY/3.1.
    async fn spdy_session(&self, mut conn: tokio::net::TcpStream) -> Result<(), CriError> {
        use tokio::io::AsyncWriteExt;
        let head = read_head(&mut conn).await?;
        let offered = head.header("x-stream-protocol-version");
        let protocol =
            spdy_channels::PROTOCOLS.iter().find(|p| offered.split(',').any(|o| o.trim() == **p));
        let session = self.take(&head.path);
        let expected = match &session {
            Some(Session::Exec(r)) => {
                Expected { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty }
            }
            Some(Session::Attach(r)) => {
                Expected { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty }
            }
            _ => {
                let resp =
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                conn.write_all(resp.as_bytes()).await?;
                return Err(CriError::NotFound("unknown or expired streaming session".into()));
            }
        };
        let Some(protocol) = protocol else {
            let body = format!("none of the offered protocols ({offered}) is served here");
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(resp.as_bytes()).await?;
            return Err(CriError::Invalid(body));
        };
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
        );
        conn.write_all(resp.as_bytes()).await?;
        let channels = spdy_channels::accept(conn, expected)
            .await
            .map_err(|e| CriError::Invalid(e.to_string()))?;
        match session {
            Some(Session::Exec(req)) => self.exec(channels, req).await,
            Some(Session::Attach(req)) => self.attach(channels, req).await,
            _ => Ok(()),
        }
    }

    /// Streams a running container's output (and input, when it takes stdin) until it exits
    /// or the client goes away.
    async fn attach(&self, channels: Channels, req: cri::AttachRequest) -> Result<(), CriError> {
        let target = self.runtime.attach_target(&req.container_id)?;
        let mut output = {
            let tap = target.output.lock().unwrap_or_else(|e| e.into_inner());
            tap.as_ref()
                .map(|t| t.subscribe())
                .ok_or_else(|| CriError::Invalid("the container has exited".into()))?
        };
        let Channels { mut from_client, to_client } = channels;
        let input = target.clone();
        let want_stdin = req.stdin;
        let (runtime, container) = (self.runtime.clone(), req.container_id.clone());
        let stdin_task = tokio::spawn(async move {
            while let Some(data) = from_client.recv().await {
                match data.first() {
                    Some(&channel::STDIN) if want_stdin => {
                        let mut stdin = input.stdin.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(f) = stdin.as_mut()
                            && f.write_all(&data[1..]).is_err()
                        {
                            *stdin = None;
                        }
                    }
                    Some(&channel::RESIZE) if input.tty => {
                        if let Some(size) = terminal::parse_resize(&data[1..]) {
                            let (r, id) = (runtime.clone(), container.clone());
                            let resized =
                                tokio::task::spawn_blocking(move || r.resize_container(&id, size))
                                    .await;
                            if let Ok(Err(e)) = resized {
                                tracing::debug!("resizing the terminal of {container}: {e}");
                            }
                        }
                    }
                    Some(&channel::CLOSE) if data.get(1) == Some(&channel::STDIN) => break,
                    _ => {}
                }
            }
            if input.stdin_once {
                input.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        });
        let mut status = None;
        loop {
            match output.recv().await {
                Ok((channel, bytes)) => {
                    let wanted = if channel == 2 { req.stderr } else { req.stdout };
                    if !wanted {
                        continue;
                    }
                    let channel = if target.tty { 1 } else { channel };
                    let mut msg = Vec::with_capacity(bytes.len() + 1);
                    msg.push(channel);
                    msg.extend_from_slice(&bytes);
                    if to_client.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    // The container exited.
                    status = Some(serde_json::json!({"metadata": {}, "status": "Success"}));
                    break;
                }
            }
        }
        finish(to_client, status).await;
        stdin_task.abort();
        if target.stdin_once {
            target.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        Ok(())
    }

    async fn exec(&self, channels: Channels, req: cri::ExecRequest) -> Result<(), CriError> {
        let Channels { mut from_client, to_client } = channels;
        // With a terminal, the process starts at the client's size when it tells it at once
        // (kubectl does); what else came first is handled after.
        let (terminal, early) = if req.tty {
            let (size, early) = first_size(&mut from_client).await;
            (Some(size.unwrap_or_default()), early)
        } else {
            (None, Vec::new())
        };
        let (running, process) =
            self.runtime.exec_target(&req.container_id, req.cmd.clone(), terminal)?;
        let (stdin_r, stdin_w) = if req.stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (dev_null()?, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) =
            if req.stderr && !req.tty { pipe()? } else { (dev_null()?, out_w.try_clone()?) };
        let pid = {
            let running = running.clone();
            let container = req.container_id.clone();
            tokio::task::spawn_blocking(move || {
                running.exec(&container, process, [stdin_r, out_w, err_w])
            })
            .await
            .map_err(|e| CriError::Sandbox(e.to_string()))??
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        // Output: one blocking reader per stream, framed with its channel byte.
        let mut readers = Vec::new();
        let outputs = if req.stderr && !req.tty {
            vec![(out_r, 1u8), (err_r, 2u8)]
        } else {
            vec![(out_r, 1u8)]
        };
        for (fd, channel) in outputs {
            let tx = tx.clone();
            readers.push(tokio::task::spawn_blocking(move || {
                let mut f = std::fs::File::from(fd);
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let mut msg = Vec::with_capacity(n + 1);
                            msg.push(channel);
                            msg.extend_from_slice(&buf[..n]);
                            if tx.blocking_send(msg).is_err() {
                                return;
                            }
                        }
                    }
                }
            }));
        }
        drop(tx);
        // Input: stdin frames go to the pipe; closing stdin (v5) or the socket ends it.
        // Resize messages reach the process's terminal.
        let resizer = running.clone();
        let tty = req.tty;
        let stdin_task = tokio::spawn(async move {
            let mut stdin = stdin_w.map(std::fs::File::from);
            let mut early = early.into_iter();
            loop {
                let data = match early.next() {
                    Some(d) => d,
                    None => match from_client.recv().await {
                        Some(d) => d,
                        None => break,
                    },
                };
                match data.first() {
                    Some(&channel::STDIN) => {
                        if let Some(f) = stdin.as_mut()
                            && f.write_all(&data[1..]).is_err()
                        {
                            stdin = None;
                        }
                    }
                    Some(&channel::RESIZE) if tty => {
                        if let Some(size) = terminal::parse_resize(&data[1..]) {
                            let r = resizer.clone();
                            let resized =
                                tokio::task::spawn_blocking(move || r.resize(pid, size)).await;
                            if let Ok(Err(e)) = resized {
                                tracing::debug!("resizing the terminal of exec {pid}: {e}");
                            }
                        }
                    }
                    Some(&channel::CLOSE) if data.get(1) == Some(&channel::STDIN) => stdin = None,
                    _ => {}
                }
            }
        });
        let waiter = {
            let running = running.clone();
            tokio::task::spawn_blocking(move || running.wait(pid))
        };
        while let Some(msg) = rx.recv().await {
            if to_client.send(msg).await.is_err() {
                break;
            }
        }
        for r in readers {
            let _ = r.await;
        }
        let code = waiter.await.map_err(|e| CriError::Sandbox(e.to_string()))??.code;
        let status = if code == 0 {
            serde_json::json!({"metadata": {}, "status": "Success"})
        } else {
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {code}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
            })
        };
        finish(to_client, Some(status)).await;
        stdin_task.abort();
        Ok(())
    }
}

/// An HTTP request's head.
struct Head {
    path: String,
    text: String,
}

impl Head {
    /// Every value of header `name`, comma-separated (clients repeat some, such as the
    /// protocol versions they offer).
    fn header(&self, name: &str) -> String {
        let values: Vec<&str> = self
            .text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        values.join(", ")
    }
}

/// Reads a request's head (up to the blank line, at most 16 KiB) off `conn`.
async fn read_head(conn: &mut tokio::net::TcpStream) -> Result<Head, CriError> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 << 10 || conn.read(&mut byte).await? == 0 {
            return Err(CriError::Invalid("malformed streaming request".into()));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    Ok(Head { path, text })
}

/// Whether the request waiting on `conn` asks to upgrade to SPDY (looked at without taking
/// it off the socket, so a WebSocket handshake can still read it whole).
async fn is_spdy_upgrade(conn: &tokio::net::TcpStream) -> bool {
    let mut buf = vec![0u8; 16 << 10];
    for _ in 0..50 {
        let Ok(n) = conn.peek(&mut buf).await else { return false };
        let seen = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if let Some(end) = seen.find("\r\n\r\n") {
            return seen[..end]
                .lines()
                .filter_map(|l| l.split_once(':'))
                .any(|(n, v)| n.trim() == "upgrade" && v.trim() == "spdy/3.1");
        }
        if n == 0 || n == buf.len() {
            return false;
        }
        // More of the head is on its way.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
