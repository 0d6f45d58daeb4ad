//! The network workload's peer on the host: a TCP server whose first byte from a client picks
//! the exchange: `S` reads everything to the end and answers one byte (so the client times the
//! delivery), `E` echoes 64-byte messages.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

pub struct Peer {
    pub port: u16,
}

impl Peer {
    /// Listens on every address (loopback for native, the pod network's host side for the
    /// rest); the thread lives as long as the process.
    pub fn start() -> anyhow::Result<Peer> {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Err(e) = serve(conn) {
                        tracing::debug!("bench peer: {e}");
                    }
                });
            }
        });
        Ok(Peer { port })
    }
}

fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    conn.read_exact(&mut mode)?;
    match mode[0] {
        b'S' => {
            let mut buf = vec![0u8; 1 << 20];
            while conn.read(&mut buf)? > 0 {}
            conn.write_all(b"k")
        }
        b'E' => {
            let mut msg = [0u8; 64];
            loop {
                match conn.read_exact(&mut msg) {
                    Ok(()) => conn.write_all(&msg)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
        _ => Ok(()),
    }
}
