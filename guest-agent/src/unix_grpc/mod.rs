//! gRPC servers on Unix sockets that accept the `:authority` real clients send there.
//!
//! grpc-go, grpc C-core (Python's `grpcio`) and others send the socket's path, percent-encoded,
//! as the HTTP/2 `:authority` when they dial `unix:` addresses; `h2` refuses such a request as
//! malformed before tonic sees it. A Unix socket's peer needs no authority, so every accepted
//! connection reads through [`rewrite::Rewriter`], which replaces one that does not parse.

pub mod rewrite;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use rewrite::Rewriter;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A connection whose client-to-server bytes pass through a [`Rewriter`].
pub struct AnyAuthority<S> {
    inner: S,
    rewriter: Rewriter,
    /// Bytes read from the client and not yet a complete frame.
    raw: Vec<u8>,
    /// Rewritten bytes the server has not read yet, from `out_at` on.
    out: Vec<u8>,
    out_at: usize,
    eof: bool,
}

impl<S> AnyAuthority<S> {
    pub fn new(inner: S) -> Self {
        AnyAuthority {
            inner,
            rewriter: Rewriter::default(),
            raw: Vec::new(),
            out: Vec::new(),
            out_at: 0,
            eof: false,
        }
    }
}

/// The connections of `listener`, ready for `serve_with_incoming`.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<AnyAuthority<UnixStream>>> {
    tokio_stream::StreamExt::map(tokio_stream::wrappers::UnixListenerStream::new(listener), |s| {
        s.map(AnyAuthority::new)
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for AnyAuthority<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.out_at < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_at);
                buf.put_slice(&this.out[this.out_at..this.out_at + n]);
                this.out_at += n;
                if this.out_at == this.out.len() {
                    this.out.clear();
                    this.out_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let start = this.raw.len();
            this.raw.resize(start + READ_CHUNK, 0);
            let mut chunk = ReadBuf::new(&mut this.raw[start..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut chunk);
            let got = chunk.filled().len();
            this.raw.truncate(start + got);
            ready!(polled)?;
            if got == 0 {
                this.eof = true;
                continue;
            }
            this.rewriter
                .feed(&mut this.raw, &mut this.out)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnyAuthority<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for AnyAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
