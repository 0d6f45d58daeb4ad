//! Port forwarding for the host (`kubectl port-forward` to a microVM pod): each connection to
//! vsock port [`crate::FORWARD_PORT`] names, in its first line, a TCP port on the guest's
//! loopback; the agent answers `OK` once connected there (or `ERR reason`) and then carries
//! the bytes both ways until either side closes.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_vsock::{VsockAddr, VsockListener, VsockStream};

/// The longest first line accepted (a port number and a newline).
const LINE_MAX: u64 = 16;

/// Serves forwarding on vsock `port` until the agent ends.
pub async fn serve(port: u32) -> io::Result<()> {
    let listener = VsockListener::bind(VsockAddr::new(libc::VMADDR_CID_ANY, port))?;
    tracing::info!(port, "port forwarding ready on vsock");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = forward(stream).await {
                tracing::debug!("a forwarded connection ended: {e}");
            }
        });
    }
}

/// The port a request line names.
pub fn parse_request(line: &str) -> Result<u16, String> {
    let p = line.trim_end_matches(['\n', '\r']);
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a TCP port")),
        Ok(n) => Ok(n),
    }
}

async fn forward(stream: VsockStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    (&mut reader).take(LINE_MAX).read_line(&mut line).await?;
    let port = match parse_request(&line) {
        Ok(p) => p,
        Err(e) => {
            reader.get_mut().write_all(format!("ERR {e}\n").as_bytes()).await?;
            return Ok(());
        }
    };
    let mut target = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(t) => t,
        Err(e) => {
            reader.get_mut().write_all(format!("ERR {e}\n").as_bytes()).await?;
            return Ok(());
        }
    };
    reader.get_mut().write_all(b"OK\n").await?;
    // Bytes the host sent right after its line are already in the reader's buffer.
    let pending = reader.buffer().to_vec();
    target.write_all(&pending).await?;
    let mut stream = reader.into_inner();
    tokio::io::copy_bidirectional(&mut stream, &mut target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_ports_are_requests() {
        assert_eq!(parse_request("8080\n"), Ok(8080));
        assert_eq!(parse_request("80\r\n"), Ok(80));
        for bad in ["0\n", "65536\n", "-1\n", "http\n", "\n", "80 81\n"] {
            assert!(parse_request(bad).is_err(), "{bad:?}");
        }
    }
}
