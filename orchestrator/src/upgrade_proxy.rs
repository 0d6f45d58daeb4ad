//! Forwarding one HTTP request to another server, including connection upgrades (WebSocket
//! exec streams), as the API server does to node agents and node agents to the runtime's
//! streaming server.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Headers that describe the connection itself, copied for upgrades only.
const UPGRADE_HEADERS: [&str; 7] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    // SPDY streams (port forwarding) negotiate their protocol with this one.
    "x-stream-protocol-version",
];

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connecting to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("{0}")]
    Http(String),
}

/// Sends `req` (its method, upgrade headers and `accept`) to `addr` as `path_and_query` and
/// relays the answer: a streamed body, or for `101 Switching Protocols` a spliced connection.
pub async fn forward(
    req: Request<Incoming>,
    addr: &str,
    path_and_query: &str,
) -> Result<Response<Body>, ProxyError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| ProxyError::Connect(addr.into(), e))?;
    forward_over(req, stream, addr, path_and_query).await
}

/// [`forward`] over a connection the caller made (e.g. TLS to a node agent); `addr` is the
/// `Host` header.
pub async fn forward_over<S>(
    mut req: Request<Incoming>,
    stream: S,
    addr: &str,
    path_and_query: &str,
) -> Result<Response<Body>, ProxyError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let upgrade = req.headers().get(http::header::UPGRADE).is_some();
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut b = Request::builder()
        .method(req.method())
        .uri(path_and_query)
        .header(http::header::HOST, addr);
    for (name, value) in req.headers() {
        let n = name.as_str();
        if (upgrade && UPGRADE_HEADERS.contains(&n)) || n == "accept" {
            b = b.header(name, value);
        }
    }
    let up_req = b.body(Empty::<Bytes>::new()).map_err(|e| ProxyError::Http(e.to_string()))?;
    let mut resp =
        sender.send_request(up_req).await.map_err(|e| ProxyError::Http(e.to_string()))?;
    let status = resp.status();
    let mut out = Response::builder().status(status);
    for (name, value) in resp.headers() {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let upstream = hyper::upgrade::on(&mut resp);
        if let Some(down) = downstream {
            tokio::spawn(async move {
                if let (Ok(up), Ok(down)) = (upstream.await, down.await) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(up),
                        &mut TokioIo::new(down),
                    )
                    .await;
                }
            });
        }
        let empty = Empty::<Bytes>::new().map_err(|never| match never {}).boxed_unsync();
        return out.body(empty).map_err(|e| ProxyError::Http(e.to_string()));
    }
    let body = resp.into_body().map_err(std::io::Error::other).boxed_unsync();
    out.body(body).map_err(|e| ProxyError::Http(e.to_string()))
}
