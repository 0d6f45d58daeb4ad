//! A direct run's network, the counterpart of QEMU's user-mode network in the nested lane: a
//! veth pair between this host (10.0.2.2) and the run's namespace (10.0.2.15), TCP ports of
//! this host's loopback relayed into the run, and ports of the host's loopback the run reaches
//! at 10.0.2.2 relayed back (QEMU maps 10.0.2.2 to the host's loopback likewise).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};

pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const INSIDE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The network of one run; taken down when dropped.
pub struct RunNetwork {
    host_if: String,
    stop: Arc<AtomicBool>,
    relays: Vec<JoinHandle<()>>,
}

/// Copies both ways between two connected streams until either side ends.
fn splice(a: TcpStream, b: TcpStream) {
    let pairs = [(a.try_clone(), b.try_clone()), (b.try_clone(), a.try_clone())];
    let mut threads = Vec::new();
    for (from, to) in pairs {
        if let (Ok(mut from), Ok(mut to)) = (from, to) {
            threads.push(std::thread::spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            }));
        }
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Relays connections to `listen` on to `target` until `stop`.
fn relay(
    listen: SocketAddr,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    listener.set_nonblocking(true)?;
    Ok(std::thread::Builder::new().name("lane-relay".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    std::thread::spawn(move || {
                        if let Ok(out) =
                            TcpStream::connect_timeout(&target, Duration::from_secs(10))
                        {
                            splice(conn, out);
                        }
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })?)
}

impl RunNetwork {
    /// Joins process `pid`'s network namespace to this host and starts the relays:
    /// `forwards` (host port, port inside) and `back` (ports of this host's loopback the run
    /// reaches at 10.0.2.2).
    pub fn plumb(pid: u32, forwards: &[(u16, u16)], back: &[u16]) -> anyhow::Result<RunNetwork> {
        let host_if = format!("rfdl{}", pid % 100_000);
        let inner = format!("rfdi{}", pid % 100_000);
        ip(&[
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "netns",
            &pid.to_string(),
        ])?;
        let mut net =
            RunNetwork { host_if: host_if.clone(), stop: Arc::default(), relays: Vec::new() };
        ip(&["addr", "add", &format!("{HOST}/24"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let ns = format!("/proc/{pid}/ns/net");
        let inside = |args: &[&str]| -> anyhow::Result<()> {
            let net = format!("--net={ns}");
            let mut full = vec!["nsenter", net.as_str(), "ip"];
            full.extend_from_slice(args);
            let out = Command::new(full[0]).args(&full[1..]).output().context("running nsenter")?;
            if !out.status.success() {
                bail!("{}: {}", full.join(" "), String::from_utf8_lossy(&out.stderr).trim());
            }
            Ok(())
        };
        inside(&["link", "set", &inner, "name", "eth0"])?;
        inside(&["addr", "add", &format!("{INSIDE}/24"), "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        inside(&["route", "add", "default", "via", &HOST.to_string()])?;
        for (h, g) in forwards {
            let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, *h));
            net.relays.push(relay(listen, SocketAddr::from((INSIDE, *g)), net.stop.clone())?);
        }
        for p in back {
            let listen = SocketAddr::from((HOST, *p));
            net.relays.push(relay(
                listen,
                SocketAddr::from((Ipv4Addr::LOCALHOST, *p)),
                net.stop.clone(),
            )?);
        }
        Ok(net)
    }
}

impl Drop for RunNetwork {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.relays.drain(..) {
            let _ = r.join();
        }
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
