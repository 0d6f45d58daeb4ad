//! The host's side: reaching the agent through the VMM's vsock Unix socket (Firecracker's
//! `CONNECT <port>` handshake) or a plain Unix socket, running a command to completion, and
//! refreshing a guest restored from a snapshot.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::exit::Exit;
use crate::proto::{self, agent_client, exec_event::Event};

pub type AgentClient = agent_client::AgentClient<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent did not answer within {0:?}; last error: {1}")]
    Timeout(Duration, String),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the process stream ended without an exit status")]
    NoExit,
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("reading this host's random bytes: {0}")]
    Entropy(std::io::Error),
    #[error("the agent answered generation {got} to a refresh to {wanted}")]
    Generation { wanted: u64, got: u64 },
}

/// How many random bytes of this host's [`refresh`] gives the guest.
pub const REFRESH_ENTROPY: usize = 64;

/// Opens a stream to `port` in the guest through the vsock device's Unix socket.
pub async fn vsock_stream(uds: &Path, port: u32) -> std::io::Result<UnixStream> {
    let mut s = UnixStream::connect(uds).await?;
    s.write_all(format!("CONNECT {port}\n").as_bytes()).await?;
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if !line.starts_with("OK ") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("no listener on guest port {port} (handshake answer {:?})", line.trim()),
        ));
    }
    Ok(reader.into_inner())
}

async fn channel_over<F, Fut>(connect: F) -> Result<AgentClient, ClientError>
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = std::io::Result<UnixStream>> + Send,
{
    // The URI is required by the API and unused: every connection is made by `connect`.
    let channel = Endpoint::from_static("http://agent")
        .connect_with_connector(tower::service_fn(move |_| {
            let connect = connect.clone();
            async move { connect().await.map(TokioIo::new) }
        }))
        .await?;
    Ok(AgentClient::new(channel).max_decoding_message_size(16 << 20))
}

/// A client on a stream already connected to the agent (one connection: a channel that
/// loses it does not connect again).
pub async fn over_stream(stream: UnixStream) -> Result<AgentClient, ClientError> {
    let stream = std::sync::Arc::new(std::sync::Mutex::new(Some(stream)));
    channel_over(move || {
        let taken = stream.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            taken.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "the connection was closed")
            })
        }
    })
    .await
}

/// Connects to the agent in a guest through the VMM's vsock socket.
pub async fn connect_vsock(uds: &Path, port: u32) -> Result<AgentClient, ClientError> {
    let uds = uds.to_owned();
    channel_over(move || {
        let uds = uds.clone();
        async move { vsock_stream(&uds, port).await }
    })
    .await
}

/// Connects to an agent listening on a Unix socket (`ringfence-agent --unix`).
pub async fn connect_unix(path: &Path) -> Result<AgentClient, ClientError> {
    let path = path.to_owned();
    channel_over(move || {
        let path = path.clone();
        async move { UnixStream::connect(&path).await }
    })
    .await
}

/// Retries connecting and asking Health until the agent answers or `timeout` passes.
pub async fn wait_ready(
    uds: &Path,
    port: u32,
    timeout: Duration,
) -> Result<(AgentClient, proto::HealthResponse), ClientError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("none");
    while Instant::now() < deadline {
        if uds.exists() {
            match connect_vsock(uds, port).await {
                Ok(mut c) => match c.health(proto::HealthRequest {}).await {
                    Ok(h) => return Ok((c, h.into_inner())),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(ClientError::Timeout(timeout, last))
}

/// Runs a process through the agent, copying its output as it comes, and returns its exit.
pub async fn run(
    client: &mut AgentClient,
    request: proto::ExecRequest,
    stdout: &mut (impl AsyncWrite + Unpin),
    stderr: &mut (impl AsyncWrite + Unpin),
) -> Result<Exit, ClientError> {
    let mut events = client.exec(request).await?.into_inner();
    while let Some(ev) = events.message().await? {
        match ev.event {
            Some(Event::Stdout(b)) => stdout.write_all(&b).await.map_err(ClientError::Output)?,
            Some(Event::Stderr(b)) => stderr.write_all(&b).await.map_err(ClientError::Output)?,
            Some(Event::Exited(s)) => {
                stdout.flush().await.map_err(ClientError::Output)?;
                stderr.flush().await.map_err(ClientError::Output)?;
                return Exit::try_from(&s).map_err(|_| ClientError::NoExit);
            }
            Some(Event::Started(_)) | None => {}
        }
    }
    Err(ClientError::NoExit)
}

/// Who a clone restored from a snapshot is: what [`refresh`] tells it besides the entropy and
/// the time, which come from this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneIdentity {
    /// Chosen per clone, not 0; Health reports it from then on.
    pub generation: u64,
    /// Empty: keep the template's.
    pub hostname: String,
    /// A virtio-fs tag to mount at the guest's shared directory (the template booted with
    /// `ringfence.share_later=1`); empty: none.
    pub share_tag: String,
}

/// The Refresh request for `identity`: [`REFRESH_ENTROPY`] bytes from this host's
/// `/dev/urandom` and its clock.
pub fn refresh_request(identity: &CloneIdentity) -> Result<proto::RefreshRequest, ClientError> {
    let mut entropy = vec![0u8; REFRESH_ENTROPY];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut entropy))
        .map_err(ClientError::Entropy)?;
    // A clock before 1970 (or past 2262) is not worth sending: 0 leaves the guest's alone.
    let unix_time_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0);
    Ok(proto::RefreshRequest {
        entropy,
        unix_time_ns,
        hostname: identity.hostname.clone(),
        share_tag: identity.share_tag.clone(),
        generation: identity.generation,
    })
}

/// Refreshes a guest restored from a snapshot (fresh entropy and reseeded CRNG, the time,
/// `identity`), then checks that it took the generation. The network comes after, through
/// ConfigureInterface (with a MAC address of the clone's own).
pub async fn refresh(
    client: &mut AgentClient,
    identity: &CloneIdentity,
) -> Result<proto::RefreshResponse, ClientError> {
    let answer = client.refresh(refresh_request(identity)?).await?.into_inner();
    if answer.generation != identity.generation {
        return Err(ClientError::Generation {
            wanted: identity.generation,
            got: answer.generation,
        });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_request_carries_fresh_entropy_and_the_time() {
        let id = CloneIdentity { generation: 9, hostname: "web-9".into(), share_tag: "pod".into() };
        let (a, b) = (refresh_request(&id).unwrap(), refresh_request(&id).unwrap());
        assert_eq!(a.entropy.len(), REFRESH_ENTROPY);
        assert_ne!(a.entropy, b.entropy);
        assert!(a.unix_time_ns > 1_600_000_000_000_000_000 && b.unix_time_ns >= a.unix_time_ns);
        assert_eq!((a.generation, a.hostname.as_str(), a.share_tag.as_str()), (9, "web-9", "pod"));
        // What the host sends, the agent accepts.
        assert!(crate::refresh::RefreshConfig::parse(a).is_ok());
    }
}
