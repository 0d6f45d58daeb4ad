//! A pod's host ports: each TCP `host_port` of the sandbox config gets a listener on the node
//! (on `host_ip`, or every address) that relays connections to the pod's address and
//! `container_port`. The listeners live as long as the sandbox's network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use k8s_cri::v1 as cri;

use super::CriError;

/// One checked mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: SocketAddr,
    pub container_port: u16,
}

/// The listeners of one sandbox; dropping them closes the ports.
#[derive(Default)]
pub struct HostPorts {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for HostPorts {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The sandbox config's port mappings that ask for a host port, checked.
pub fn mappings(config: &cri::PodSandboxConfig) -> Result<Vec<HostPort>, CriError> {
    let mut out: Vec<HostPort> = Vec::new();
    for m in config.port_mappings.iter().filter(|m| m.host_port != 0) {
        let port = |p: i32, what: &str| {
            u16::try_from(p).ok().filter(|p| *p != 0).ok_or_else(|| {
                CriError::Invalid(format!("{what} {p} is not a port number (1-65535)"))
            })
        };
        let host_port = port(m.host_port, "host port")?;
        let container_port = port(m.container_port, "container port")?;
        if m.protocol != cri::Protocol::Tcp as i32 {
            return Err(CriError::Invalid(format!(
                "host port {host_port}: only TCP host ports are supported (UDP and SCTP are not yet)"
            )));
        }
        let ip = if m.host_ip.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            m.host_ip.parse().map_err(|_| {
                CriError::Invalid(format!("host IP {:?} is not an address", m.host_ip))
            })?
        };
        let host = SocketAddr::new(ip, host_port);
        if out.iter().any(|o| o.host.port() == host_port) {
            return Err(CriError::Invalid(format!("host port {host_port} is mapped twice")));
        }
        out.push(HostPort { host, container_port });
    }
    Ok(out)
}

/// Opens the listeners of `ports`, relaying to `pod_ip`. Needs the server's async runtime.
pub fn open(ports: &[HostPort], pod_ip: Ipv4Addr) -> Result<HostPorts, CriError> {
    let mut opened = HostPorts { tasks: Vec::new() };
    if ports.is_empty() {
        return Ok(opened);
    }
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| CriError::Network("host ports need the server's async runtime".into()))?;
    for p in ports {
        let listener = std::net::TcpListener::bind(p.host).map_err(|e| {
            CriError::Network(format!("host port {} ({}): {e}", p.host.port(), p.host.ip()))
        })?;
        listener.set_nonblocking(true)?;
        let backend = SocketAddr::new(IpAddr::V4(pod_ip), p.container_port);
        let _guard = handle.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        opened.tasks.push(handle.spawn(relay(listener, backend)));
    }
    Ok(opened)
}

async fn relay(listener: tokio::net::TcpListener, backend: SocketAddr) {
    while let Ok((mut down, _)) = listener.accept().await {
        tokio::spawn(async move {
            // A pod that does not answer is the client's to see (its connection closes).
            if let Ok(mut up) = tokio::net::TcpStream::connect(backend).await {
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(maps: &[(i32, i32, cri::Protocol, &str)]) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig {
            port_mappings: maps
                .iter()
                .map(|(host, container, protocol, ip)| cri::PortMapping {
                    protocol: *protocol as i32,
                    container_port: *container,
                    host_port: *host,
                    host_ip: ip.to_string(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn mappings_are_checked() {
        use cri::Protocol::{Tcp, Udp};
        let m = mappings(&config(&[(0, 80, Tcp, ""), (8080, 80, Tcp, "127.0.0.1")])).unwrap();
        assert_eq!(m, [HostPort { host: "127.0.0.1:8080".parse().unwrap(), container_port: 80 }]);
        for bad in [
            config(&[(70000, 80, Tcp, "")]),
            config(&[(8080, 0, Tcp, "")]),
            config(&[(8080, 80, Udp, "")]),
            config(&[(8080, 80, Tcp, "nope")]),
            config(&[(8080, 80, Tcp, ""), (8080, 81, Tcp, "")]),
        ] {
            assert!(mappings(&bad).is_err(), "{:?}", bad.port_mappings);
        }
    }

    #[tokio::test]
    async fn connections_reach_the_pod_until_the_ports_close() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pod = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pod_port = pod.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = pod.accept().await {
                let _ = s.write_all(b"from the pod").await;
            }
        });
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let ports = [HostPort { host: free, container_port: pod_port }];
        let opened = tokio::task::spawn_blocking(move || open(&ports, Ipv4Addr::LOCALHOST))
            .await
            .unwrap()
            .unwrap();
        let mut got = String::new();
        let mut c = tokio::net::TcpStream::connect(free).await.unwrap();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "from the pod");
        // The port is taken while open, and free again after.
        assert!(std::net::TcpListener::bind(free).is_err());
        drop(opened);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(std::net::TcpListener::bind(free).is_ok());
    }
}
